"""Load network weights: every official release, safely and strictly.

``load_pretrained(model, path)`` reads with ``torch.load(weights_only=True)`` (or safetensors),
unwraps the container (BasicSR ``params``/``params_ema``, medsr Lightning ``.ckpt``), detects
the key layout, converts it to medsr's modules (:mod:`medsr.models.weights.keymaps`) and loads it only
if every key and shape matches. ``read_spec`` reads the ``medsr_spec`` that rebuilds the network.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from medsr.errors import WeightsError
from medsr.models.common import model_range
from medsr.models.registry import arch_name
from medsr.models.weights import keymaps
from medsr.models.weights.files import (
    load_file,
    looks_like_safetensors,
    plain_spec,
    read_state_dict,
    show,
    spec_from_json,
)

StateDict = dict[str, Tensor]


def load_pretrained(
    model: nn.Module, path: str | os.PathLike, *, param_key: str | None = None, strict: bool = True
) -> nn.Module:
    """Load weights from any supported file into ``model``, converting official layouts.

    Supported: EDSR-PyTorch EDSR and official RCAN releases (0-255 range, ``sub_mean``/``add_mean``,
    legacy serialisation), original ESRGAN (``RRDB_trunk`` keys and the older ``model.N`` x4
    layout), BasicSR/Real-ESRGAN and the SwinIR model zoo (``params_ema`` preferred over ``params``;
    SwinIR's derived buffers are checked, then dropped), medsr Lightning
    checkpoints (``net.`` weights) and ``.safetensors``; ``module.`` prefixes are removed.

    Args:
        model: the network to fill (``build_model`` result, or a discriminator).
        path: weights file.
        param_key: top-level entry to read (e.g. ``"params"`` to skip ``params_ema``).
        strict: if True (default), any missing, unexpected or mis-shaped key raises and nothing
            is loaded; if False, matching keys load and the rest is reported in a warning
            (shape conflicts always raise).

    Returns:
        ``model``, loaded.

    Raises:
        WeightsError: missing/unreadable/unsafe file, another architecture, or a mismatch (the
            message names the detected format, missing and unexpected keys and shape conflicts).
    """
    converted, unmapped, label = converted_state(model, path, param_key)
    arch = arch_name(model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in converted]
    unexpected = unmapped + [k for k in converted if k not in expected]
    conflicts = [
        f"{k}: file {tuple(v.shape)} vs network {tuple(expected[k].shape)}"
        for k, v in converted.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if conflicts or (strict and (missing or unexpected)):
        raise WeightsError(
            _mismatch_message(path, label, model, arch, converted, missing, unexpected, conflicts)
        )
    if missing or unexpected:
        warnings.warn(
            f"{path}: loaded non-strictly; {len(missing)} network keys kept their values "
            f"({show(missing)}) and {len(unexpected)} file keys were ignored ({show(unexpected)})",
            stacklevel=2,
        )
    model.load_state_dict({k: v for k, v in converted.items() if k in expected}, strict=strict)
    return model


def converted_state(
    model: nn.Module, path: str | os.PathLike, param_key: str | None = None
) -> tuple[StateDict, list[str], str]:
    """The file's weights in ``model``'s key names and value range, the file keys no layout maps,
    and a description of the file's format. Another architecture's file raises."""
    state, where, spec = read_state_dict(path, param_key=param_key)
    fmt = keymaps.detect_format(state)
    label = f"{fmt}; {where}"
    arch = arch_name(model)
    file_arch = (
        keymaps.FORMAT_ARCH.get(fmt) or (spec or {}).get("arch") or keymaps.native_arch(state)
    )
    if arch and file_arch and file_arch != arch:
        raise WeightsError(
            f"{path}: holds {file_arch} weights ({label}) but the network is {arch}; "
            f"build the network as {file_arch} (model.arch / model=) or choose a {arch} file. Nothing was loaded."
        )
    mean, img_range = model_range(model)
    converted, unmapped = keymaps.to_medsr(state, fmt, mean, img_range, str(path))
    if fmt == keymaps.NATIVE and img_range is not None:
        converted = keymaps.rescale_range(converted, keymaps.default_file_range(spec), img_range)
    return converted, unmapped, label


def _mismatch_message(path, label, model, arch, converted, missing, unexpected, conflicts) -> str:
    file_desc = keymaps.describe(converted, arch)
    net_desc = keymaps.describe(model.state_dict(), arch)
    lines = [f"{path}: does not match the network (file format: {label}). Nothing was loaded."]
    if file_desc or net_desc:
        lines.append(
            f"  the file looks like: {file_desc or '?'}; the network is: {arch or type(model).__name__} {net_desc}"
        )
    for title, items in (
        ("missing from the file", missing),
        ("unexpected in the file", unexpected),
        ("shape conflicts", conflicts),
    ):
        if items:
            lines.append(f"  {title} ({len(items)}): {show(items)}")
    hint = channel_hint(converted, model.state_dict())
    lines.append(
        f"  {hint[0].upper()}{hint[1:]}"
        if hint
        else "  Build the network the file was trained as (model=, scale=, model.net.*) or use a matching file."
    )
    return "\n".join(lines)


def read_spec(path: str | os.PathLike) -> dict | None:
    """The ``medsr_spec`` (``{"arch", "scale", "net"}``) stored in a weights file, or None.

    Read from safetensors metadata, a ``.pth`` dict's ``medsr_spec`` entry, or a Lightning
    checkpoint's ``hyper_parameters["model_spec"]``. Official releases carry none.
    """
    path = Path(path)
    if path.is_file() and (path.suffix == ".safetensors" or looks_like_safetensors(path)):
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return spec_from_json((f.metadata() or {}).get("medsr_spec"), path)
        except Exception as e:
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    obj, _ = load_file(path)
    if not isinstance(obj, Mapping):
        return None
    hp = obj.get("hyper_parameters")
    spec = hp.get("model_spec") if isinstance(hp, Mapping) else obj.get("medsr_spec")
    return plain_spec(spec) if isinstance(spec, Mapping) else None


def channel_hint(file_state: dict[str, Tensor], net_state: dict[str, Tensor]) -> str | None:
    """The fix to name when an RGB file meets a one-channel network (first conv 3x the inputs)."""
    key = "conv_first.weight"
    if key not in file_state or key not in net_state:
        return None
    have, want = file_state[key].shape, net_state[key].shape
    if len(have) == 4 and len(want) == 4 and have[1] == 3 * want[1] and have[0] == want[0]:
        return (
            "the file was trained on 3-channel (RGB) images and the network takes 1 channel: "
            "add model.init_from_rgb=true to convert it (first conv summed over colours, last "
            "conv averaged), or build the network with model.net.num_in_ch=3 model.net.num_out_ch=3."
        )
    return None
