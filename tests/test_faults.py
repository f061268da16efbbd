"""Nothing lost, nothing mixed: run folders of their own, whole outputs with the user's
permissions, predict never re-reading its results, resume that keeps progress, W&B that never
hangs a run, readable progress, and ESRGAN's settings coming with the model."""

from __future__ import annotations

import datetime
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from entry_points import call_main, incomplete_files
from helpers import compose_config
from medsr.data.image_io import image_info, read_image, write_image
from medsr.errors import DataError
from medsr.files import atomic_torch_save, claim_folder
from medsr.models import build_model, save_weights
from medsr.training import resume

TINY = ["model=edsr_baseline", "model.net.num_feat=8", "model.net.num_block=1"]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, samples_dir) -> Path:
    """One 48x48 real photo: evaluations in well under a second."""
    folder = tmp_path_factory.mktemp("small_set")
    write_image(
        folder / "cat.png", read_image(samples_dir / "val" / "chelsea.png")[60:108, 120:168]
    )
    return folder


# -- run folders ------------------------------------------------------------------------------
class _Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2030, 1, 1, 12, 0, 0)


def test_two_runs_in_the_same_second_get_their_own_folders(tmp_path, small_set, monkeypatch):
    """The same experiment started twice in one second (a frozen clock): two folders, each
    with its own config and its own results, never one folder with both."""
    import hydra.core.utils

    monkeypatch.setattr(hydra.core.utils, "datetime", _Frozen)
    data = ["data=folder", f"data.train_dirs=[{small_set}]", f"data.val_dirs=[{small_set}]"]
    common = ["model=bicubic", "scale=2", "progress=false", *data]
    for baseline in ("nearest", "bilinear"):  # differ outside the run name
        assert call_main("evaluate", *common, f"baselines=[{baseline}]", cwd=tmp_path).code == 0
    runs = sorted((tmp_path / "outputs" / "evaluate" / "Bicubic_x2_folder").iterdir())
    assert [r.name for r in runs] == ["2030-01-01_12-00-00", "2030-01-01_12-00-00_2"]
    for run, baseline in zip(runs, ("nearest", "bilinear"), strict=True):
        overrides = (run / ".hydra" / "overrides.yaml").read_text()
        methods = [row["method"] for row in json.loads((run / "results.json").read_text())]
        assert f"baselines=[{baseline}]" in overrides and methods[0].lower() == baseline
    # A sweep's folder too: two sweeps in the same second, each job inside its own sweep.
    for _ in range(2):
        assert call_main("evaluate", "-m", *common, "baselines=[]", cwd=tmp_path).code == 0
    sweeps = sorted((tmp_path / "multirun" / "evaluate").iterdir())
    assert [s.name for s in sweeps] == ["2030-01-01_12-00-00", "2030-01-01_12-00-00_2"]
    assert all((s / "0_x2" / "results.json").is_file() for s in sweeps)


def test_folders_are_claimed_atomically(tmp_path):
    base, claimed = tmp_path / "outputs" / "run", []
    start = threading.Barrier(8)

    def claim() -> None:
        start.wait()
        claimed.append(claim_folder(base))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(claimed)) == 8 and all(p.is_dir() for p in claimed)


# -- whole outputs, with the user's permissions -------------------------------------------------
@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_outputs_get_the_permissions_of_the_umask(tmp_path, umask_027):
    """Temporary files are private (0600); the renamed outputs are what the umask gives."""
    net = build_model("edsr", 2, num_feat=8, num_block=1)
    files = [
        write_image(tmp_path / "sr.png", np.zeros((8, 8, 3), np.uint8)),
        write_image(tmp_path / "sr16.png", np.zeros((8, 8, 3), np.uint16)),
        write_image(tmp_path / "sr.tif", np.zeros((8, 8, 1), np.uint16)),
        atomic_torch_save({"x": torch.zeros(2)}, tmp_path / "last.ckpt"),
        save_weights(net, tmp_path / "net.pth"),
        save_weights(net, tmp_path / "net.safetensors"),
    ]
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {oct(0o640)}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = write_image(tmp_path / "sr.png", np.full((8, 8, 3), 7, np.uint8))
    from PIL import Image

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")  # what a crash mid-write leaves
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(path, np.zeros((8, 8, 3), np.uint8))
    monkeypatch.undo()
    assert (read_image(path) == 7).all() and [p.name for p in tmp_path.iterdir()] == ["sr.png"]


