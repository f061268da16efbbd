"""The methods of a results table, from ``medsr.evaluate``'s settings: interpolation baselines,
``model=`` + ``ckpt=``, and ``ckpts={label: file or {model, ckpt, net, tag}}``."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from omegaconf import DictConfig

from medsr.conf.compose import model_config
from medsr.errors import ConfigError, whole_number
from medsr.evaluation.consistency import BackProjection
from medsr.evaluation.inference import Upscaler, parse_tta
from medsr.evaluation.networks import load_network
from medsr.evaluation.scoring import Method
from medsr.models.interpolation import INTERPOLATION_MODES

Entry = tuple[Mapping | None, str | None, str | None]  # (model config, weights file, label)


def method_entries(cfg: DictConfig) -> list[Entry]:
    """(model config, weights file, label) of every method, baselines first, duplicates dropped."""
    entries: list[Entry] = []
    for mode in cfg.get("baselines") or []:
        if mode not in INTERPOLATION_MODES:
            raise ConfigError(
                f"baselines=[..., {mode}, ...]: use interpolation modes {', '.join(INTERPOLATION_MODES)}"
            )
        entries.append((model_config(mode), None, None))
    model = cfg.get("model")
    if model is not None and model.get("arch") in INTERPOLATION_MODES:
        entries.append((model, None, None))
    elif model is not None or cfg.get("ckpt"):
        entries.append((model, cfg.get("ckpt"), None))
    ckpts = cfg.get("ckpts") or {}
    if not isinstance(ckpts, Mapping):
        raise ConfigError(
            f"ckpts={ckpts!r} is not a mapping; write ckpts='{{edsr: <file>, rcan: <file>}}'"
        )
    for label, value in ckpts.items():
        if isinstance(value, Mapping):
            conf = model_config(str(value.get("model", label)), required=False)
            if conf is not None and value.get("net") is not None:
                conf.net = value["net"]
            if conf is not None and value.get("tag") is not None:
                conf.tag = value["tag"]
            entries.append((conf, value.get("ckpt"), str(label)))
        else:
            entries.append((model_config(str(label), required=False), str(value), str(label)))
    unique, seen = [], set()
    for conf, ckpt, label in entries:
        key = ((conf or {}).get("arch"), ckpt)
        if ckpt is None and key in seen:
            continue
        seen.add(key)
        unique.append((conf, ckpt, label))
    if not unique:
        raise ConfigError(
            "nothing to evaluate: give model=<name> ckpt=<file>, ckpts={<name>: <file>} or baselines=[bicubic]"
        )
    return unique


def build_methods(
    cfg: DictConfig, scale: int, device: torch.device, projection: BackProjection | None = None
) -> list[Method]:
    """One :class:`Method` per entry; networks get ``tta``, ``tile`` and ``precision`` from ``cfg``
    (interpolations run without self-ensemble); every method is back-projected with
    ``projection`` (``consistency=project``); self-ensembles also measure their spread."""
    tta = parse_tta(cfg.get("tta"))
    methods: list[Method] = []
    for conf, ckpt, label in method_entries(cfg):
        net, _, tag = load_network(ckpt, scale, conf)
        learned = ckpt is not None
        name = tag or label
        if any(m.name == name for m in methods):  # e.g. EDSR baseline and EDSR in one table
            name = f"{name}_{(conf or {}).get('size_tag') or label or ckpt}"
        upscaler = Upscaler(
            net,
            scale,
            device=device,
            precision=str(cfg.precision),
            tta=tta and learned,
            tile=whole_number("tile", cfg.tile),
            tile_overlap=whole_number("tile_overlap", cfg.tile_overlap),
            projection=projection,
            spread=tta and learned,
        )
        methods.append(Method(name + ("+" if tta and learned else ""), upscaler))
    return methods
