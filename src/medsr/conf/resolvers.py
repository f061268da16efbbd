"""OmegaConf resolvers of medsr's configs (``${samples_dir:train}``, ``${kiter:300000}``, ...).

Registered on import; every command verb imports this module before composing."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf


def samples_dir(split: str = "") -> str:
    """Folder of the sample images shipped inside the package (``train`` or ``val``)."""
    root = Path(str(resources.files("medsr") / "samples"))
    return str(root / split) if split else str(root)


def package_data(package: str) -> str:
    """Folder of the test images a dependency ships in its wheel: ``pydicom`` (CT, MR, NM, ...
    DICOM files) or ``nibabel`` (NIfTI volumes); found without importing the package."""
    import importlib.util

    folders = {"pydicom": ("data", "test_files"), "nibabel": ("tests", "data")}
    spec = importlib.util.find_spec(package) if package in folders else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package_data: {package!r} is not an installed pydicom or nibabel")
    return str(Path(next(iter(spec.submodule_search_locations)), *folders[package]))


def kilo_iterations(steps: int) -> str:
    """300000 -> '300k' (BasicSR run names); small counts stay as they are."""
    steps = int(steps)
    return f"{steps // 1000}k" if steps >= 1000 and steps % 1000 == 0 else str(steps)


def degradation_tag(name: str | None) -> str:
    """Run-name part of the LR model: '' for the default bicubic, else ``_<name>``
    (``RRDBNet_x4_f64b23g32_DF2K_realesrgan_1000k_B12``), so runs on other LR never share a name."""
    return "" if name in (None, "", "bicubic") else f"_{name}"


def auto_precision() -> str:
    """bf16-mixed where the GPU supports it, 16-mixed on older GPUs, 32-true on CPU.

    bf16 autocast on CPU is hundreds of times slower than float32, so CPU stays float32.
    """
    import torch

    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def wandb_offline() -> bool:
    """Offline unless the user set WANDB_MODE or has credentials; online without an API key is
    an error, an unreachable server a warning and offline (``medsr.training.wandb_mode``)."""
    from medsr.training.wandb_mode import wandb_offline as decide

    return decide()


def wandb_group(default: str) -> str:
    """W&B group: ``<task>_sweep_<sweep folder>`` for the jobs of a multirun (all together), else ``default``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return default
    hydra_cfg = HydraConfig.get()
    return f"{hydra_cfg.job.name}_sweep_{Path(hydra_cfg.sweep.dir).name}"


def run_dir() -> str | None:
    """The Hydra run folder of this job, or None outside a Hydra run (tests composing configs)."""
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def run_tags(run_name: str) -> list[str]:
    """``EDSR_x2_f256b32_DF2K_300k_B16`` -> ``[EDSR, x2, f256b32, DF2K, 300k, B16]`` (W&B tags)."""
    return [part for part in str(run_name).split("_") if part]


def multiply(a: int, b: int) -> int:
    """``${mul:64,${scale}}``: an HR patch from an LR patch (SwinIR's presets state the LR one)."""
    return int(a) * int(b)


def run_weights(run_name: str, suffix: str = "") -> str:
    """Exported weights of the newest finished training run ``run_name`` (see ``medsr.training.resume``);
    ``${run_weights:<name>,_net_d}``: its discriminator."""
    from medsr.training.resume import run_weights as find

    return find(run_name, suffix)


def x2_run_weights(scale: int, run_name: str) -> str | None:
    """The x2 run's weights for a x3/x4 run, None at x2 or without such a run (from scratch)."""
    from medsr.training.resume import x2_run_weights as find

    return find(scale, run_name)


def register_resolvers() -> None:
    """Register medsr's OmegaConf resolvers (idempotent)."""
    resolvers = {
        "samples_dir": samples_dir,
        "package_data": package_data,
        "kiter": kilo_iterations,
        "degradation_tag": degradation_tag,
        "auto_precision": auto_precision,
        "wandb_offline": wandb_offline,
        "wandb_group": wandb_group,
        "run_tags": run_tags,
        "run_dir": run_dir,
        "run_weights": run_weights,
        "x2_run_weights": x2_run_weights,
        "mul": multiply,
    }
    cached = {"x2_run_weights"}  # one answer (and one log line) per config
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=name in cached)


register_resolvers()
