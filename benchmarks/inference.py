"""Inference speed and memory, untiled vs tiled: EDSR-baseline and RRDBNet at x4.

Run:  python benchmarks/inference.py [--device cpu|cuda] [--full] [--threads N]
                                      [--models edsr_baseline rrdbnet]

Two tables, each measurement in a fresh process (the exact ``medsr.predict`` path: uint8 image
in host memory, tiles to the device, uint8 output written row block by row block):

1. Throughput on an input that fits untiled: output megapixels per second and peak memory
   growth, untiled vs ``tile=256`` and ``tile=512`` (``tile_overlap=32``). Tiles recompute
   their shared bands: about (T / (T - 32))^2 - 1 extra work, 31 % at 256 and 14 % at 512.
2. The memory target: a 4000x3000 LR image at x4 with ``tile=256``. Peak growth is the peak
   resident set (``VmHWM``, reset just before the run) minus the resident set before the run,
   when the model, the input array and the (touched) 16000x12000 output array are already in
   memory; on a GPU also the peak of ``torch.cuda.max_memory_allocated``. On a CPU the full
   image takes minutes (EDSR-baseline) to tens of minutes (RRDBNet), so by default only the
   first ``--memory-rows`` rows of tiles over the full 4000-pixel width are run: the host
   holds one strip of rows at a time, so the peak does not grow with the image height
   (``--full`` runs the whole image to check).

Random weights (speed and memory do not depend on them); inputs are random 8-bit RGB.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

MODELS = {
    "edsr_baseline": ("EDSR-baseline", "edsr", {"num_feat": 64, "num_block": 16, "res_scale": 1.0}),
    "rrdbnet": ("RRDBNet", "rrdbnet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32}),
}
# LR sizes (W, H) for the throughput table: the untiled run fits and takes seconds on 2 CPU cores.
THROUGHPUT_LR = {
    "cpu": {"edsr_baseline": (640, 480), "rrdbnet": (384, 288)},
    "cuda": {"edsr_baseline": (1920, 1080), "rrdbnet": (1280, 720)},
}


def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(spec: dict) -> dict:
    """One measurement (runs in its own process)."""
    from medsr.evaluation.inference import Upscaler
    from medsr.models import build_model
    from medsr.ops.tiling import axis_windows
    from medsr.predict import upscale_array

    _, arch, kwargs = MODELS[spec["model"]]
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    net = build_model(arch, 4, **kwargs)
    up = Upscaler(net, 4, device=device, precision="auto", tile=spec["tile"], tile_overlap=32)
    w, h = spec["lr"]
    rows_note = ""
    if spec.get("rows"):  # only the first rows of tiles, over the full width
        windows = axis_windows(h, spec["tile"], 32)
        if spec["rows"] < len(windows):
            rows_note = f"{spec['rows']} of {len(windows)} tile rows"
            h = windows[spec["rows"] - 1][1]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = np.empty((4 * h, 4 * w, 3), dtype=np.uint8)
    out.fill(0)  # resident before the run: the output array is not part of the growth
    upscale_array(Upscaler(net, 4, device=device, tile=0), image[:48, :48])  # warm-up kernels
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        gpu_base = torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    base = _proc_kib("VmRSS")
    walls, cpus = [], []
    for _ in range(spec.get("repeat", 1)):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        upscale_array(up, image, out=out)
        sync()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    seconds = min(walls)
    result = {
        **spec,
        "lr_run": [w, h],
        "rows_note": rows_note,
        "seconds": seconds,
        "cpu_seconds": min(cpus),
        "mp_s": 16 * w * h / seconds / 1e6,
        "host_growth_mib": (_proc_kib("VmHWM") - base) / 1024,
        "amp": str(up.amp or "float32"),
        "tile_used": up.tile_used,
    }
    if device.type == "cuda":
        result["gpu_peak_mib"] = (torch.cuda.max_memory_allocated() - gpu_base) / 2**20
    return result


def run_child(spec: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {**spec, "error": (proc.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tile(t: int) -> str:
    return "untiled" if t == 0 else f"tile={t}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--memory-rows", type=int, default=2, help="tile rows of the 4000x3000 run (CPU)"
    )
    parser.add_argument("--full", action="store_true", help="run the whole 4000x3000 image")
    parser.add_argument(
        "--repeat", type=int, default=2, help="timed runs per throughput entry (best kept)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch default)"
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    where = (
        torch.cuda.get_device_name()
        if kind == "cuda"
        else f"CPU, {args.threads or torch.get_num_threads()} threads"
    )
    print(f"medsr inference benchmark, x4, tile_overlap=32, {where}\n")
    gpu = " | GPU peak MiB" if kind == "cuda" else ""
    if not args.skip_throughput:
        print("Throughput (input fits untiled; best of --repeat runs; output MP/s from wall time;")
        print(
            "relative = untiled / tiled time, from process CPU time on a CPU, wall time on a GPU):\n"
        )
        print(
            f"| model | LR input | mode | seconds | CPU seconds | output MP/s | relative | host peak growth MiB{gpu} |"
        )
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if gpu else ""))
        for name in args.models:
            lr = THROUGHPUT_LR[kind][name]
            base = None
            for tile in (0, 256, 512):
                if tile >= max(lr):
                    continue  # one window: the untiled run again
                r = run_child(
                    {
                        "model": name,
                        "device": args.device,
                        "lr": lr,
                        "tile": tile,
                        "repeat": args.repeat,
                        "threads": args.threads,
                    }
                )
                label = f"| {MODELS[name][0]} | {lr[0]}x{lr[1]} | {_tile(tile)} |"
                if "error" in r:
                    print(f"{label} failed: {r['error']} |")
                    continue
                # On a CPU shared with other work, process CPU time is the steadier measure.
                speed = 1 / r["cpu_seconds"] if kind == "cpu" else r["mp_s"]
                base = base or speed
                extra = f" {r['gpu_peak_mib']:.0f} |" if gpu else ""
                print(
                    f"{label} {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['mp_s']:.3f} | {speed / base:.2f} "
                    f"| {r['host_growth_mib']:.0f} |{extra}",
                    flush=True,
                )
        print()
    if not args.skip_memory:
        rows = None if args.full or kind == "cuda" else args.memory_rows
        print(
            "Memory target: 4000x3000 LR -> 16000x12000 at x4, tile=256 (limit: 2048 MiB growth):\n"
        )
        print(f"| model | run | seconds | output MP/s | host peak growth MiB{gpu} |")
        print("| --- | --- | ---: | ---: | ---: |" + (" ---: |" if gpu else ""))
        for name in args.models:
            r = run_child(
                {
                    "model": name,
                    "device": args.device,
                    "lr": [4000, 3000],
                    "tile": 256,
                    "rows": rows,
                    "threads": args.threads,
                }
            )
            if "error" in r:
                print(f"| {MODELS[name][0]} | failed: {r['error']} |")
                continue
            run = r["rows_note"] or "whole image"
            extra = f" {r['gpu_peak_mib']:.0f} |" if gpu else ""
            print(
                f"| {MODELS[name][0]} | {run} | {r['seconds']:.1f} | {r['mp_s']:.3f} | {r['host_growth_mib']:.0f} |{extra}",
                flush=True,
            )
        print("\nInput array 36 MiB, output array 549 MiB (uint8), both excluded from the growth.")


if __name__ == "__main__":
    main()
