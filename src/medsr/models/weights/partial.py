"""Starting a network from another scale's weights, as BasicSR and the official EDSR/RCAN codes
start x3/x4 from the trained x2 model: every tensor whose name and shape match is loaded, the
scale-dependent layers (upsampler; RRDBNet's pixel-unshuffle input and output head) keep their
initialisation.

``model.init_strict=false`` takes this path (``strict_load_g: false`` in BasicSR's options).
"""

from __future__ import annotations

import logging
import os

from torch import nn

from medsr.errors import WeightsError
from medsr.models.weights.files import show
from medsr.models.weights.load import converted_state, load_pretrained

log = logging.getLogger(__name__)

# Top-level modules whose shapes or presence depend on the scale: the upsampler and the first
# and last layers around it (medsr's and BasicSR's names for EDSR, RCAN, RRDBNet and SwinIR).
SCALE_LAYERS = (
    "conv_first",
    "upsample",
    "conv_up",
    "conv_hr",
    "conv_before_upsample",
    "conv_last",
)


def scale_dependent(key: str) -> bool:
    """Whether ``key`` belongs to a layer that may differ between scales."""
    return key.split(".", 1)[0].startswith(SCALE_LAYERS)


def load_matching(
    model: nn.Module, path: str | os.PathLike, *, param_key: str | None = None
) -> list[str]:
    """Load every tensor of ``path`` whose name and shape match ``model``; report the rest.

    Args:
        model: the network to fill.
        path: any weights file ``load_pretrained`` reads.
        param_key: top-level entry to read (e.g. ``"params"``).

    Returns:
        The network's keys that kept their values (logged in one line).

    Raises:
        WeightsError: when keys outside the upsampler and the first/last layers would be
            skipped (another architecture or size), naming them; nothing is loaded then.
    """
    converted, unmapped, label = converted_state(model, path, param_key)
    expected = model.state_dict()
    loaded = {k: v for k, v in converted.items() if k in expected and v.shape == expected[k].shape}
    kept = [k for k in expected if k not in loaded]
    ignored = unmapped + [k for k in converted if k not in loaded]
    wrong = [k for k in kept + ignored if not scale_dependent(k)]
    if wrong:
        raise WeightsError(
            f"{path} ({label}): model.init_strict=false loads the layers that match and leaves only "
            f"the upsampler and the first/last layers to their initialisation, but {len(wrong)} "
            f"other tensor(s) do not match: {show(wrong)}. Build the network the file was trained "
            "as (model.net.*), or use another file. Nothing was loaded."
        )
    model.load_state_dict(loaded, strict=False)
    log.info(
        "initialised from %s: %d tensors loaded; kept their initialisation (scale-dependent "
        "layers): %s; ignored in the file: %s",
        path,
        len(loaded),
        ", ".join(kept) or "none",
        ", ".join(ignored) or "none",
    )
    return kept


def load_init(model: nn.Module, path: str, strict: bool, param_key: str | None = None) -> None:
    """``model.init_from`` loading: ``load_pretrained`` when ``strict``, else ``load_matching``."""
    if strict:
        load_pretrained(model, path, param_key=param_key)
    else:
        load_matching(model, path, param_key=param_key)
