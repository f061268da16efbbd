"""Device-side batch preparation: uint8/uint16 HR from the workers -> float LR/HR on the device.

Workers only crop (with a margin for the degradation, see ``medsr.data.patches``); the float
work (degradation, crop to the patch, augmentation) runs batched on whatever device the batch was
moved to. The default MATLAB-bicubic degradation has no randomness, so the same HR gives the same
LR on CPU and GPU (up to float rounding in the last bit before quantisation); the realistic ones
(``medsr.data.degradations``) draw from the generator they are given.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medsr.data.medical import StoredRange
from medsr.ops import imresize, quantize


def dihedral(x: Tensor, code: int) -> Tensor:
    """Element ``code`` (0-7) of the dihedral group on ``(..., P, P)``: bit 0 flips horizontally,
    bit 1 vertically, bit 2 transposes (in that order). A view, no copy."""
    if code & 1:
        x = x.flip(-1)
    if code & 2:
        x = x.flip(-2)
    if code & 4:
        x = x.transpose(-1, -2)
    return x


def random_dihedral(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Apply one of the 8 flips/90-degree rotations to each square image of a batch.

    Three independent coin flips per image (horizontal flip, vertical flip, transpose) compose
    to the 8 elements of the dihedral group, the augmentation of EDSR/RCAN/ESRGAN. The codes
    are drawn on the CPU (no host synchronisation) and each image takes its own view ops: on
    CPU 4-8x faster than selecting among three flipped copies of the whole batch with
    ``torch.where``, and 10x faster than ``kornia.augmentation`` (which needs floats), with the
    same output for the same codes (benchmarks/degradation_throughput.py). Any dtype (uint8
    here, before the float conversion, so it moves a quarter of the bytes).

    Args:
        x: ``(B, C, P, P)`` tensor.
        generator: CPU generator of the codes (default: the global one).
    """
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"random_dihedral needs square patches, got {tuple(x.shape[-2:])}")
    device = generator.device if generator is not None else "cpu"
    codes = torch.randint(0, 8, (x.shape[0],), device=device, generator=generator).tolist()
    dtype, x = x.dtype, _flippable(x)
    return torch.stack([dihedral(img, c) for img, c in zip(x, codes, strict=True)]).view(dtype)


def _flippable(x: Tensor) -> Tensor:
    """``x`` as a dtype torch can flip: uint16 (no flip kernel) viewed as int16, the same bits."""
    return x.view(torch.int16) if x.dtype == torch.uint16 else x


