"""The trained generator as a stand-alone weights file, BasicSR style (``params`` / ``params_ema``)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

from medsr.callbacks.checkpoint_io import atomic_torch_save
from medsr.callbacks.ema import raw_and_average
from medsr.models import save_weights


def _file_state(net: nn.Module, state: dict[str, torch.Tensor], folder: Path) -> tuple[dict, dict | None]:
    """``state`` as ``save_weights`` writes it for ``net`` (value range of the file format)."""
    work = copy.deepcopy(net).cpu()
    work.load_state_dict(state)
    saved = torch.load(save_weights(work, folder / "w.pth"), map_location="cpu", weights_only=True)
    return saved["params"], saved.get("medsr_spec")


def export_generator(net: nn.Module, checkpoint: str | Path | dict, path: str | Path) -> Path:
    """Write the generator of a medsr training checkpoint to ``path``.

    ``.pth``: ``{"params": raw weights, "params_ema": EMA weights (runs with model.ema_decay),
    "medsr_spec": ...}``, as BasicSR saves ``net_g`` with EMA; every medsr reader
    (``load_pretrained``, ``medsr.predict``, ``medsr.evaluate``, ``model.init_from``) takes
    ``params_ema`` when present. ``.safetensors``: the weights evaluation uses (EMA if any).

    Args:
        net: a network of the checkpoint's architecture (its ``medsr_spec`` is stored).
        checkpoint: a Lightning checkpoint written by ``medsr.train`` (path or loaded dict).
        path: ``*.pth`` or ``*.safetensors``.
    """
    if not isinstance(checkpoint, dict):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    raw, average = raw_and_average(checkpoint)
    path = Path(path)
    if path.suffix == ".safetensors":
        work = copy.deepcopy(net).cpu()
        work.load_state_dict(average if average is not None else raw)
        return save_weights(work, path)
    with tempfile.TemporaryDirectory() as tmp:
        params, spec = _file_state(net, raw, Path(tmp))
        content = {"params": params}
        if average is not None:
            content["params_ema"] = _file_state(net, average, Path(tmp))[0]
    if spec is not None:
        content["medsr_spec"] = spec
    return atomic_torch_save(content, path)
