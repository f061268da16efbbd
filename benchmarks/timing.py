"""Timing that survives a shared machine: variants interleaved round by round, medians, paired ratios.

A neighbour that takes the cores for a while slows every variant of the rounds it overlaps,
not one whole block of runs, so the median over rounds and the median of per-round ratios
stay close to the quiet-machine figures (a minimum over one sequential block per variant can
be inflated many times over when the block of one variant meets the neighbour's burst).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    repeat: int,
    sync: Callable[[], None] = lambda: None,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Wall seconds of each variant, ``repeat`` rounds, every round running each variant once.

    Args:
        variants: name -> zero-argument callable.
        repeat: timed rounds.
        sync: called before each clock read (``torch.cuda.synchronize`` on a GPU).
        warmup: untimed rounds first (caches, allocator, kernel selection).
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(warmup + repeat):
        for name, fn in variants.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of ``numerator[i] / denominator[i]`` (runs of the same round)."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True) if b > 0])
