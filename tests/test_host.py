"""Host settings of the verbs: freed memory is reused (no page faults per tile), torch gets one
thread per free core, and users can fix or switch off both."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from medsr.host import busy_jiffies, choose_threads, tune_host

# Runs a tile-like pattern 14 times (64 MiB feature maps made, combined and freed, as a
# network's layers do per tile); prints the minor page faults of the last eight.
TILES = """
import resource, sys, torch
from medsr.host import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
torch.set_num_threads(1)
def tile():
    a = torch.ones(16 * 2**20)
    b = torch.relu(a)
    c = a + b
    del a
    d = c * 2
    del b, c
    return d.sum()
for _ in range(6):  # the heap grows to its steady size
    tile()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    tile()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_kept_memory_is_reused_instead_of_page_faulted_in_again():
    def faults(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", TILES, mode], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        return int(run.stdout.split()[-1])

    pages = 16 * 2**20 * 4 // 4096  # one 64 MiB buffer
    returned, kept = faults("default"), faults("kept")
    assert returned >= 8 * 3 * pages  # every tile maps and zero-fills its buffers again
    assert kept <= pages  # the freed buffers are reused (at most one late heap extension)


@pytest.mark.parametrize(
    ("cores", "busy", "workers", "threads"),
    [
        (2, 0.0, 0, 2),  # idle machine: every core
        (2, 0.1, 0, 2),
        (2, 0.7, 0, 1),  # a neighbour holds most of a core
        (2, 6.0, 0, 1),  # overloaded: one thread, never zero
        (2, 0.0, 2, 1),  # two DataLoader workers beside torch
        (16, 3.2, 4, 9),
        (8, -1.0, 0, 8),  # never more threads than cores
    ],
)
def test_one_thread_per_free_core(cores, busy, workers, threads):
    assert choose_threads(cores, busy, workers) == threads


STAT = """cpu  300 0 100 900 10 0 0 50 0 0
cpu0 100 0 50 400 5 0 0 25 0 0
cpu1 200 0 50 500 5 0 0 25 0 0
intr 1 2 3
"""


def test_busy_ticks_count_steal_but_not_idle_or_iowait():
    assert busy_jiffies(STAT, {0}) == 100 + 50 + 25
    assert busy_jiffies(STAT, {0, 1}) == 175 + 275
    assert busy_jiffies(STAT, None) == 450
    assert busy_jiffies("", {0}) is None


def test_thread_count_can_be_fixed_or_the_tuning_switched_off(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("MEDSR_THREADS", "1")
        monkeypatch.delenv("MEDSR_HOST_TUNING", raising=False)
        settings = tune_host(workers=3)
        assert (
            settings.threads == 1
            and settings.reason == "MEDSR_THREADS"
            and torch.get_num_threads() == 1
        )
        monkeypatch.setenv("MEDSR_HOST_TUNING", "0")
        torch.set_num_threads(2)
        assert tune_host() is None and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_predict_applies_the_settings(tmp_path, samples_dir, caplog, monkeypatch, compose):
    from medsr.predict import predict

    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setenv("MEDSR_THREADS", "1")
    monkeypatch.delenv("MEDSR_HOST_TUNING", raising=False)
    image = samples_dir / "val" / "microaneurysms.png"
    cfg = compose(
        "predict",
        "progress=false",
        "model=bicubic",
        "scale=2",
        f"input={image}",
        f"output={tmp_path}",
    )
    try:
        with caplog.at_level("INFO", logger="medsr.host"):
            assert predict(cfg) == []
        assert "1 torch thread(s) (MEDSR_THREADS" in caplog.text and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# Records OMP_WAIT_POLICY at the moment torch is imported by a verb module.
WAIT_POLICY_AT_TORCH_IMPORT = """
import importlib.abc, os, sys
seen = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return None
sys.meta_path.insert(0, Watch())
import importlib
importlib.import_module(sys.argv[1])
print(seen[0])
"""


@pytest.mark.parametrize("verb", ["medsr.predict", "medsr.evaluate", "medsr.export"])
def test_verbs_let_openmp_threads_sleep_before_torch_loads(verb, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("MEDSR_HOST_TUNING", raising=False)

    def policy() -> str:
        run = subprocess.run(
            [sys.executable, "-c", WAIT_POLICY_AT_TORCH_IMPORT, verb],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout.split()[-1]

    assert policy() == "PASSIVE"
    monkeypatch.setenv("MEDSR_HOST_TUNING", "0")
    assert policy() == "None"
    monkeypatch.setenv("MEDSR_HOST_TUNING", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice stays
    assert policy() == "ACTIVE"
