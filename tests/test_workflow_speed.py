"""Speed switches (compile, channels_last) train the same model with the same checkpoint layout, and
the training-throughput benchmark runs (its numbers are not asserted: benchmarks print tables)."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from helpers import cpu_trainer
from medsr.models import build_model
from medsr.training import SRModule
from medsr.training.factory import compile_networks

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\)"),
    pytest.mark.filterwarnings(
        "ignore:You defined a `validation_step` but have no `val_dataloader`"
    ),
]
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


def fit_two_steps(compiled: bool, channels_last: bool) -> SRModule:
    torch.manual_seed(0)
    module = SRModule(
        build_model("edsr", 2, num_feat=8, num_block=1),
        2,
        optimizer=partial(torch.optim.SGD, lr=0.1),
        channels_last=channels_last,
    )
    if compiled:
        compile_networks(module)
    g = torch.Generator().manual_seed(1)
    data = [
        {"lr": torch.rand(3, 8, 8, generator=g), "hr": torch.rand(3, 16, 16, generator=g)}
        for _ in range(4)
    ]
    trainer = cpu_trainer(2)
    trainer.fit(module, DataLoader(data, batch_size=2))
    return module


def test_compiled_channels_last_training_matches_eager_and_keeps_checkpoint_keys():
    eager = fit_two_steps(compiled=False, channels_last=False)
    fast = fit_two_steps(compiled=True, channels_last=True)
    assert list(fast.state_dict()) == list(eager.state_dict())  # checkpoints load either way
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)
    x = torch.rand(1, 3, 12, 12)
    torch.testing.assert_close(fast(x), eager(x), rtol=1e-4, atol=1e-5)


def test_throughput_benchmark_prints_a_row_per_switch():
    run = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--models",
            "edsr",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--no-compile",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| edsr")]
    settings = [(r[3].strip(), r[4].strip(), r[5].strip()) for r in rows]
    assert settings == [
        ("32-true", "off", "off"),
        ("32-true", "on", "off"),
        ("bf16-mixed", "off", "off"),
    ]
    for r in rows[:2]:  # float32 rows: steps/s and images/s = steps/s x batch
        steps, images = float(r[7]), float(r[8])
        assert steps > 0 and abs(images - 4 * steps) <= 0.1 + 1e-3 * images
    assert re.search(r"^# Training throughput, .*tiny networks", run.stdout, re.M)
