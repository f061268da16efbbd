"""Shared fixtures: real images from ../shared/data (skipped when absent) and the shipped samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SAMPLES = REPO_ROOT / "src" / "medsr" / "samples"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; tests that need it skip on a user's clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (only in the project's workspace and CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture
def compose():
    """``compose(name, *overrides)``: a packaged config as Hydra composes it (helpers.compose_config)."""
    from helpers import compose_config

    return compose_config


@pytest.fixture(autouse=True)
def _forget_hydra_runtime():
    """Tests that call a verb in-process set Hydra's global runtime (helpers.in_process_config);
    no later test may see it."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
