"""Utilities for tests that run the entry points as a user would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import medsr._cli  # noqa: F401  (registers the config resolvers)

TINY_EDSR = ["model=edsr_baseline", "model.net.num_feat=8", "model.net.num_block=1"]
FAST_TRAIN = ["debug=fast"]  # conf/debug/fast.yaml: CPU, 4 steps, 32 px patches, batch 2


def compose_config(name: str, *overrides: str, return_hydra_config: bool = False) -> DictConfig:
    """The packaged config ``name`` (train, evaluate, predict, interpolate) composed by Hydra."""
    with initialize_config_module(config_module="medsr.conf", version_base="1.3"):
        return compose(
            config_name=name, overrides=list(overrides), return_hydra_config=return_hydra_config
        )


def degradation_preset(name: str) -> dict:
    """The packaged ``degradation=<name>`` settings as a plain dict (tests edit copies of it)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(
        compose_config("train", f"degradation={name}").degradation, resolve=True
    )


def in_process_config(name: str, *overrides: str, run_dir: Path) -> DictConfig:
    """``name`` composed as ``python -m medsr.<verb>`` would see it, for calling the verb's
    function in this process: Hydra's runtime (``${hydra:runtime.output_dir}``) is set to
    ``run_dir``."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = compose_config(name, *overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_module(
    module: str, *overrides: str, run_dir: Path, timeout: int = 600
) -> subprocess.CompletedProcess:
    """``python -m <module> <overrides> hydra.run.dir=<run_dir>`` with W&B offline."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", module, *overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def official_esrgan_file(net: torch.nn.Module, path: Path) -> Path:
    """``net`` saved with the original ESRGAN repo's RRDBNet_arch.py key names, as in RRDB_PSNR_x4.pth.

    Renamed here independently of medsr's key maps, so loading it tests them.
    """
    rules = [
        (r"^body\.(\d+)\.rdb([123])\.", r"RRDB_trunk.\1.RDB\2."),
        (r"^conv_body\.", "trunk_conv."),
        (r"^conv_up1\.", "upconv1."),
        (r"^conv_up2\.", "upconv2."),
        (r"^conv_hr\.", "HRconv."),
    ]
    state = {}
    for key, value in net.state_dict().items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        state[key] = value.clone()
    assert "RRDB_trunk.0.RDB1.conv1.weight" in state and "trunk_conv.weight" in state
    torch.save(state, path)
    return path


def cpu_trainer(max_steps: int, val_every: int | None = None, **kwargs):
    """A quiet CPU Lightning Trainer (no logger, bar, summary or sanity check). With
    ``val_every``: validation every that many steps; else no validation and no checkpoints.
    ``kwargs`` override any of these."""
    import lightning.pytorch as pl

    settings = {
        "accelerator": "cpu",
        "max_steps": max_steps,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    if val_every:
        settings |= {"val_check_interval": val_every, "check_val_every_n_epoch": None}
    else:
        settings |= {"limit_val_batches": 0, "enable_checkpointing": False}
    return pl.Trainer(**(settings | kwargs))
