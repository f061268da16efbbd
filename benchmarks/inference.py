"""Inference speed and memory, untiled vs tiled: EDSR-baseline and RRDBNet at x4.

Run:  python benchmarks/inference.py [--device cpu|cuda] [--full] [--threads N]
                                      [--models edsr_baseline rrdbnet]

Two tables, each measurement in a fresh process (the exact ``medsr.predict`` path: uint8 image
in host memory, tiles to the device, uint8 output written row block by row block):

1. Throughput on an input that fits untiled: output megapixels per second and peak memory
   growth, untiled vs ``tile=256`` and ``tile=512`` (``tile_overlap=32``). Tiles recompute
   their shared bands: about (T / (T - 32))^2 - 1 extra work, 31 % at 256 and 14 % at 512.
   Wall time, median over ``--repeat`` rounds; each round runs every mode once (interleaved,
   so a neighbour's burst slows a whole round, not one mode), and "relative" is the median
   over rounds of the untiled time over the mode's time in the same round.
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
from timing import median, paired_ratio

MODELS = {
    "edsr": ("EDSR", "edsr", {"num_feat": 256, "num_block": 32, "res_scale": 0.1}),
    "edsr_baseline": ("EDSR-baseline", "edsr", {"num_feat": 64, "num_block": 16, "res_scale": 1.0}),
    "rrdbnet": ("RRDBNet", "rrdbnet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32}),
}
# LR sizes (W, H) for the throughput table: the untiled run fits and takes seconds on 2 CPU cores.
THROUGHPUT_LR = {"cpu": {"edsr": (160, 120), "edsr_baseline": (640, 480), "rrdbnet": (384, 288)},
                 "cuda": {"edsr": (1280, 720), "edsr_baseline": (1920, 1080), "rrdbnet": (1280, 720)}}  # fmt: skip


def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(spec: dict) -> dict:
    """One measurement (runs in its own process)."""
    from medsr.evaluation.inference import Upscaler, upscale_array
    from medsr.models import build_model
    from medsr.ops.tiling import axis_windows

    _, arch, kwargs = MODELS[spec["model"]]
    kwargs = spec.get("net") or kwargs  # e.g. tiny networks for a dry run
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    net = build_model(arch, 4, **kwargs)
    overlap = spec.get("overlap", 32)
    up = Upscaler(net, 4, device=device, precision="auto", tile=spec["tile"], tile_overlap=overlap)
    w, h = spec["lr"]
    rows_note = ""
    if spec.get("rows"):  # only the first rows of tiles, over the full width
        windows = axis_windows(h, spec["tile"], overlap)
        if spec["rows"] < len(windows):
            rows_note = f"{spec['rows']} of {len(windows)} tile rows"
            h = windows[spec["rows"] - 1][1]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = np.empty((4 * h, 4 * w, 3), dtype=np.uint8)
    out.fill(0)  # resident before the run: the output array is not part of the growth
    upscale_array(Upscaler(net, 4, device=device, tile=0), image[:48, :48])  # warm-up kernels
    if device.type == "cuda" and spec["tile"]:  # and those of the tile size
        upscale_array(up, image[: spec["tile"] + 8, : spec["tile"] + 8])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        gpu_base = torch.cuda.memory_allocated()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
        base = _proc_kib("VmRSS")
    except OSError:  # not Linux, or not allowed: no host peak figure
        base = None
    walls, cpus = [], []
    for _ in range(spec.get("repeat", 1)):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        upscale_array(up, image, out=out)
        sync()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    seconds = median(walls)
    result = {
        **spec,
        "lr_run": [w, h],
        "rows_note": rows_note,
        "seconds": seconds,
        "walls": walls,
        "cpu_seconds": median(cpus),
        "mp_s": 16 * w * h / seconds / 1e6,
        "host_growth_mib": (_proc_kib("VmHWM") - base) / 1024 if base is not None else float("nan"),
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
    parser.add_argument(
        "--models", nargs="+", default=["edsr_baseline", "rrdbnet"], choices=list(MODELS)
    )
    parser.add_argument(
        "--memory-rows", type=int, default=2, help="tile rows of the 4000x3000 run (CPU)"
    )
    parser.add_argument("--full", action="store_true", help="run the whole 4000x3000 image")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="interleaved rounds per throughput entry (median kept)",
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
        print("Throughput (input fits untiled; wall time, median of --repeat interleaved rounds;")
        print("relative = untiled time / mode time, median over rounds):\n")
        print(
            f"| model | LR input | mode | seconds | CPU seconds | output MP/s | relative | host peak growth MiB{gpu} |"
        )
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if gpu else ""))
        for name in args.models:
            lr = THROUGHPUT_LR[kind][name]
            tiles = [
                t for t in (0, 256, 512) if t < max(lr)
            ]  # a tile >= the image is the untiled run
            runs: dict[int, list[dict]] = {t: [] for t in tiles}
            for _ in range(args.repeat):
                for tile in tiles:
                    runs[tile].append(
                        run_child(
                            {
                                "model": name,
                                "device": args.device,
                                "lr": lr,
                                "tile": tile,
                                "repeat": 1,
                                "threads": args.threads,
                            }
                        )
                    )
            base = [r.get("seconds", float("nan")) for r in runs[tiles[0]]]
            for tile in tiles:
                label = f"| {MODELS[name][0]} | {lr[0]}x{lr[1]} | {_tile(tile)} |"
                failed = [r for r in runs[tile] if "error" in r]
                if failed:
                    print(f"{label} failed: {failed[0]['error']} |")
                    continue
                walls = [r["seconds"] for r in runs[tile]]
                seconds = median(walls)
                extra = f" {median([r['gpu_peak_mib'] for r in runs[tile]]):.0f} |" if gpu else ""
                print(
                    f"{label} {seconds:.2f} | {median([r['cpu_seconds'] for r in runs[tile]]):.2f} | "
                    f"{16 * lr[0] * lr[1] / seconds / 1e6:.3f} | {paired_ratio(base, walls):.2f} "
                    f"| {median([r['host_growth_mib'] for r in runs[tile]]):.0f} |{extra}",
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
