"""SwinIR weight files: the official model zoo's derived buffers, checked and dropped.

The released files (and BasicSR's) hold, besides the parameters, each block's
``attn.relative_position_index`` (a function of the window size) and, in shifted blocks,
``attn_mask`` (the shift mask at the training patch size, e.g. 48 or 64). medsr derives both at
run time, for any input size, so a file loads whatever patch size it was trained at; the buffers
are still compared with what they must be, so a damaged or foreign file is refused.
"""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor

from medsr.errors import WeightsError
from medsr.models.swinir_blocks import relative_position_index, shift_mask

StateDict = dict[str, Tensor]

INDEX_SUFFIX = ".attn.relative_position_index"
MASK_SUFFIX = ".attn_mask"
TABLE_SUFFIX = ".attn.relative_position_bias_table"


def has_official_buffers(state: StateDict) -> bool:
    """True for a SwinIR state dict that carries the official derived buffers."""
    return any(k.endswith((INDEX_SUFFIX, MASK_SUFFIX)) for k in state)


def is_swinir(state: StateDict) -> bool:
    """True for a SwinIR state dict (official or medsr layout)."""
    return any(k.endswith(TABLE_SUFFIX) for k in state)


def _window(value: Tensor, key: str, path: str) -> int:
    n = value.shape[-1]
    ws = math.isqrt(n)
    if value.dim() not in (2, 3) or ws * ws != n or value.shape[-2] != n:
        raise WeightsError(
            f"{path}: {key} has shape {tuple(value.shape)}, not that of a SwinIR window buffer; "
            f"the file is damaged or not a SwinIR file. Nothing was loaded."
        )
    return ws


def _is_shift_mask(mask: Tensor, ws: int) -> bool:
    """Whether ``mask`` (nW, N, N) is the shift mask of some (a * ws, b * ws) map with a * b = nW."""
    nw = mask.shape[0]
    for a in (d for d in range(1, nw + 1) if nw % d == 0):
        ref = shift_mask(a * ws, nw // a * ws, ws, ws // 2)
        if torch.equal(mask.float(), ref):
            return True
    return False


def strip_official_buffers(state: StateDict, path: str) -> StateDict:
    """``state`` without its ``relative_position_index``/``attn_mask`` buffers, once checked.

    Raises:
        WeightsError: a buffer differs from the official definition (damaged or foreign file).
    """
    out: StateDict = {}
    checked: dict[tuple, bool] = {}
    for key, value in state.items():
        if key.endswith(INDEX_SUFFIX):
            ws = _window(value, key, path)
            ok = value.dim() == 2 and torch.equal(value.long(), relative_position_index(ws))
            what = f"the relative-position index of a {ws}x{ws} window"
        elif key.endswith(MASK_SUFFIX):
            ws = _window(value, key, path)
            sig = (tuple(value.shape), value.dtype, value.sum().item())
            if sig not in checked:
                checked[sig] = value.dim() == 3 and _is_shift_mask(value, ws)
            ok = checked[sig]
            what = f"the shift mask (0 / -100) of {ws}x{ws} windows shifted by {ws // 2}"
        else:
            out[key] = value
            continue
        if not ok:
            raise WeightsError(
                f"{path}: {key} is not {what} as the official SwinIR code defines it; the file is "
                f"damaged or from a modified SwinIR that medsr does not reproduce. Nothing was loaded."
            )
    return out


def describe(state: StateDict) -> str:
    """Summary of the SwinIR a state dict holds, e.g. ``x4 pixelshuffle, embed_dim=180, depths=[6, 6]``."""
    first = state.get("conv_first.weight")
    if first is None or first.dim() != 4:
        return ""
    blocks: dict[int, set[int]] = {}
    for key in state:
        if m := re.match(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.", key):
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    depths = [len(blocks[i]) for i in sorted(blocks)]
    ups = [v for k, v in state.items() if re.match(r"^upsample\.\d+\.weight$", k)]
    if "conv_up1.weight" in state:
        kind = f"x{4 if 'conv_up2.weight' in state else 2} nearest+conv"
    elif "conv_before_upsample.0.weight" in state and ups:
        feat = ups[0].shape[1]
        factor = 3 if ups[0].shape[0] == 9 * feat else 2 ** len(ups)
        kind = f"x{factor} pixelshuffle"
    elif ups and "conv_last.weight" not in state:
        kind = f"x{math.isqrt(ups[0].shape[0] // first.shape[1])} pixelshuffledirect"
    else:
        kind = "x1 (upsampler '')"
    return f"{kind}, in_chans={first.shape[1]}, embed_dim={first.shape[0]}, depths={depths}"
