"""Host settings for the command verbs: reuse freed memory, and torch threads that do not fight.

Two things waste a CPU during tiled inference and evaluation:

- glibc serves every buffer above 32 MiB (a tile's feature maps) with a fresh ``mmap`` and
  unmaps it on free, so each tile page-faults its buffers in again, zero-filled: on a 2000x1500
  x4 tiled prediction most of the system time. :func:`keep_freed_memory` makes glibc serve them
  from the heap and keep freed memory (``MALLOC_MMAP_MAX_=0``, ``MALLOC_TRIM_THRESHOLD_``).
- torch starts one OpenMP thread per core, and by default a thread that waits for the others
  spins. When other processes (DataLoader workers, other users) hold some of the cores, every
  parallel region waits for a descheduled thread while the spinning ones burn the remaining
  time: batched small ops (MATLAB ``imresize``) slow down 50-100 times. The verbs therefore
  set ``OMP_WAIT_POLICY=PASSIVE`` before torch loads (``medsr._cli``), and :func:`tune_host`
  gives torch one thread per core not taken by the run's own DataLoader workers; where the
  threads still spin (torch was imported first), also not taken by other processes (sampled
  from ``/proc/stat`` since this module was imported).

``MEDSR_THREADS=<n>`` or ``OMP_NUM_THREADS`` fix the thread count; ``MEDSR_HOST_TUNING=0``
leaves all of it alone.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)
_INT_MAX = 2**31 - 1
_MIN_WINDOW = 0.2  # seconds of CPU-use sample a decision needs
_MAX_AGE = 60.0  # an older sample says little about the machine now
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class HostSettings:
    """What :func:`tune_host` did (for the log)."""

    threads: int
    cores: int
    busy_elsewhere: float
    workers: int
    memory_kept: bool
    reason: str


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _cpu_ids() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:
        return None


def busy_jiffies(stat: str, cpus: set[int] | None) -> int | None:
    """Busy clock ticks (all but idle and iowait; steal counts as busy) of ``cpus`` in a
    ``/proc/stat`` text; None when it has no per-CPU lines."""
    total, seen = 0, False
    for line in stat.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in fields[:8]]
        total += sum(values) - values[3] - values[4]
        seen = True
    return total if seen else None


def _sample() -> tuple[float, int | None, float]:
    try:
        stat = Path("/proc/stat").read_text()
    except OSError:
        stat = ""
    return time.monotonic(), busy_jiffies(stat, _cpu_ids()), time.process_time()


_START = _sample()


def busy_elsewhere() -> float:
    """Cores kept busy by other processes since this module was imported (or over a short
    fresh sample when that is too recent or too old); 0 where ``/proc/stat`` is missing."""
    start = _START
    now = _sample()
    if not _MIN_WINDOW <= now[0] - start[0] <= _MAX_AGE:
        start = now
        time.sleep(_MIN_WINDOW)
        now = _sample()
    if start[1] is None or now[1] is None:
        return 0.0
    window = now[0] - start[0]
    others = (now[1] - start[1]) / _HZ - (now[2] - start[2])
    return max(0.0, others / window)


def choose_threads(cores: int, busy: float, workers: int = 0) -> int:
    """One thread per core not taken by other processes (``busy`` cores) or this run's
    ``workers``, at least one."""
    free = min(cores, round(cores - busy))
    return max(1, free - workers)


def keep_freed_memory() -> bool:
    """glibc: serve large buffers from the heap and keep freed memory for reuse (what
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<2 GiB>`` do). False where not glibc."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def tune_host(workers: int = 0) -> HostSettings | None:
    """Apply both settings once, at the start of a verb; None when ``MEDSR_HOST_TUNING=0``.

    Args:
        workers: DataLoader worker processes this run keeps busy beside torch's threads.
    """
    if os.environ.get("MEDSR_HOST_TUNING", "1") == "0":
        return None
    import torch

    memory_kept = keep_freed_memory()
    cores, busy = usable_cores(), 0.0
    if os.environ.get("MEDSR_THREADS"):
        threads, reason = int(os.environ["MEDSR_THREADS"]), "MEDSR_THREADS"
    elif os.environ.get("OMP_NUM_THREADS"):
        threads, reason = torch.get_num_threads(), "OMP_NUM_THREADS"
    else:
        passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
        busy = 0.0 if passive else busy_elsewhere()
        reason = "free cores" + ("" if passive else ", spinning OpenMP threads")
        threads = choose_threads(cores, busy, workers)
    torch.set_num_threads(threads)
    settings = HostSettings(threads, cores, busy, workers, memory_kept, reason)
    log.info(
        "%d torch thread(s) (%s: %d cores, %.1f busy elsewhere, %d data workers); freed memory %s",
        threads, reason, cores, busy, workers, "kept for reuse" if memory_kept else "returned (not glibc)",
    )  # fmt: skip
    return settings
