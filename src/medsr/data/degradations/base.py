"""The degradation interface (HR float batch -> LR on the batch's device) and its seeding.

Every pipeline draws its per-sample parameters from a CPU ``torch.Generator`` (so a given seed
gives the same kernels, scales and qualities on every device) and its noise fields from a device
generator seeded from that one. Training seeds the CPU generator per step from the run's seed and
the global step (:func:`step_generator`), so a resumed run degrades its batches as the original
did; evaluation seeds it per image from ``degradation.seed`` and the image's name
(:func:`image_generator`), so every method sees the same LR.
"""

from __future__ import annotations

import abc
import zlib
from typing import ClassVar

import torch
from torch import Tensor

from medsr.data.degradations.config import from_mapping
from medsr.errors import ConfigError, DataError
from medsr.ops import check_scale, quantize

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One SplitMix64 step: nearby inputs (seed, seed + 1, step, step + 1) give unrelated outputs."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, key: int) -> int:
    """A 63-bit generator seed from two integers (order matters)."""
    return _splitmix64(_splitmix64(int(seed) & _MASK64) ^ (int(key) & _MASK64)) >> 1


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """CPU generator of training step ``step`` (on rank ``rank``) of a run seeded ``seed``."""
    return torch.Generator().manual_seed(mix_seed(mix_seed(seed, step), rank))


def image_generator(seed: int, key: str) -> torch.Generator:
    """CPU generator of one evaluation image, keyed by a stable name (e.g. ``"Set5/baby"``)."""
    return torch.Generator().manual_seed(mix_seed(seed, zlib.crc32(key.encode("utf-8"))))


def device_generator(device: torch.device, generator: torch.Generator) -> torch.Generator:
    """A generator on ``device`` for noise fields, seeded by one draw from the CPU ``generator``."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


class Degradation(abc.ABC):
    """HR ``(B, C, H, W)`` float in [0, 1] -> LR ``(B, C, H/s, W/s)`` rounded to ``bits`` levels.

    Subclasses implement :meth:`_degrade` and, where the target is
    pre-processed (Real-ESRGAN's sharpened ground truth), :meth:`target`.

    Args:
        seed: the fixed seed of evaluation LR images; None in training, where the seed comes from
            the run seed and the step.
    """

    name: str = ""
    #: Whether the LR depends on the generator (False: bicubic).
    random: bool = True

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError(f"degradation.seed={seed!r} must be a non-negative integer or null")
        self.seed = seed

    def __call__(
        self, hr: Tensor, scale: int, generator: torch.Generator | None = None, *, bits: int = 8
    ) -> Tensor:
        """Degrade ``hr`` by ``scale``; ``generator`` is a CPU generator (default: the global one)."""
        if hr.ndim != 4 or not hr.is_floating_point():
            raise DataError(
                f"degradation input must be a float (B, C, H, W) batch, got {hr.dtype} {tuple(hr.shape)}"
            )
        scale = check_scale(scale)
        if hr.shape[-2] % scale or hr.shape[-1] % scale:
            raise DataError(
                f"HR size {hr.shape[-2]}x{hr.shape[-1]} is not a multiple of scale={scale}; "
                "mod-crop it first (medsr.ops.mod_crop)"
            )
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            # 8 (photographs), 16, or a scanner's stored depth (12-bit CT/MR)
            raise ConfigError(f"LR bits={bits!r} must be an integer from 1 to 16")
        if generator is None:
            generator = torch.default_generator
        elif generator.device.type != "cpu":
            raise ConfigError("degradations draw their parameters from a CPU torch.Generator")
        return self._degrade(hr, scale, generator, bits)

    @abc.abstractmethod
    def _degrade(self, hr: Tensor, scale: int, generator: torch.Generator, bits: int) -> Tensor:
        """LR of ``hr`` rounded to ``bits`` (see :func:`to_levels`)."""

    def target(self, hr: Tensor) -> Tensor:
        """The training target made from ``hr`` (identity unless the pipeline sharpens it)."""
        return hr


class SpecDegradation(Degradation):
    """A degradation described by a spec dataclass (``spec_type``) that its config fills."""

    spec_type: ClassVar[type]

    def __init__(self, spec, seed: int | None = None) -> None:
        super().__init__(seed)
        self.spec = spec

    @classmethod
    def from_config(cls, values: dict, key: str = "degradation") -> SpecDegradation:
        values = dict(values)
        seed = values.pop("seed", None)
        return cls(from_mapping(cls.spec_type, values, key), seed)


def to_levels(x: Tensor, bits: int) -> Tensor:
    """Clamp to [0, 1] and round to 8-bit (k / 255) or 16-bit (k / 65535) levels."""
    return quantize(x, bits)


# -- per-sample draws (CPU, float64): one fixed number of draws per call keeps streams aligned ---
def uniform(generator: torch.Generator, n: int, bounds: tuple[float, float]) -> Tensor:
    """``n`` draws from U(lo, hi) (``lo == hi`` gives the constant)."""
    lo, hi = bounds
    return torch.rand(n, generator=generator, dtype=torch.float64) * (hi - lo) + lo


def bernoulli(generator: torch.Generator, n: int, p: float) -> Tensor:
    """``n`` coin flips that are True with probability ``p``."""
    return torch.rand(n, generator=generator, dtype=torch.float64) < p


def categorical(generator: torch.Generator, n: int, probs: tuple[float, ...]) -> Tensor:
    """``n`` indices drawn with probabilities ``probs`` (inverse CDF of one uniform each)."""
    cdf = torch.tensor(probs, dtype=torch.float64).cumsum(0)
    u = torch.rand(n, generator=generator, dtype=torch.float64) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(probs) - 1)


def odd_sizes(generator: torch.Generator, n: int, bounds: tuple[int, int]) -> Tensor:
    """``n`` odd kernel sizes drawn uniformly from ``lo, lo + 2, ..., hi``."""
    lo, hi = bounds
    return lo + 2 * torch.randint(0, (hi - lo) // 2 + 1, (n,), generator=generator)


def two_sided_beta(generator: torch.Generator, n: int, bounds: tuple[float, float]) -> Tensor:
    """BasicSR's shape draw: U(lo, 1) or U(1, hi) with probability 1/2 each."""
    low = uniform(generator, n, (bounds[0], 1.0))
    high = uniform(generator, n, (1.0, bounds[1]))
    return torch.where(bernoulli(generator, n, 0.5), low, high)
