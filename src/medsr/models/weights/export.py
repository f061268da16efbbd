"""Writing weights files: ``save_weights`` (any network) and ``export_generator`` (the generator
of a medsr training checkpoint, BasicSR style with ``params`` / ``params_ema``).

Files hold the value range their ``medsr_spec`` names (255 for EDSR/RCAN unless stated, as the
official releases), so every reader (medsr, BasicSR) gets the same outputs; ``load_pretrained``
converts back. Writes are atomic (``medsr.files``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from medsr.errors import WeightsError
from medsr.files import atomic_path
from medsr.models.common import model_range
from medsr.models.weights import keymaps
from medsr.models.weights.files import plain_spec

StateDict = dict[str, Tensor]

# Training checkpoints of runs with EMA: ``state_dict["net.*"]`` holds the average and this entry
# the raw weights training continues from (written by medsr.training.callbacks.EMAWeights).
EMA_CHECKPOINT_KEY = "medsr_ema"
NET_PREFIX = "net."
SUFFIXES = (".safetensors", ".pth", ".pt")
# Which training checkpoint an exported file holds: {"select": "last"|"best", "step", "file"}.
SELECTION_KEY = "medsr_checkpoint"


def file_state(model: nn.Module) -> tuple[StateDict, dict | None]:
    """(state dict in the file's value range, plain ``medsr_spec`` or None) of ``model``."""
    spec = getattr(model, "medsr_spec", None)
    spec = plain_spec(spec) if spec is not None else None
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    _, img_range = model_range(model)
    file_range = keymaps.default_file_range(spec)
    if img_range is not None and img_range != file_range:
        state = keymaps.rescale_range(state, img_range, file_range)
    return state, spec


def _write(
    path: Path, params: Mapping[str, StateDict], spec: dict | None, selection: dict | None = None
) -> Path:
    """``.safetensors``: the weights inference uses (``params_ema`` if present), spec and
    selection as JSON metadata; ``.pth``: ``{"params", ["params_ema"], "medsr_spec",
    ["medsr_checkpoint"]}``."""
    if path.suffix not in SUFFIXES:
        raise WeightsError(
            f"cannot save weights as {path.name}: use a .safetensors or .pth file name"
        )
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {"format": "pt"}
            if spec is not None:
                meta["medsr_spec"] = json.dumps(spec)
            if selection is not None:
                meta[SELECTION_KEY] = json.dumps(selection)
            save_file(dict(params.get("params_ema", params["params"])), str(tmp), metadata=meta)
        else:
            content: dict[str, Any] = dict(params)
            if spec is not None:
                content["medsr_spec"] = spec
            if selection is not None:
                content[SELECTION_KEY] = selection
            torch.save(content, tmp)
    return path


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights with its ``medsr_spec``: ``*.safetensors`` (spec in the metadata)
    or ``*.pth``/``*.pt`` (BasicSR-style ``{"params": state_dict, "medsr_spec": spec}``)."""
    state, spec = file_state(model)
    return _write(Path(path), {"params": state}, spec)


def raw_and_average(checkpoint: Mapping[str, Any]) -> tuple[StateDict, StateDict | None]:
    """The generator's raw weights and its EMA (None without EMA) from a medsr training checkpoint."""
    net = {
        k[len(NET_PREFIX) :]: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith(NET_PREFIX)
    }
    ema = checkpoint.get(EMA_CHECKPOINT_KEY)
    return (ema["net"], net) if ema is not None else (net, None)


def export_generator(
    net: nn.Module, checkpoint: str | Path | Mapping, path: str | Path, select: str | None = None
) -> Path:
    """Write the generator of a medsr training checkpoint to ``path``.

    ``.pth``: ``{"params": raw weights, "params_ema": EMA weights (runs with model.ema_decay),
    "medsr_spec": ...}``, as BasicSR saves ``net_g`` with EMA; every medsr reader
    (``load_pretrained``, ``medsr.predict``, ``medsr.evaluate``, ``model.init_from``) takes
    ``params_ema`` when present. ``.safetensors``: the weights evaluation uses (EMA if any).

    Args:
        net: a network of the checkpoint's architecture (its ``medsr_spec`` is stored).
        checkpoint: a Lightning checkpoint written by ``medsr.train`` (path or loaded dict).
        path: ``*.pth`` or ``*.safetensors``.
        select: how the checkpoint was chosen (``checkpoint.select``: ``last`` or ``best``),
            recorded with its step and file name under ``medsr_checkpoint``.
    """
    checkpoint, selection = _loaded(checkpoint, select)
    raw, average = raw_and_average(checkpoint)
    work = copy.deepcopy(net).cpu()
    params = {}
    for key, state in (("params", raw), ("params_ema", average)):
        if state is not None:
            work.load_state_dict(state)
            params[key], spec = file_state(work)
    return _write(Path(path), params, spec, selection)


def export_discriminator(
    net_d: nn.Module, checkpoint: str | Path | Mapping, path: str | Path, select: str | None = None
) -> Path:
    """Write the discriminator (``net_d.*``) of a GAN training checkpoint as BasicSR saves
    ``net_d``: ``{"params": ..., "medsr_checkpoint": ...}`` (``model.init_from_d`` reads it)."""
    checkpoint, selection = _loaded(checkpoint, select)
    prefix = "net_d."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    work = copy.deepcopy(net_d).cpu()
    work.load_state_dict(state)
    params, spec = file_state(work)
    return _write(Path(path), {"params": params}, spec, selection)


def _loaded(checkpoint: str | Path | Mapping, select: str | None) -> tuple[Mapping, dict | None]:
    """The checkpoint as a dict, and the selection record (None without ``select``)."""
    source = None if isinstance(checkpoint, Mapping) else Path(checkpoint).name
    if not isinstance(checkpoint, Mapping):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if select is None:
        return checkpoint, None
    selection = {"select": select, "step": int(checkpoint.get("global_step", -1))}
    return checkpoint, selection | ({"file": source} if source else {})
