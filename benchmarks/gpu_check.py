"""The prepared GPU check: everything medsr needs measured on a GPU, in one command, in <= 8 min.

Run:  make gpu-check                      (python benchmarks/gpu_check.py --out outputs/gpu_check)
      python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check   (CPU, tiny sizes, < 1 min)

Writes ``<out>/gpu_check.md`` (printed at the end), ``<out>/gpu_check.json`` (every figure, with
the settings that made it) and ``<out>/gpu_check.log`` (the children's own output), rewritten
after each part so an interrupted run keeps what it measured. Nothing is downloaded: random
weights (VGG19 included) and random 8-bit images; speed does not depend on them.

Parts, in order, each in child processes with a time box (a row or part that would overrun is
stopped and reported as skipped; the training part gets what the others leave of ``--budget``):

1. ``imresize``: MATLAB bicubic on CUDA vs CPU, 16x3x192x192 at 1/2, 1/3, 1/4.
   Columns: case | max abs diff (CUDA vs CPU, float) | 8-bit levels differing (share of
   values that round differently) | imresize ms and F.interpolate ms (bicubic, antialias=True,
   same output size; CUDA, median of 20 interleaved rounds) | imresize / F.interpolate.
2. ``predict``: ``medsr.predict``'s path (``upscale_array``: uint8 image in host memory, tiles
   to the GPU, uint8 output in host memory) on a 4000x3000 RGB image at x4 with EDSR (f256b32)
   and RRDBNet (f64b23g32), precision auto (bf16), untiled vs ``tile=512`` (overlap 32).
   Columns: model | mode | tile used (after out-of-memory halvings) | seconds (one run after a
   warm-up) | output MP/s (192 MP / seconds) | GPU peak GiB (max_memory_allocated) | host peak
   growth MiB (peak RSS during the run minus RSS before it; the 549 MiB output array excluded).
3. ``pytest``: ``pytest -m gpu`` (the CPU-vs-GPU equality tests) and its result line.
4. ``train``: training iterations per second at the thesis settings (batch 16, HR patch 192;
   ESRGAN 128) for EDSR f256b32, RCAN f64g10b20, RRDBNet f64b23g32, ESRGAN (that RRDBNet +
   VGG-style discriminator + VGG19 perceptual loss) and SwinIR-M (``model=swinir``, when that
   config exists; at batch 16 and HR patch 192 like the others, not the paper's 32 x 256).
   medsr rows are ``medsr.train``'s step (LightningModule from the packaged configs, Lightning
   Trainer with the row's precision, the device-side augmentation and MATLAB-bicubic
   degradation ``medsr.data.degrade.train_batch``, the optimiser step(s)); HR uint8 patches
   come from host memory. The baseline (``baseline_loop.py``) is a plain PyTorch loop with the
   same networks, losses, optimiser, batch and precision, preparing data as BasicSR does: 6
   DataLoader workers augment and bicubic-degrade each image on the CPU (per-row loop).
   Columns: model | network | batch (images x HR patch) | precision (Lightning's 32-true,
   bf16-mixed, 16-mixed) | channels_last + compile (``channels_last=true compile=true``) |
   medsr it/s | baseline it/s (eager, same precision) | medsr / baseline (the headline) |
   medsr peak GiB | baseline peak GiB (``torch.cuda.max_memory_allocated``) | first step s
   (includes compilation) | note. Iterations per second are measured over ``--steps`` steps
   after ``--warmup`` steps, with a CUDA synchronisation at each end of the window.
   Rows run eager first (bf16, 32, 16), then compiled (bf16 first); compiled rows that do not
   fit the box are listed as skipped.

``--dry-run`` runs every part on the CPU with tiny networks and images, 2 steps (1 warm-up, 1
timed), ``torch.compile`` with the ``eager`` backend, ``pytest -m gpu`` on the files that hold
GPU tests: the code paths of the real check, not its numbers (CI runs it).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import report
from timebox import run_rows, skipped, worker_loop

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PRECISIONS = ("bf16-mixed", "32-true", "16-mixed")
TRAIN_MODELS = ("edsr", "rcan", "rrdbnet", "esrgan", "swinir")
PREDICT_MODELS = ("edsr", "rrdbnet")
BOXES = {"imresize": 40, "predict": 110, "pytest": 100}  # seconds; train: what is left
ROW_BOX = {"eager": 75, "baseline": 75, "compiled": 200, "predict": 80, "imresize": 30}
ROW_NEED = {"eager": 8, "baseline": 8, "compiled": 40, "predict": 10, "imresize": 2}
MARGIN = 8  # seconds kept for the report


# -- the plan ------------------------------------------------------------------------------------
def train_rows(models: list[str], dry: bool) -> list[dict]:
    def row(model: str, precision: str, kind: str) -> dict:
        return {"id": f"train/{model}/{precision}/{kind}", "kind": kind, "model": model,
                "precision": precision}  # fmt: skip

    # Eager and baseline side by side first, the compiled runs (slow to start) after them.
    rows = [row(m, p, k) for p in PRECISIONS for m in models for k in ("eager", "baseline")]
    rows += [row(m, p, "compiled") for p in PRECISIONS for m in models]
    if dry:  # each code path once: every model eager, every precision and step kind on EDSR
        rows = [r for r in rows if (r["model"] == "edsr" and (r["kind"] != "compiled" or r["precision"] == "32-true"))
                or (r["precision"] == "32-true" and (r["kind"] == "eager" or r["model"] == "esrgan" and r["kind"] == "baseline"))]  # fmt: skip
    return rows


def predict_rows(dry: bool) -> list[dict]:
    tile = 24 if dry else 512
    return [
        {"id": f"predict/{m}/{t}", "kind": "predict", "model": m, "tile": t}
        for m in PREDICT_MODELS
        for t in (0, tile)
    ]


def imresize_rows(dry: bool) -> list[dict]:
    return [{"id": f"imresize/1/{s}", "kind": "imresize", "inverse_scale": s} for s in (2, 3, 4)]


# -- the child side ------------------------------------------------------------------------------
def worker(spec: dict) -> None:
    import torch

    sys.path.insert(0, str(HERE))
    dry, device = spec["dry"], spec["device"]
    part = spec["part"]
    if device == "cpu":  # OpenMP threads stall at every barrier when a neighbour takes a core
        torch.set_num_threads(1)

    def cleanup() -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if part == "train":
            torch._dynamo.reset()

    if part == "train":
        measure = _train_measure(spec)
    elif part == "predict":
        measure = _predict_measure(spec)
    else:
        measure = _imresize_measure(spec)
    worker_loop(
        spec["rows"],
        spec["deadline"],
        lambda r: 0 if dry else ROW_NEED[r["kind"]],
        measure,
        cleanup,
    )


def _train_measure(spec: dict):
    import logging
    import warnings

    import lightning.pytorch as pl
    from baseline_loop import measure_baseline
    from train_throughput import measure

    from medsr._cli import quiet_third_party

    quiet_third_party()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for text in ("the perceptual loss uses a randomly initialised VGG19", "ESRGAN is training its generator",
                 "You defined a `validation_step`", "The `srun` command"):  # fmt: skip
        warnings.filterwarnings("ignore", message=text)
    pl.seed_everything(0, verbose=False)
    dry = spec["dry"]

    def run(row: dict) -> dict:
        common = (row["model"], spec["device"], row["precision"])
        if row["kind"] == "baseline":
            r = measure_baseline(
                *common, spec["steps"], spec["warmup"], dry, workers=1 if dry else 6
            )
        else:
            fast = row["kind"] == "compiled"
            r = measure(
                *common,
                fast,
                fast,
                spec["steps"],
                spec["warmup"],
                dry,
                backend="eager" if dry else "inductor",
            )
        return {
            "network": r["size"],
            "batch": r["batch"],
            "it_s": r["steps_s"],
            "peak_gib": r["memory"],
            "first_s": r["first"],
        }

    return run


def _predict_measure(spec: dict):
    from inference import child

    tiny = {
        "edsr": {"num_feat": 8, "num_block": 1},
        "rrdbnet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    }
    lr = [40, 24] if spec["dry"] else [4000, 3000]

    def run(row: dict) -> dict:
        r = child({"model": row["model"], "device": spec["device"], "lr": lr, "tile": row["tile"],
                   "overlap": 8 if spec["dry"] else 32, "net": tiny[row["model"]] if spec["dry"] else None})  # fmt: skip
        return {"lr": lr, "seconds": r["seconds"], "mp_s": r["mp_s"], "tile_used": r["tile_used"], "amp": r["amp"],
                "gpu_peak_gib": r.get("gpu_peak_mib", math.nan) / 1024, "host_growth_mib": r["host_growth_mib"]}  # fmt: skip

    return run


def _imresize_measure(spec: dict):
    import torch
    import torch.nn.functional as F
    from timing import interleaved, median

    from medsr.ops import imresize, quantize

    device = torch.device(spec["device"])
    shape = (2, 3, 24, 24) if spec["dry"] else (16, 3, 192, 192)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    xd = x.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(row: dict) -> dict:
        s = row["inverse_scale"]
        cpu, dev = imresize(x, 1 / s), imresize(xd, 1 / s).cpu()
        size = tuple(cpu.shape[-2:])
        times = interleaved(
            {"imresize": lambda: imresize(xd, 1 / s),
             "interp": lambda: F.interpolate(xd, size=size, mode="bicubic", antialias=True)},
            repeat=3 if spec["dry"] else 20, sync=sync, warmup=2,
        )  # fmt: skip
        ms = {k: 1e3 * median(v) for k, v in times.items()}
        return {"case": f"{'x'.join(map(str, shape))} -> 1/{s}", "max_abs_diff": (cpu - dev).abs().max().item(),
                "levels_differ": (quantize(cpu) != quantize(dev)).float().mean().item(),
                "imresize_ms": ms["imresize"], "interp_ms": ms["interp"], "ratio": ms["imresize"] / ms["interp"]}  # fmt: skip

    return run


# -- the parent side -----------------------------------------------------------------------------
def run_pytest(dry: bool, box: float, log) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    if dry:  # only the files that hold GPU tests: the command and its parsing, in seconds
        cmd += [
            str(p)
            for p in sorted((REPO / "tests").glob("test_*.py"))
            if "mark.gpu" in p.read_text()
        ]
    row = {"id": "pytest", "command": "pytest -m gpu", "box_s": box}
    if box <= 1:
        return skipped(row, "no time left")
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=box)
    except subprocess.TimeoutExpired as err:
        log.write(
            (err.stdout or b"").decode(errors="replace")
            if isinstance(err.stdout, bytes)
            else (err.stdout or "")
        )
        return skipped(row, f"stopped after its {box:.0f} s time box")
    log.write(proc.stdout + proc.stderr)
    lines = proc.stdout.strip().splitlines()
    summary = next(
        (
            ln.strip("= ")
            for ln in reversed(lines)
            if re.search(r"\d+ (passed|failed|skipped|deselected|error)", ln)
        ),
        "no result line",
    )
    failures = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    status = "ok" if proc.returncode in (0, 5) else "failed"  # 5: no test selected
    return {
        **row,
        "status": status,
        "result": summary,
        "failures": failures,
        "exit_code": proc.returncode,
    }


def environment(device: str) -> dict:
    import torch

    info = {
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if device == "cuda":
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda,
                    gpu_memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30)  # fmt: skip
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True, timeout=10).stdout.strip() or "unknown"  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        info["commit"] = "unknown"
    return info


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/gpu_check"),
        help="folder for gpu_check.{md,json,log}",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU, tiny sizes, 2 steps: checks the code paths in < 1 min",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the whole check (default 480; dry run 240)",
    )
    parser.add_argument("--parts", nargs="+", default=["imresize", "predict", "pytest", "train"],
                        choices=["imresize", "predict", "pytest", "train"])  # fmt: skip
    parser.add_argument(
        "--models", nargs="+", default=list(TRAIN_MODELS), choices=list(TRAIN_MODELS)
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed training steps (default 10; dry run 1)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed training steps first, >= 1 (default 3; dry run 1)",
    )
    parser.add_argument(
        "--box",
        action="append",
        default=[],
        metavar="PART=SECONDS",
        help="override a part's time box",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    started = time.time()
    dry = args.dry_run
    import torch

    device = "cuda" if torch.cuda.is_available() and not dry else "cpu"
    if device == "cpu" and not dry:
        parser.error("no CUDA GPU is visible; run with --dry-run to check the script on the CPU")
    budget = args.budget or (240.0 if dry else 480.0)
    boxes = {**BOXES, **{k: float(v) for k, v in (b.split("=", 1) for b in args.box)}}
    steps, warmup = args.steps or (1 if dry else 10), max(1, args.warmup or (1 if dry else 3))
    sys.path.insert(0, str(HERE))
    from train_throughput import available

    models = [m for m in args.models if available(m)]
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"environment": environment(device), "settings": {"dry_run": dry, "budget_s": budget, "steps": steps, "warmup": warmup,
              "boxes_s": boxes, "models_unavailable": [m for m in args.models if m not in models]}, "parts": {}}  # fmt: skip
    spec = {"dry": dry, "device": device, "steps": steps, "warmup": warmup}
    with open(args.out / "gpu_check.log", "w") as log:
        for part in args.parts:
            t0 = time.time()
            end = started + budget - MARGIN
            box = end - t0 if part == "train" else min(boxes[part], end - t0)
            if part == "pytest":
                rows = [run_pytest(dry, box, log)]
            else:
                planned = {"train": lambda: train_rows(models, dry), "predict": lambda: predict_rows(dry),
                           "imresize": lambda: imresize_rows(dry)}[part]()  # fmt: skip
                rows = run_rows(__file__, {**spec, "part": part}, planned, t0 + box,
                                lambda r: boxes.get(r["kind"], ROW_BOX[r["kind"]]), log)  # fmt: skip
            result["parts"][part] = {
                "box_s": round(box, 1),
                "seconds": round(time.time() - t0, 1),
                "rows": rows,
            }
            result["seconds"] = round(time.time() - started, 1)
            report.write(result, args.out)
    print(report.markdown(result))
    print(f"\nwritten: {args.out / 'gpu_check.md'}, {args.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
