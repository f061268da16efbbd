"""Network interpolation (ESRGAN, Wang et al., ECCVW 2018, sec. 3.4): blend a PSNR-oriented and
a GAN-trained network of the same architecture, ``theta = (1 - alpha) * theta_a + alpha * theta_b``,
to trade distortion (alpha = 0) for perceptual quality (alpha = 1) without retraining."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from medsr.errors import ConfigError, WeightsError


def interpolate_weights(
    state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """``(1 - alpha) * a + alpha * b`` for every floating-point tensor; other tensors must be equal.

    Args:
        state_a: state dict of the first network (alpha = 0 returns it).
        state_b: state dict of the second network, same keys and shapes.
        alpha: blend weight in [0, 1].

    Returns:
        A new state dict with ``state_a``'s dtypes; endpoints are reproduced exactly.

    Raises:
        ConfigError: alpha outside [0, 1]. WeightsError: different keys, shapes, or non-float
        entries (e.g. BatchNorm counters) that differ.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(
            f"alpha={alpha} is outside [0, 1]; 0 keeps a, 1 keeps b (ESRGAN uses 0.8)"
        )
    if set(state_a) != set(state_b):
        only_a, only_b = sorted(set(state_a) - set(state_b)), sorted(set(state_b) - set(state_a))
        raise WeightsError(
            f"the networks differ: keys only in a {only_a[:6]}, only in b {only_b[:6]}"
        )
    out: dict[str, Tensor] = {}
    for key, a in state_a.items():
        b = state_b[key]
        if a.shape != b.shape:
            raise WeightsError(
                f"the networks differ at {key}: a {tuple(a.shape)} vs b {tuple(b.shape)}"
            )
        if a.is_floating_point() and b.is_floating_point():
            # lerp in float32 at least; it returns b exactly at alpha = 1.
            work = torch.promote_types(a.dtype, torch.float32)
            out[key] = torch.lerp(a.to(work), b.to(work), float(alpha)).to(a.dtype)
        elif torch.equal(a, b):
            out[key] = a.clone()
        else:
            raise WeightsError(
                f"{key} holds non-float values that differ between a and b; they cannot be blended"
            )
    return out
