"""Checks a training run passes before anything slow starts: settings that would train nothing
or fail later with a traceback, and folders it cannot write (found now, not at the first save
hours in). Each failure is one :class:`ConfigError` / :class:`DataError` line."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from medsr.errors import ConfigError
from medsr.files import check_writable
from medsr.models.interpolation import INTERPOLATION_MODES


def check_settings(cfg: DictConfig) -> None:
    """Refuse a model with nothing to train, a run of zero steps and a negative crop border."""
    arch = cfg.model.get("arch")
    if arch in INTERPOLATION_MODES:
        raise ConfigError(
            f"model={arch} is an interpolation baseline with nothing to train; score it with "
            f"python -m medsr.evaluate model={arch} (or baselines=[{arch}]), or train "
            "model=edsr_baseline|edsr|rcan|rrdbnet|esrgan"
        )
    steps, epochs = cfg.trainer.get("max_steps"), cfg.trainer.get("max_epochs")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps == 0 or steps < -1:
        raise ConfigError(
            f"trainer.max_steps={steps!r} trains nothing: set the number of training iterations, "
            "e.g. trainer.max_steps=300000"
        )
    if epochs == 0:
        raise ConfigError("trainer.max_epochs=0 trains nothing: leave it at -1 and set max_steps")
    crop = cfg.model.get("lit", {}).get("crop_border")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 0):
        raise ConfigError(
            f"model.lit.crop_border={crop!r} must be a whole number >= 0 (null = scale, the "
            "literature's convention)"
        )


def checkpoint_folders(cfg: DictConfig) -> list[Path]:
    """The folders the checkpoint callbacks write into (``callbacks.*.dirpath``)."""
    folders = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None and "dirpath" in node:
            try:
                folder = OmegaConf.select(cfg, f"callbacks.{name}.dirpath")
            except Exception:  # noqa: BLE001 - e.g. ${hydra:...} outside a Hydra run
                continue
            if folder:
                folders.append(Path(str(folder)))
    return folders


def _nearest_existing(folder: Path) -> Path:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_folders(cfg: DictConfig, out_dir: Path) -> None:
    """The run folder and the checkpoint folders can be written: those that exist, else the
    folder they will be made in (nothing is created here, so a run that fails on a setting
    leaves no empty folders)."""
    check_writable(_nearest_existing(out_dir), "hydra.run.dir=<folder>")
    for folder in checkpoint_folders(cfg):
        setting = "callbacks.model_checkpoint.dirpath / hydra.run.dir"
        check_writable(_nearest_existing(folder), setting)
