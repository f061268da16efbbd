"""Reading weights files safely: ``torch.load(weights_only=True)`` or safetensors, never code.

Unwraps the containers in use (BasicSR ``params``/``params_ema``, medsr Lightning checkpoints,
plain state dicts) and explains, in one message, why a file cannot be read.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from medsr.errors import WeightsError

StateDict = dict[str, Tensor]
SHOW = 8  # keys listed per category in messages


def looks_like_safetensors(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n < path.stat().st_size


def load_file(path: Path) -> tuple[Any, dict[str, str] | None]:
    """The file's top-level object and, for safetensors, its metadata. Never runs file code."""
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path}; check the path you gave (e.g. model.init_from= or ckpt=)"
        )
    if path.suffix == ".safetensors" or looks_like_safetensors(path):
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            return load_file(str(path), device="cpu"), meta
        except Exception as e:  # the library raises several private error types
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        with warnings.catch_warnings():
            # Protocol notes from the weights-only unpickler are noise: it refuses what it cannot read.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True), None
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise WeightsError(f"{path}: not a PyTorch weights file ({_first_line(e)})") from None
        raise WeightsError(
            f"{path}: refused to load. The file holds Python objects besides tensors and plain "
            f"containers ({_unpickler_reason(str(e))}); unpickling them can run arbitrary code, so medsr "
            f"loads weights only with torch.load(weights_only=True). If the object named is a torch "
            f"internal, the file is truncated or corrupted: download it again. Otherwise, if you trust "
            f"the file, extract its tensors once (torch.load(..., weights_only=False), then torch.save "
            f"the state dict, or medsr.models.save_weights to .safetensors) and use that file."
        ) from None
    except Exception as e:  # torch raises KeyError, RuntimeError, EOFError, ... on damaged files
        if _truncated_zip(path):
            raise WeightsError(
                f"{path}: the file is truncated (its end is missing: an interrupted download, copy "
                "or save); download or copy it again"
            ) from None
        raise WeightsError(
            f"{path}: not a PyTorch weights file, or it is truncated ({_first_line(e)})"
        ) from None


def _truncated_zip(path: Path) -> bool:
    """A zip archive (torch.save's format) whose central directory, written last, is missing."""
    with path.open("rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return False
    try:
        with zipfile.ZipFile(path):
            return False
    except zipfile.BadZipFile:
        return True


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _unpickler_reason(msg: str) -> str:
    """The line of torch's weights-only refusal that names the offending global or opcode."""
    for line in msg.splitlines()[1:]:
        line = line.split("WeightsUnpickler error:")[-1].strip()
        if line and not line.startswith(
            ("Check the documentation", "(1)", "(2)", "Please file an issue")
        ):
            return line.split(" Please use")[0]
    return "an object the weights-only unpickler does not allow"


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(v, Tensor) for v in obj.values())
    )


def _strip_prefixes(state: Mapping[str, Tensor]) -> StateDict:
    """Drop DataParallel's ``module.`` and torch.compile's ``_orig_mod.`` wrappers."""
    out = {}
    for key, value in state.items():
        while key.startswith(("module.", "_orig_mod.")):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def read_state_dict(
    path: str | os.PathLike, *, param_key: str | None = None
) -> tuple[StateDict, str, dict | None]:
    """Read the generator state dict of any supported file, unconverted.

    Args:
        path: weights file.
        param_key: top-level entry to use (``params``, ``params_ema``, ``state_dict``, ...);
            default: ``params_ema``, else ``params``, else a Lightning ``state_dict``'s ``net.``
            weights, else the file itself when it is a flat state dict.

    Returns:
        (state dict, description of the container, stored ``medsr_spec`` or None).
    """
    path = Path(path)
    obj, meta = load_file(path)
    if meta is not None:
        return (
            _strip_prefixes(obj),
            "safetensors file",
            spec_from_json(meta.get("medsr_spec"), path),
        )
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a dict of weights")
    spec = obj.get("medsr_spec") if isinstance(obj.get("medsr_spec"), Mapping) else None
    lightning = "pytorch-lightning_version" in obj and isinstance(obj.get("state_dict"), Mapping)
    if lightning:
        hp = obj.get("hyper_parameters")
        spec = (
            hp.get("model_spec")
            if isinstance(hp, Mapping) and isinstance(hp.get("model_spec"), Mapping)
            else None
        )
    if param_key is not None:
        if param_key not in obj:
            raise WeightsError(
                f"{path}: has no entry {param_key!r}; its top-level keys are {show(list(obj))}"
            )
        state, where = obj[param_key], f"entry {param_key!r}"
    elif "params_ema" in obj:
        state, where = obj["params_ema"], "BasicSR/Real-ESRGAN file, entry 'params_ema'"
    elif "params" in obj:
        state, where = obj["params"], "BasicSR/Real-ESRGAN file, entry 'params'"
    elif isinstance(obj.get("state_dict"), Mapping):
        state, where = (
            obj["state_dict"],
            "Lightning checkpoint" if lightning else "entry 'state_dict'",
        )
    elif _is_state_dict(obj):
        state, where = obj, "plain state dict"
    else:
        raise WeightsError(
            f"{path}: no state dict found; top-level keys are {show(list(obj))}. "
            f"Pass param_key=<the entry that holds the weights>"
        )
    if isinstance(state, Mapping) and any(str(k).startswith("net.") for k in state):
        # A LightningModule's state dict: keep the generator (`net.`), drop net_d., losses, metrics.
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    elif lightning and param_key is None:
        prefixes = sorted({str(k).split(".", 1)[0] + "." for k in state})
        raise WeightsError(
            f"{path}: Lightning checkpoint without generator weights (no 'net.' keys); prefixes: {prefixes}"
        )
    if not _is_state_dict(state):
        raise WeightsError(
            f"{path}: {where} is not a dict of tensors (pass param_key= to choose another entry)"
        )
    return _strip_prefixes(state), where, spec


def has_raw_and_average(path: str | os.PathLike) -> bool:
    """A BasicSR-style file with both the raw weights (``params``) and their EMA (``params_ema``)."""
    path = Path(path)
    if path.suffix == ".safetensors" or looks_like_safetensors(path):
        return False
    obj, _ = load_file(path)
    return isinstance(obj, Mapping) and "params" in obj and "params_ema" in obj


def show(keys: Sequence[Any]) -> str:
    shown = ", ".join(str(k) for k in keys[:SHOW])
    return f"{shown}{', ...' if len(keys) > SHOW else ''}"


def spec_from_json(text: str | None, path: Path) -> dict | None:
    if not text:
        return None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        warnings.warn(f"{path}: ignoring unreadable medsr_spec metadata", stacklevel=3)
        return None
    return spec if isinstance(spec, dict) else None


def plain_spec(obj: Any) -> Any:
    """JSON-able copy of a spec (OmegaConf containers, tuples and scalars included)."""
    if isinstance(obj, Mapping):
        return {str(k): plain_spec(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return [plain_spec(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise WeightsError(
        f"medsr_spec value {obj!r} ({type(obj).__name__}) cannot be stored in a weights file"
    )
