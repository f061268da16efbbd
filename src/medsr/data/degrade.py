"""Device-side batch preparation: uint8/uint16 HR from the workers -> float LR/HR on the device.

Workers only crop; the float work (augmentation, MATLAB-bicubic degradation) runs batched on
whatever device the batch was moved to. The degradation has no randomness, so the same HR gives
the same LR on CPU and GPU (up to float rounding in the last bit before quantisation).
"""

from __future__ import annotations

import torch
from torch import Tensor

from medsr.ops import imresize, quantize


def random_dihedral(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Apply one of the 8 flips/90-degree rotations to each square image of a batch.

    Three independent coin flips per image (horizontal flip, vertical flip, transpose) compose
    to the 8 elements of the dihedral group, the augmentation of EDSR/RCAN/ESRGAN. Selection is
    by ``torch.where`` on the device: no host synchronisation, any dtype (uint8 here, before the
    float conversion, so it moves a quarter of the bytes).

    Args:
        x: ``(B, C, P, P)`` tensor.
        generator: random generator on ``x.device`` (default: the device's global one).
    """
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"random_dihedral needs square patches, got {tuple(x.shape[-2:])}")
    codes = torch.randint(0, 8, (x.shape[0], 1, 1, 1), device=x.device, generator=generator)
    x = torch.where((codes & 1).bool(), x.flip(-1), x)
    x = torch.where((codes & 2).bool(), x.flip(-2), x)
    return torch.where((codes & 4).bool(), x.transpose(-1, -2), x)


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 / uint16 -> float32 in [0, 1]; float tensors are returned as float32."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype in (torch.uint16, torch.int32):
        return x.float().div_(65535.0)
    return x.float()


def bicubic_lr(hr: Tensor, scale: int, bits: int = 8) -> Tensor:
    """The benchmark degradation: MATLAB-bicubic ``imresize(HR, 1/scale)`` rounded to ``bits`` levels.

    Args:
        hr: ``(B, C, H, W)`` float in [0, 1] with H, W multiples of ``scale``.
        scale: integer downscaling factor.
        bits: 8 (the literature's LR files) or 16 (for 16-bit sources).
    """
    lr = imresize(hr, 1.0 / scale)
    return quantize(lr, bits)


def train_batch(
    batch: dict, scale: int, augment: bool, generator: torch.Generator | None = None
) -> dict:
    """``{"hr": uint8 (B, 3, P, P)}`` -> ``{"lr": (B, 3, P/s, P/s), "hr": (B, 3, P, P)}`` floats in [0, 1]."""
    hr = batch["hr"]
    if augment:
        hr = random_dihedral(hr, generator)
    # Workers ship channels_last uint8; the float batch is made contiguous (NCHW) once here.
    hr = to_unit_float(hr).contiguous()
    return {"lr": bicubic_lr(hr, scale), "hr": hr}


def eval_batch(batch: dict, scale: int) -> dict:
    """Whole-image batch: HR (and LR files when shipped) to float; LR made by ``bicubic_lr`` otherwise.

    Input ``{"hr": uint8/uint16 (1, C, H, W), "name", "dataset", ["lr"], ["mask"]}``; the output
    keeps ``name``, ``dataset`` and ``mask`` (bool ``(1, 1, H, W)``).
    """
    out = {k: v for k, v in batch.items() if k not in ("hr", "lr")}
    hr_raw = batch["hr"]
    hr = to_unit_float(hr_raw)
    out["hr"] = hr
    if "lr" in batch:
        out["lr"] = to_unit_float(batch["lr"])
    else:
        out["lr"] = bicubic_lr(hr, scale, bits=8 if hr_raw.dtype == torch.uint8 else 16)
    return out
