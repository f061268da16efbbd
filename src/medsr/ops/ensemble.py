"""Geometric self-ensemble ("x8", Lim et al., EDSR, CVPRW 2017, sec. 3.4; Timofte et al., 2016).

The network runs on the 8 flips/rotations of the input (the dihedral group of the square); each
output is transformed back and the 8 are averaged before any clamping or rounding. Their spread
(:func:`self_ensemble_spread`) is a ground-truth-free uncertainty: a network exactly equivariant
under the group gives eight equal outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


def dihedral_outputs(fn: Callable[[Tensor], Tensor], x: Tensor) -> Iterator[Tensor]:
    """``inverse(fn(t(x)))`` in float32 for each of the 8 dihedral transforms ``t``, one at a time."""
    for k, flip in DIHEDRAL:
        yield dihedral_inverse(fn(dihedral(x, k, flip)), k, flip).float()


def self_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean of ``inverse(fn(t(x)))`` over the 8 dihedral transforms ``t``.

    Args:
        fn: an image-to-image function on (B, C, H, W) tensors (any scale).
        x: the input batch.

    Returns:
        The averaged output in float32 (accumulated in float32 even under autocast).
    """
    return self_ensemble_spread(fn, x, spread=False)[0]


def self_ensemble_spread(
    fn: Callable[[Tensor], Tensor], x: Tensor, spread: bool = True
) -> tuple[Tensor, Tensor | None]:
    """The self-ensemble mean and the per-pixel standard deviation of the 8 outputs.

    The deviation is the population one (the 8 outputs are the whole group, not a sample),
    accumulated with Welford's update so that nearly equal outputs give a spread near 0
    rather than float32 cancellation noise. Only two output-sized buffers are held.

    Args:
        fn: an image-to-image function on (B, C, H, W) tensors (any scale).
        x: the input batch.
        spread: False skips the deviation (returns None in its place).

    Returns:
        (mean, std), both float32 (B, C, sH, sW); the mean equals :func:`self_ensemble`'s.
    """
    total = mean = m2 = None
    for n, y in enumerate(dihedral_outputs(fn, x), start=1):
        total = y if total is None else total.add_(y)  # y is a fresh tensor (rot90/flip copy)
        if not spread:
            continue
        if mean is None:
            mean, m2 = y.clone(), y.new_zeros(y.shape)
        else:
            delta = y - mean
            mean.add_(delta / n)
            m2.addcmul_(delta, y - mean)
    std = m2.div_(len(DIHEDRAL)).clamp_(min=0).sqrt_() if spread else None
    return total / len(DIHEDRAL), std
