"""Which network and device a command runs: a weights file (or an interpolation) -> network.

Shared by ``medsr.evaluate``, ``medsr.predict`` and ``medsr.export``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from medsr.errors import ConfigError, WeightsError
from medsr.models import build_model, load_pretrained, read_spec
from medsr.models.interpolation import INTERPOLATION_MODES
from medsr.models.registry import display_name
from medsr.ops import check_scale


def load_network(
    ckpt: str | None, scale: int | None, model: Mapping | None = None
) -> tuple[nn.Module, int, str]:
    """Build the network a weights file holds and load it.

    The file's stored spec (medsr files) decides architecture, size and scale; for files
    without one (official releases) ``model`` (a model config: ``arch``, ``net``) and
    ``scale`` describe the network. Interpolation baselines (``arch`` nearest / bilinear /
    bicubic) need no file.

    Args:
        ckpt: weights file in any format ``load_pretrained`` accepts, or None for baselines.
        scale: requested scale; None takes it from the file.
        model: model config (``arch``, ``tag``, ``net``) or None.

    Returns:
        (network in eval mode, scale, method name for tables: the config's ``tag`` or the arch).

    Raises:
        ConfigError: nothing says which network to build, or no file for a learned network.
        WeightsError: the file holds another architecture or another scale, or does not fit.
    """
    arch = model.get("arch") if model else None
    tag = (model.get("tag") if model else None) or arch
    if scale is not None:
        scale = check_scale(scale)  # before any message offers "a x5 checkpoint"
    if arch in INTERPOLATION_MODES:
        if ckpt:
            raise ConfigError(
                f"model={arch} is an interpolation and takes no weights; drop ckpt={ckpt}"
            )
        if scale is None:
            raise ConfigError(f"model={arch} needs scale=<2|3|4>")
        return build_model(arch, int(scale)).eval(), int(scale), tag
    if not ckpt:
        raise ConfigError(
            f"model={arch} needs its trained weights: add ckpt=<file> "
            "(a medsr checkpoint or an official release)"
            if arch
            else "say which network to run: ckpt=<weights file> (plus model=<name> for files without a stored config)"
        )
    spec = read_spec(ckpt)
    if spec is not None:
        if arch and spec["arch"] != arch:
            raise WeightsError(
                f"{ckpt} holds {spec['arch']} weights but model= builds {arch}; drop model= or choose a {arch} checkpoint"
            )
        if scale is not None and int(spec["scale"]) != int(scale):
            raise WeightsError(
                f"{ckpt} holds x{spec['scale']} {spec['arch']} weights but scale={scale}; "
                f"set scale={spec['scale']} or choose a x{scale} checkpoint"
            )
        arch, scale, net_kwargs = spec["arch"], int(spec["scale"]), dict(spec.get("net") or {})
        tag = tag or display_name(arch)
    else:
        if not arch or scale is None:
            raise ConfigError(
                f"{ckpt} carries no network description (official releases do not); "
                "add model=<edsr_baseline|edsr|rcan|rrdbnet|esrgan|swinir|swinir_light> and scale=<2|3|4> (and model.net.* for other sizes)"
            )
        net_kwargs = (
            OmegaConf.to_container(model["net"], resolve=True)
            if isinstance(model["net"], DictConfig)
            else dict(model["net"] or {})
        )
    net = build_model(arch, int(scale), **net_kwargs)
    try:
        load_pretrained(net, ckpt)
    except WeightsError as err:
        raise WeightsError(
            f"{err} (network built as {arch} x{scale} {net_kwargs}; check model=, model.net.* and scale=)"
        ) from None
    if spec is not None and spec.get("stored"):  # medical data: predict normalises as trained
        net.medsr_spec["stored"] = spec["stored"]
    return net.eval(), int(scale), tag


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"device={device!r} is not a device; use auto, cpu, cuda or cuda:<n>"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={device} but no CUDA GPU is available; use device=cpu or device=auto"
        )
    return dev
