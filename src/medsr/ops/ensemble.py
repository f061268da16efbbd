"""Geometric self-ensemble ("x8", Lim et al., EDSR, CVPRW 2017, sec. 3.4; Timofte et al., 2016).

The network runs on the 8 flips/rotations of the input (the dihedral group of the square); each
output is transformed back and the 8 are averaged before any clamping or rounding.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

# (rotations by 90 degrees, horizontal flip) for the 8 elements of the dihedral group.
DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def dihedral(x: Tensor, k: int, flip: bool) -> Tensor:
    """Horizontal flip (optional), then ``k`` counter-clockwise quarter turns, on (..., H, W)."""
    if flip:
        x = x.flip(-1)
    return x.rot90(k, dims=(-2, -1))


def dihedral_inverse(x: Tensor, k: int, flip: bool) -> Tensor:
    """Undo :func:`dihedral`."""
    x = x.rot90(-k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def self_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean of ``inverse(fn(t(x)))`` over the 8 dihedral transforms ``t``.

    Args:
        fn: an image-to-image function on (B, C, H, W) tensors (any scale).
        x: the input batch.

    Returns:
        The averaged output in float32 (accumulated in float32 even under autocast).
    """
    total = None
    for k, flip in DIHEDRAL:
        y = dihedral_inverse(fn(dihedral(x, k, flip)), k, flip).float()
        total = y if total is None else total.add_(y)
    return total / len(DIHEDRAL)
