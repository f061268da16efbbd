"""The 8 flips/90-degree rotations of EDSR/RCAN/ESRGAN training, one per sample, drawn on the CPU.

Codes 0-7 are three bits: horizontal flip, vertical flip, transpose (applied in that order), as
:func:`medsr.data.degrade.random_dihedral` defines them. Drawing the codes from a CPU generator
lets each sample take its own view ops (flip/transpose of one image) with no host sync; that is
7.5x faster on CPU than selecting with ``torch.where`` over three full-batch copies, with
identical output, and faster than ``kornia.augmentation`` (float only, warps for rotations):
benchmarks/degradation_throughput.py measures the three.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dihedral_codes(generator: torch.Generator, n: int) -> Tensor:
    """``n`` codes uniform over the 8 group elements (a CPU tensor)."""
    return torch.randint(0, 8, (n,), generator=generator)


def dihedral_one(x: Tensor, code: int) -> Tensor:
    """Element ``code`` applied to one ``(..., P, P)`` image (a view)."""
    if code & 1:
        x = x.flip(-1)
    if code & 2:
        x = x.flip(-2)
    if code & 4:
        x = x.transpose(-1, -2)
    return x


def apply_dihedral(x: Tensor, codes: Tensor) -> Tensor:
    """Each square image of ``x`` ``(B, C, P, P)`` (any dtype) by its own code ``codes[i]``."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"dihedral augmentation needs square patches, got {tuple(x.shape[-2:])}")
    return torch.stack(
        [dihedral_one(img, int(c)) for img, c in zip(x, codes.tolist(), strict=True)]
    )
