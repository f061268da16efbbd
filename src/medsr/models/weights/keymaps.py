"""Official weight layouts -> medsr's modules: format detection and key maps.

medsr's module names are BasicSR's, so BasicSR, Real-ESRGAN and medsr files need no renaming.
The other releases are renamed key by key (each map below lists the exact rules):

- EDSR-PyTorch EDSR (``edsr_x4-4f62e9ef.pt``, ...) and the official RCAN (``RCAN_BIX4.pt``,
  same code base): 0-255 range with ``sub_mean``/``add_mean`` 1x1 convs;
- original ESRGAN (``RRDB_ESRGAN_x4.pth``, ``RRDB_PSNR_x4.pth``), and its older
  ``architecture.py`` layout (``model.N...``, x4 only);
- the SwinIR model zoo: medsr's names, plus derived buffers checked and dropped
  (:mod:`medsr.models.weights.swinir`).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from medsr.errors import WeightsError
from medsr.models.common import DEFAULT_IMG_RANGE
from medsr.models.weights import swinir as swinir_files

StateDict = dict[str, Tensor]

NATIVE = "medsr/BasicSR layout"
EDSR_PYTORCH = "EDSR-PyTorch EDSR release (0-255 range, sub_mean/add_mean)"
RCAN_OFFICIAL = "official RCAN release (EDSR-PyTorch code base, 0-255 range, sub_mean/add_mean)"
ESRGAN = "original ESRGAN release (RRDBNet_arch.py keys)"
ESRGAN_OLD = "original ESRGAN release, old architecture.py layout (model.N keys)"
SWINIR_OFFICIAL = "official SwinIR model-zoo layout (relative_position_index/attn_mask buffers)"

# Which medsr architecture each non-native format holds.
FORMAT_ARCH = {
    EDSR_PYTORCH: "edsr",
    RCAN_OFFICIAL: "rcan",
    ESRGAN: "rrdbnet",
    ESRGAN_OLD: "rrdbnet",
    SWINIR_OFFICIAL: "swinir",
}

# EDSR-PyTorch trains with args.rgb_range = 255; every released EDSR/RCAN model uses it.
OFFICIAL_RGB_RANGE = 255.0

_P = r"(weight|bias)$"


def _rules(*pairs: tuple[str, str]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pat), repl) for pat, repl in pairs]


# EDSR-PyTorch src/model/edsr.py -> medsr EDSR (head, body = [ResBlock]*n + conv, tail = [Upsampler, conv]).
EDSR_PYTORCH_MAP = _rules(
    (r"^head\.0\." + _P, r"conv_first.\1"),
    (r"^body\.(\d+)\.body\.0\." + _P, r"body.\1.conv1.\2"),
    (r"^body\.(\d+)\.body\.2\." + _P, r"body.\1.conv2.\2"),
    (r"^body\.(\d+)\." + _P, r"conv_after_body.\2"),  # the conv after the n blocks: body.<n>
    (r"^tail\.0\.(\d+)\." + _P, r"upsample.\1.\2"),
    (r"^tail\.1\." + _P, r"conv_last.\1"),
)

# RCAN src/model/rcan.py -> medsr RCAN (RCAB.body = [conv, ReLU, conv, CALayer]; RG.body = [RCAB]*n + conv).
RCAN_MAP = _rules(
    (r"^head\.0\." + _P, r"conv_first.\1"),
    (r"^body\.(\d+)\.body\.(\d+)\.body\.0\." + _P, r"body.\1.residual_group.\2.rcab.0.\3"),
    (r"^body\.(\d+)\.body\.(\d+)\.body\.2\." + _P, r"body.\1.residual_group.\2.rcab.2.\3"),
    (
        r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\." + _P,
        r"body.\1.residual_group.\2.rcab.3.attention.1.\3",
    ),
    (
        r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\." + _P,
        r"body.\1.residual_group.\2.rcab.3.attention.3.\3",
    ),
    (
        r"^body\.(\d+)\.body\.(\d+)\." + _P,
        r"body.\1.conv.\3",
    ),  # the conv closing group g: body.g.body.<n>
    (r"^body\.(\d+)\." + _P, r"conv_after_body.\2"),  # the conv after the groups: body.<G>
    (r"^tail\.0\.(\d+)\." + _P, r"upsample.\1.\2"),
    (r"^tail\.1\." + _P, r"conv_last.\1"),
)

# ESRGAN RRDBNet_arch.py -> medsr RRDBNet.
ESRGAN_MAP = _rules(
    (r"^conv_first\." + _P, r"conv_first.\1"),
    (r"^RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\." + _P, r"body.\1.rdb\2.conv\3.\4"),
    (r"^trunk_conv\." + _P, r"conv_body.\1"),
    (r"^upconv1\." + _P, r"conv_up1.\1"),
    (r"^upconv2\." + _P, r"conv_up2.\1"),
    (r"^HRconv\." + _P, r"conv_hr.\1"),
    (r"^conv_last\." + _P, r"conv_last.\1"),
)

# ESRGAN architecture.py RRDB_Net (x4): model = [conv, Shortcut(sub=[RRDB]*n + conv), up, conv,
# lrelu, up, conv, lrelu, conv, lrelu, conv]; each RDB conv is Sequential(conv, lrelu).
ESRGAN_OLD_MAP = _rules(
    (r"^model\.0\." + _P, r"conv_first.\1"),
    (r"^model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\." + _P, r"body.\1.rdb\2.conv\3.\4"),
    (r"^model\.1\.sub\.(\d+)\." + _P, r"conv_body.\2"),  # the conv after the n RRDBs: sub.<n>
    (r"^model\.3\." + _P, r"conv_up1.\1"),
    (r"^model\.6\." + _P, r"conv_up2.\1"),
    (r"^model\.8\." + _P, r"conv_hr.\1"),
    (r"^model\.10\." + _P, r"conv_last.\1"),
)

FORMAT_MAP = {
    EDSR_PYTORCH: EDSR_PYTORCH_MAP,
    RCAN_OFFICIAL: RCAN_MAP,
    ESRGAN: ESRGAN_MAP,
    ESRGAN_OLD: ESRGAN_OLD_MAP,
}


def detect_format(state: StateDict) -> str:
    """Name of the key layout of ``state`` (one of the format constants above)."""
    keys = set(state)
    if swinir_files.has_official_buffers(state):
        return SWINIR_OFFICIAL
    if any(k.startswith(("sub_mean.", "add_mean.", "head.0.", "tail.")) for k in keys):
        return RCAN_OFFICIAL if any(".conv_du." in k for k in keys) else EDSR_PYTORCH
    if any(k.startswith("RRDB_trunk.") for k in keys):
        return ESRGAN
    if any(k.startswith("model.1.sub.") for k in keys):
        return ESRGAN_OLD
    return NATIVE


def native_arch(state: StateDict) -> str | None:
    """Architecture a medsr/BasicSR-layout state dict holds, judged by its distinctive keys."""
    keys = set(state)
    if swinir_files.is_swinir(state):  # before RCAN: both have `.residual_group.`
        return "swinir"
    if any(".residual_group." in k for k in keys):
        return "rcan"
    if any(".rdb1." in k for k in keys) or "conv_up1.weight" in keys:
        return "rrdbnet"
    if any(re.match(r"^body\.\d+\.conv1\.", k) for k in keys):
        return "edsr"
    return None


def rename(
    state: StateDict, rules: list[tuple[re.Pattern[str], str]]
) -> tuple[StateDict, list[str]]:
    """Apply the first matching rule to each key; returns (renamed dict, keys no rule matched)."""
    out: StateDict = {}
    unmatched: list[str] = []
    for key, value in state.items():
        for pattern, repl in rules:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            unmatched.append(key)
    return out, unmatched


def split_mean_shift(state: StateDict, path: str) -> tuple[StateDict, Tensor | None]:
    """Remove EDSR-PyTorch's ``sub_mean``/``add_mean`` convs; return the RGB mean they encode.

    ``MeanShift(rgb_range, rgb_mean, rgb_std, sign)`` is a frozen 1x1 conv with weight
    ``eye / std`` and bias ``sign * rgb_range * mean / std``. medsr supports ``std = 1`` (every
    release) and reads the mean at ``rgb_range = 255``.
    """
    rest = {k: v for k, v in state.items() if not k.startswith(("sub_mean.", "add_mean."))}
    if "sub_mean.bias" not in state:
        return rest, None
    means = []
    for name, sign in (("sub_mean", -1.0), ("add_mean", 1.0)):
        weight, bias = state.get(f"{name}.weight"), state.get(f"{name}.bias")
        if weight is None or bias is None:
            raise WeightsError(
                f"{path}: the EDSR-PyTorch mean shift is incomplete ({name}.weight/bias missing)"
            )
        eye = torch.eye(weight.shape[0], dtype=torch.float64)
        if weight.dim() != 4 or not torch.allclose(weight.double().flatten(1), eye, atol=1e-6):
            raise WeightsError(
                f"{path}: {name} divides by a per-channel std (rgb_std != 1); no official release does "
                f"this and medsr's EDSR/RCAN have no std, so this file cannot be reproduced"
            )
        means.append(sign * bias.double() / OFFICIAL_RGB_RANGE)
    if not torch.allclose(means[0], means[1], atol=1e-6):
        raise WeightsError(
            f"{path}: sub_mean and add_mean encode different means ({means[0].tolist()} vs {means[1].tolist()})"
        )
    return rest, means[0]


def rescale_range(state: StateDict, file_range: float, model_range: float) -> StateDict:
    """Make a net trained on ``file_range`` give the same [0, 1] output at ``model_range``.

    Inside, x is ``(x01 - mean) * range`` and the output ``conv_last(...) / range + mean``. With
    ``k = model_range / file_range`` the first conv sees k times its trained input, so its weight
    is divided by k (bias unchanged: every later activation is then identical, the
    zero padding included), and the last conv's weight and bias are multiplied by k.
    """
    k = float(model_range) / float(file_range)
    if k == 1.0 or not all(
        n in state for n in ("conv_first.weight", "conv_last.weight", "conv_last.bias")
    ):
        return state  # same range, or an incomplete file that the key check will report
    out = dict(state)
    out["conv_first.weight"] = state["conv_first.weight"] / k
    out["conv_last.weight"] = state["conv_last.weight"] * k
    out["conv_last.bias"] = state["conv_last.bias"] * k
    return out


def to_medsr(
    state: StateDict, fmt: str, model_mean: Tensor | None, model_range: float | None, path: str
) -> tuple[StateDict, list[str]]:
    """Convert ``state`` in layout ``fmt`` to medsr key names and range.

    Args:
        state: the file's state dict (container and ``module.`` prefixes already removed).
        fmt: its layout (:func:`detect_format`).
        model_mean: the target model's mean (1, C, 1, 1) for EDSR/RCAN, else None.
        model_range: the target model's ``img_range`` for EDSR/RCAN, else None.
        path: file name for messages.

    Returns:
        (converted state dict, file keys that no rule maps: reported as unexpected).
    """
    if fmt == NATIVE:
        return dict(state), []
    if fmt == SWINIR_OFFICIAL:
        return swinir_files.strip_official_buffers(state, path), []
    if fmt in (EDSR_PYTORCH, RCAN_OFFICIAL):
        state, file_mean = split_mean_shift(state, path)
        if file_mean is not None and model_mean is not None:
            ours = model_mean.detach().double().flatten().cpu()
            # Different channel counts surface as a conv_first shape conflict instead.
            if ours.shape == file_mean.shape and not torch.allclose(ours, file_mean, atol=1e-4):
                raise WeightsError(
                    f"{path}: the file subtracts the RGB mean {[round(v, 4) for v in file_mean.tolist()]} but the "
                    f"model uses {[round(v, 4) for v in ours.tolist()]}; build it with "
                    f"model.net.rgb_mean={[round(v, 4) for v in file_mean.tolist()]}"
                )
    renamed, unmatched = rename(state, FORMAT_MAP[fmt])
    if fmt in (EDSR_PYTORCH, RCAN_OFFICIAL) and model_range is not None:
        renamed = rescale_range(renamed, OFFICIAL_RGB_RANGE, model_range)
    return renamed, unmatched


def describe(state: StateDict, arch: str | None) -> str:
    """Best-effort summary of the network a medsr-layout state dict holds, e.g. ``x4, num_feat=64``."""
    if arch == "swinir":
        return swinir_files.describe(state)
    parts: list[str] = []
    first, last = state.get("conv_first.weight"), state.get("conv_last.weight")
    if first is None or first.dim() != 4:
        return ""
    feat = first.shape[0]
    if arch in ("edsr", "rcan"):
        ups = [v for k, v in state.items() if re.match(r"^upsample\.\d+\.weight$", k)]
        if ups and all(u.shape[0] == 4 * feat for u in ups):
            parts.append(f"x{2 ** len(ups)}")
        elif len(ups) == 1 and ups[0].shape[0] == 9 * feat:
            parts.append("x3")
    elif arch == "rrdbnet" and last is not None:
        ratio = first.shape[1] // max(last.shape[0], 1)
        parts.append({1: "x4", 4: "x2", 16: "x1"}.get(ratio, "x?"))
    parts.append(f"num_feat={feat}")
    groups = {int(m.group(1)) for k in state if (m := re.match(r"^body\.(\d+)\.", k))}
    if arch == "rcan":
        blocks = {
            int(m.group(1))
            for k in state
            if (m := re.match(r"^body\.0\.residual_group\.(\d+)\.", k))
        }
        parts += [f"num_group={len(groups)}", f"num_block={len(blocks)}"]
    elif groups:
        parts.append(f"num_block={len(groups)}")
    return ", ".join(parts)


def default_file_range(spec: dict | None) -> float:
    """``img_range`` a medsr file was trained with: its spec's value, else the default (255)."""
    net = (spec or {}).get("net") or {}
    return float(net.get("img_range", DEFAULT_IMG_RANGE))