def random_dihedral_pair(
    hr: Tensor, lr: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The same random dihedral transform (drawn as :func:`random_dihedral` draws it) of each HR
    patch and of its LR."""
    device = generator.device if generator is not None else "cpu"
    codes = torch.randint(0, 8, (hr.shape[0],), device=device, generator=generator).tolist()
    dtype, hr = hr.dtype, _flippable(hr)
    pairs = [(dihedral(h, c), dihedral(low, c)) for h, low, c in zip(hr, lr, codes, strict=True)]
    return torch.stack([h for h, _ in pairs]).view(dtype), torch.stack([low for _, low in pairs])


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 / uint16 -> float32 in [0, 1]; float tensors are returned as float32."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype in (torch.uint16, torch.int32):
        return x.float().div_(65535.0)
    return x.float()


def bicubic_lr(hr: Tensor, scale: int, bits: int = 8, matlab_uint8: bool = False) -> Tensor:
    """The benchmark degradation: MATLAB-bicubic ``imresize(HR, 1/scale)`` rounded to ``bits`` levels.

    Args:
        hr: ``(B, C, H, W)`` float in [0, 1] with H, W multiples of ``scale``.
        scale: integer downscaling factor.
        bits: 8 (the literature's LR files) or 16 (for 16-bit sources).
        matlab_uint8: round to ``bits`` levels after each 1-D pass, as MATLAB's ``imresize``
            does on an integer image (``degradation.matlab_uint8``).
    """
    lr = imresize(hr, 1.0 / scale, integer_bits=bits if matlab_uint8 else None)
    return quantize(lr, bits)


def crop_margin(x: Tensor, pad: int) -> Tensor:
    """``x`` without ``pad`` pixels on each side (any dtype): the interior of a patch cut with a
    margin. The LR of the padded HR by a degradation whose support fits in the margin (bicubic:
    ``medsr.data.patches.LR_MARGIN``) equals, inside, the whole image's LR."""
    return x[..., pad:-pad, pad:-pad] if pad > 0 else x


def batch_bits(hr: Tensor, stored: StoredRange | None = None) -> int:
    """The bit depth a raw HR batch is scored and rounded at: the data set's stored range when
    given (medical data), else 8 for uint8 and 16 for uint16."""
    if stored is not None:
        return stored.bits
    return 8 if hr.dtype == torch.uint8 else 16


def _unit(x: Tensor, stored: StoredRange | None) -> Tensor:
    return to_unit_float(x) if stored is None else stored.to_unit(x)


def train_batch(
    batch: dict,
    scale: int,
    augment: bool,
    generator: torch.Generator | None = None,
    degradation=None,
    stored: StoredRange | None = None,
) -> dict:
    """``{"hr": uint8 (B, C, P', P'), ["margin": m], ["pos"]}`` -> ``{"lr": (B, C, P/s, P/s),
    "hr": (B, C, P, P)}`` floats in [0, 1] (``pos`` passed on).

    A deterministic degradation (bicubic) makes the LR from the patch with its margin
    (``PatchDataset``), then both are cropped to the interior, so the LR equals the whole
    image's LR at the patch; the random flips and rotations come last, to HR and LR alike. A
    random (realistic) degradation degrades the augmented bare patch.

    Args:
        batch: the workers' batch; without ``margin`` the HR patch is degraded as it is.
        scale: the downscaling factor.
        augment: apply the random dihedral augmentation.
        generator: CPU generator of the augmentation and the degradation (default: global).
        degradation: a ``medsr.data.degradations.Degradation`` (None: MATLAB bicubic); its
            ``target`` makes the HR target (Real-ESRGAN sharpens it) and the LR is made from it.
        stored: the stored range of medical data (uint16/int16 stored values): HR is
            normalised by it and LR rounded to its levels (e.g. 1/65535), not to 8 bits.
    """
    raw, margin = batch["hr"], int(batch.get("margin", 0))
    bits = 8 if stored is None else stored.bits
    if degradation is not None and degradation.random:
        raw = crop_margin(raw, margin * scale)
        if augment:
            raw = random_dihedral(raw, generator)
        # Workers ship channels_last uint8; the float batch is made contiguous (NCHW) here.
        hr = degradation.target(_unit(raw, stored).contiguous())
        return {"lr": degradation(hr, scale, generator, bits=bits), "hr": hr}
    padded = _unit(raw.contiguous(), stored)  # NCHW first: the transposing copy moves uint8
    if degradation is None:
        lr = bicubic_lr(padded, scale, bits)
    else:
        lr = degradation(padded, scale, generator, bits=bits)
    raw, lr = crop_margin(raw, margin * scale), crop_margin(lr, margin)
    if augment:  # the HR target is transformed while uint8: a quarter of the bytes
        raw, lr = random_dihedral_pair(raw, lr, generator)
    out = {"lr": lr.contiguous(), "hr": _unit(raw, stored).contiguous()}
    if "pos" in batch:
        out["pos"] = batch["pos"]
    return out


def eval_batch(
    batch: dict,
    scale: int,
    degradation=None,
    generator: torch.Generator | None = None,
    stored: StoredRange | None = None,
) -> dict:
    """Whole-image batch: HR (and LR files when shipped) to float; LR made by ``bicubic_lr`` otherwise.

    Input ``{"hr": uint8/uint16/int16 (1, C, H, W), "name", "dataset", ["lr"], ["mask"]}``; the
    output keeps ``name``, ``dataset`` and ``mask`` (bool ``(1, 1, H, W)``) and adds ``bits``,
    the HR's bit depth. A random ``degradation`` (realistic pipelines) makes the LR from the HR
    with ``generator`` (the image's own seed) and ignores shipped LR files. With ``stored``
    (medical sets) values are normalised by that range.
    """
    out = {k: v for k, v in batch.items() if k not in ("hr", "lr")}
    hr_raw = batch["hr"]
    hr = _unit(hr_raw, stored)
    bits = batch_bits(hr_raw, stored)
    out["hr"], out["bits"] = hr, bits  # SR is rounded to these levels
    if degradation is not None and degradation.random:
        out["lr"] = degradation(hr, scale, generator, bits=bits)
    elif "lr" in batch:
        out["lr"] = _unit(batch["lr"], stored)
    else:
        matlab = getattr(degradation, "matlab_uint8", False)
        out["lr"] = bicubic_lr(hr, scale, bits=bits, matlab_uint8=matlab)
    return out
