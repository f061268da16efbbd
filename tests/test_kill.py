"""SIGKILL ``medsr.predict`` and ``medsr.train`` at seeded random moments: no file under a final
name is ever truncated (a kill mid-write leaves at most a hidden temporary file), predict run
again completes the folder, and ``resume=auto`` continues the training run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from entry_points import call_main, incomplete_files
from medsr.data.image_io import read_image, write_image
from medsr.models import build_model, save_weights

pytestmark = pytest.mark.slow

TINY = ["model=edsr_baseline", "model.net.num_feat=8", "model.net.num_block=1"]


def _start(module: str, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", module, *overrides]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], delay: float) -> str:
    """SIGKILL ``proc`` ``delay`` seconds after ``ready()`` first holds; returns its output."""
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    with proc.stdout:
        return proc.stdout.read().decode()


def _final_files_whole(folder: Path) -> list[str]:
    """Incomplete files under final names (hidden temporaries of the killed write are allowed)."""
    return [f for f in incomplete_files(folder) if "temporary file" not in f]


@pytest.mark.parametrize("seed", [0, 1])
def test_killed_predict_leaves_whole_images_and_a_rerun_completes(tmp_path, seed, samples_dir):
    rng = random.Random(seed)
    photo = read_image(samples_dir / "train" / "astronaut.png")
    inputs = tmp_path / "in"
    for i in range(12):
        y, x = rng.randrange(0, 384), rng.randrange(0, 384)
        write_image(inputs / f"crop{i:02d}.png", photo[y : y + 128, x : x + 128])
    torch.manual_seed(seed)
    ckpt = save_weights(build_model("edsr", 2, num_feat=16, num_block=4), tmp_path / "w.pth")
    out = tmp_path / "out"
    args = [f"ckpt={ckpt}", f"input={inputs}", f"output={out}", "progress=false", "tile=48"]
    proc = _start("medsr.predict", *args)
    _kill_when(proc, lambda: any(out.glob("crop*.png")), rng.uniform(0.0, 1.5))
    assert proc.returncode == -signal.SIGKILL
    assert _final_files_whole(out) == []
    assert call_main("predict", *args).code == 0  # run again: the folder is completed
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == sorted(p.name for p in inputs.glob("*.png"))
    assert _final_files_whole(out) == [] and read_image(out / "crop00.png").shape == (256, 256, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_killed_training_resumes_with_resume_auto(tmp_path, seed, caplog):
    rng = random.Random(seed)
    run = tmp_path / "run"
    steps = 12
    overrides = [
        "debug=fast",
        *TINY,
        "scale=2",
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=4",
        "callbacks.last_checkpoint.every_n_train_steps=1",  # a checkpoint written every step
        "comparison_figure=false",
        f"hydra.run.dir={run}",
    ]
    ckpts = run / "checkpoints"
    proc = _start("medsr.train", *overrides)
    output = _kill_when(
        proc,
        lambda: (ckpts / "last.ckpt").is_file() and any(ckpts.glob("step*.ckpt")),
        rng.uniform(0.0, 1.5),
    )
    assert proc.returncode == -signal.SIGKILL
    assert _final_files_whole(run) == []
    # Progress a person can read, and not Lightning's epoch bar or its logging warning.
    assert f"step 1/{steps} (8.3%) | l_pix " in output and " steps/s | ETA " in output
    assert "Epoch" not in output and "logging interval" not in output
    if seed == 1:  # and a last.ckpt cut short by something other than medsr (a copy, a disk)
        last = ckpts / "last.ckpt"
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    outcome = call_main("train", *overrides, "resume=auto")
    assert outcome.code == 0, outcome.errors
    if seed == 1:
        assert any(
            "continuing from the newest complete checkpoint step" in w for w in outcome.warnings
        )
    done = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert done["global_step"] == steps
    assert len(list(run.glob("*.pth"))) == 1 and _final_files_whole(run) == []
    # The first part's metrics are kept beside the continuation's.
    assert (run / "csv" / "metrics.csv").is_file()
    assert np.all([p.stat().st_size > 0 for p in (run / "csv").glob("metrics*.csv")])
