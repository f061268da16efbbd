"""Utilities for tests that run the entry points as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TINY_EDSR = ["model=edsr_baseline", "model.net.num_feat=8", "model.net.num_block=1"]
FAST_TRAIN = [
    "trainer=cpu",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "data.patch_size=32",
    "data.batch_size=2",
    "data.num_workers=0",
]


def run_module(module: str, *overrides: str, run_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m <module> <overrides> hydra.run.dir=<run_dir>`` with W&B offline."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", module, *overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