# -- predict never reads its results ----------------------------------------------------------
def test_recursive_predict_never_reads_its_own_results(tmp_path, small_set):
    torch.manual_seed(0)
    ckpt = save_weights(build_model("edsr", 2, num_feat=8, num_block=1), tmp_path / "w.safetensors")
    photos = tmp_path / "photos"
    write_image(photos / "cat.png", read_image(small_set / "cat.png"))
    write_image(photos / "day2" / "cat2.png", read_image(small_set / "cat.png")[:40])
    common = [f"ckpt={ckpt}", f"input={photos}", "recursive=true", "progress=false"]
    for _ in range(2):  # the second run must not upscale the first run's results
        assert call_main("predict", *common, f"output={photos / 'sr'}").code == 0
    # Another output folder inside the input: earlier results there are not inputs either.
    assert call_main("predict", *common, f"output={photos / 'sr_again'}").code == 0
    for out in ("sr", "sr_again"):
        written = sorted(
            p.relative_to(photos / out).as_posix()
            for p in (photos / out).rglob("*.png")
            if not p.name.startswith(".")
        )
        assert written == ["cat.png", "day2/cat2.png"], out
    assert read_image(photos / "sr" / "cat.png").shape == (96, 96, 3)


def test_predict_advice_for_a_bad_file_is_not_a_training_setting(tmp_path, small_set):
    ckpt = save_weights(build_model("edsr", 2, num_feat=8, num_block=1), tmp_path / "w.safetensors")
    folder = tmp_path / "in"
    write_image(folder / "ok.png", read_image(small_set / "cat.png"))
    data = (folder / "ok.png").read_bytes()
    (folder / "bad.png").write_bytes(data[: len(data) // 2])
    outcome = call_main(
        "predict", f"ckpt={ckpt}", f"input={folder}", f"output={tmp_path / 'o'}", "progress=false"
    )
    assert outcome.code == 1  # some images failed
    skipped = [e for e in outcome.errors if "bad.png" in e]
    assert skipped and all("skip_bad" not in e for e in outcome.errors)


# -- image size: large genuine images are not "corrupt" ---------------------------------------
def _flat_png(path: Path, width: int, height: int) -> Path:
    """A genuine (flat grey) RGB PNG of any size, compressed row block by row block."""
    squeeze, body = zlib.compressobj(1), []
    row = bytes(1 + 3 * width)
    for _ in range(height // 100):
        body.append(squeeze.compress(row * 100))
    body.append(squeeze.compress(row * (height % 100)) + squeeze.flush())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", b"".join(body))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b""))
    return path


def test_a_genuine_182_megapixel_png_is_not_called_corrupt(tmp_path, monkeypatch):
    big = _flat_png(tmp_path / "scan.png", 13500, 13500)  # 182 MP, about 0.6 MB compressed
    assert image_info(big)[:2] == (13500, 13500)  # Pillow's own guard refused it
    monkeypatch.setenv("MEDSR_MAX_IMAGE_PIXELS", "100000000")
    with pytest.raises(DataError, match=r"MEDSR_MAX_IMAGE_PIXELS=182250000") as err:
        image_info(big)
    assert "corrupt" not in str(err.value)


# -- resume keeps progress ----------------------------------------------------------------------
def _ckpt(path: Path, step: int, mtime: int) -> Path:
    atomic_torch_save({"global_step": step, "state_dict": {}}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_resume_auto_falls_back_from_a_truncated_last_ckpt(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    earlier = tmp_path / "outputs" / "train" / "EXP" / "2030-01-01_12-00-00"
    old = _ckpt(earlier / "checkpoints" / "last.ckpt", 100, 1_000)
    run = tmp_path / "outputs" / "train" / "EXP" / "2030-01-02_12-00-00"
    _ckpt(run / "checkpoints" / "step0000004_psnr30.000.ckpt", 4, 2_000)
    step8 = _ckpt(run / "checkpoints" / "step0000008_psnr31.000.ckpt", 8, 3_000)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(step8.read_bytes()[:300])  # killed while written by a non-atomic copy
    os.utime(last, (4_000, 4_000))
    with caplog.at_level(logging.INFO, logger="medsr.training.resume"):
        # In place (SLURM requeue, fixed hydra.run.dir): this folder's newest complete file.
        assert Path(resume.resume_checkpoint("auto", None, run, "train", "EXP")) == step8
        assert "last.ckpt is not a complete checkpoint" in caplog.text
        assert "continuing from the newest complete checkpoint step0000008" in caplog.text
        # A new run of the experiment: the newest run, and the folder it continues is named.
        new = tmp_path / "outputs" / "train" / "EXP" / "2030-01-03_12-00-00"
        new.mkdir()
        caplog.clear()
        found = resume.resume_checkpoint("auto", None, new, "train", "EXP")
        assert Path(found).resolve() == step8
        assert f"continuing the run in {run}" in caplog.text and "resuming from" in caplog.text
        assert str(new) in caplog.text
    assert resume.resume_checkpoint(str(earlier), None, new, "train", "EXP") == str(old)


def test_a_run_continued_in_place_keeps_its_earlier_metrics(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("step,loss\n1,0.5\n")
    assert resume.keep_earlier_metrics(tmp_path) == [tmp_path / "csv" / "metrics_part1.csv"]
    (tmp_path / "csv" / "metrics.csv").write_text("step,loss\n2,0.4\n")
    assert resume.keep_earlier_metrics(tmp_path) == [tmp_path / "csv" / "metrics_part2.csv"]


# -- W&B never hangs a run ------------------------------------------------------------------------
def test_wandb_without_network_logs_offline_within_seconds(monkeypatch, caplog):
    import socket

    from medsr.training import wandb_mode

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nobody listens once it is closed
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING):
        assert wandb_mode.wandb_offline() is True
    assert "logs offline" in caplog.text and "wandb sync" in caplog.text
    # A server that takes the connection and never answers costs the probe's timeout, not
    # wandb's ~100 s.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        assert not wandb_mode.reachable(f"http://127.0.0.1:{silent.getsockname()[1]}", 0.5)
        assert time.monotonic() - start < 2


# -- progress -----------------------------------------------------------------------------------
def test_progress_lines_count_steps_with_rate_and_eta(caplog):
    from types import SimpleNamespace

    from medsr.training.callbacks import StepProgress

    trainer = SimpleNamespace(
        global_step=0, max_steps=6, is_global_zero=True, callback_metrics={"train/l_pix": 0.25}
    )
    progress = StepProgress(every_n_steps=3, bar=False)
    with caplog.at_level(logging.INFO, logger="medsr.training.callbacks.progress"):
        progress.on_train_start(trainer, None)
        for step in range(1, 7):
            trainer.global_step = step
            progress.on_train_batch_end(trainer, None, None, None, step)
        progress.on_train_end(trainer, None)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" |")[0] for line in lines] == [
        "step 1/6 (16.7%)",
        "step 3/6 (50.0%)",
        "step 6/6 (100.0%)",
    ]
    assert all("l_pix 0.25" in line and "steps/s" in line and "ETA " in line for line in lines)


def test_lightning_logging_interval_warning_is_not_shown(recwarn):
    import warnings

    from medsr._cli import quiet_third_party

    quiet_third_party()
    warnings.warn(
        "The number of training batches (4) is smaller than the logging interval "
        "Trainer(log_every_n_steps=100). Set a lower value for log_every_n_steps if you want to "
        "see logs for the training epoch.",
        stacklevel=1,
    )
    assert not [w for w in recwarn if "logging interval" in str(w.message)]


# -- the GAN's settings come with the model ----------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "patch"),
    [
        (["model=esrgan", "data=messidor"], 128),
        (["model=esrgan", "data=df2k"], 128),
        (["model=esrgan", "data=samples"], 128),
        (["model=esrgan", "data=messidor", "data.patch_size=64"], 64),
        (["model=edsr", "data=messidor"], 192),
        (["model=edsr", "data=samples"], 96),
    ],
)
def test_choosing_esrgan_brings_the_gan_settings(overrides, patch):
    cfg = compose_config("train", *overrides)
    assert cfg.data.patch_size == patch
    gan = "model=esrgan" in overrides
    if gan:
        assert cfg.model.lit.network_d.input_size == patch
    assert cfg.model.ema_decay == (0.999 if gan else None)
    # A GAN's last weights are tested and exported (no choice by validation PSNR).
    assert cfg.checkpoint.select == ("last" if gan else "best")


# -- a run that trains nothing is not a finished run -------------------------------------------
def test_a_run_that_ends_before_its_first_step_is_refused(tmp_path, small_set, samples_dir):
    data = ["data=folder", f"data.train_dirs=[{samples_dir / 'train'}]"]
    outcome = call_main(
        "train",
        "debug=fast",
        *TINY,
        "scale=2",
        *data,
        f"data.val_dirs=[{small_set}]",
        "+trainer.limit_train_batches=0",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert outcome.code == 2 and len(outcome.errors) == 1
    assert "before its first optimiser step" in outcome.errors[0]
    assert "limit_train_batches=0" in outcome.errors[0]
    assert not list((tmp_path / "run").glob("*.pth"))  # nothing exported
    result = json.loads((tmp_path / "run" / "job_result.json").read_text())
    assert result["status"] == "failed"
    assert incomplete_files(tmp_path / "run") == []


def test_stale_cache_builds_of_killed_runs_are_removed(tmp_path):
    import socket

    from medsr.data.cache import _remove_stale

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    pid = int(dead.stdout)
    host = socket.gethostname()
    folder = tmp_path / "samples-abc"
    stale = tmp_path / f".samples-abc.{host}.{pid}.tmp"
    alive = tmp_path / f".samples-abc.{host}.{os.getpid()}.tmp"
    other_host = tmp_path / f".samples-abc.elsewhere.{pid}.tmp"
    for d in (stale, alive, other_host):
        d.mkdir()
    _remove_stale(folder)
    assert not stale.exists() and alive.exists() and other_host.exists()


def test_a_missing_best_checkpoint_falls_back_to_the_best_one_left(tmp_path, caplog):
    """Killed after a new best replaced the old one but before last.ckpt said so, then resumed:
    the recorded best is gone, and the best file still there (by its own score) is exported."""
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from medsr.errors import ConfigError
    from medsr.training.factory import existing_best

    callback = ModelCheckpoint(dirpath=tmp_path, monitor="val/psnr_y", mode="max")
    callback.best_model_path = str(tmp_path / "step0000008_psnr20.484.ckpt")  # deleted
    for name, score in [
        ("step0000012_psnr20.900.ckpt", 20.9),
        ("step0000004_psnr20.100.ckpt", 20.1),
    ]:
        state = {"callbacks": {callback.state_key: {"current_score": torch.tensor(score)}}}
        torch.save(state, tmp_path / name)
    (tmp_path / "last.ckpt").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="medsr.training.factory"):
        assert existing_best(callback) == str(tmp_path / "step0000012_psnr20.900.ckpt")
    assert "step0000008_psnr20.484.ckpt is missing" in caplog.text
    for path in tmp_path.glob("step*.ckpt"):
        path.unlink()
    with pytest.raises(ConfigError, match="checkpoint.select=last"):
        existing_best(callback)
