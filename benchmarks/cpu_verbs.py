"""CPU use of the verbs, this checkout vs an earlier revision, in paired runs.

Run:  python benchmarks/cpu_verbs.py [--baseline-rev REV] [--rounds 3] [--startup-rounds 5]
                                     [--attribute] [--skip-predict] [--skip-startup]

1. ``medsr.predict`` of a 2000x1500 RGB image at x4 with a small EDSR (f32b4, random weights,
   ``tile=256``, the default), on the CPU. Wall, user and system seconds, minor page faults and
   peak RSS of the whole command, from ``/usr/bin/time -v`` (``getrusage`` where it is missing).
   The outputs of the variants must be byte-identical.
2. ``medsr.evaluate model=bicubic data.sets=[B100] scale=4``: seconds from the start of the
   imports to the first image reaching the Upscaler (the run stops there).

Variants: ``before`` runs the source tree of ``--baseline-rev`` (``git archive``), ``after``
a copy of this checkout's ``src`` taken at the start; ``--attribute`` adds ``after, MEDSR_HOST_TUNING=0`` (this checkout without the
host settings of ``medsr.host``). Each round runs every variant once in a fresh process, the
order alternating between rounds, so a neighbour's burst hits both sides of a pair; the table
gives medians and the median over rounds of the per-round ratio ``before / variant``.
The input is a real photograph (``samples/train/hubble_deep_field.jpg``) resized to 2000x1500.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import median, paired_ratio

REPO = Path(__file__).resolve().parents[1]
B100 = REPO.parent / "shared" / "data" / "benchmark"
TIME_FIELDS = {
    "wall": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)",
    "user": r"User time \(seconds\): (\S+)",
    "sys": r"System time \(seconds\): (\S+)",
    "faults": r"Minor \(reclaiming a frame\) page faults: (\d+)",
    "rss_mib": r"Maximum resident set size \(kbytes\): (\d+)",
}
# Stops evaluate at its first image: wraps Upscaler.__call__ when its module is imported.
FIRST_IMAGE = """
import importlib.abc, importlib.machinery, os, runpy, sys, time
T0 = time.perf_counter()
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in ("medsr.inference", "medsr.evaluation.inference"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            def first(*args, **kwargs):
                print(f"@@first_image {time.perf_counter() - T0:.3f}", flush=True)
                os._exit(0)
            module.Upscaler.__call__ = first
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Hook())
sys.argv = ["medsr.evaluate", *sys.argv[1:]]
runpy.run_module("medsr.evaluate", run_name="__main__")
"""


def _seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def timed(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run ``cmd``; wall/user/sys seconds, minor faults, peak RSS MiB."""
    gnu_time = shutil.which("time") if Path("/usr/bin/time").exists() else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        ([gnu_time, "-v"] if gnu_time else []) + cmd,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {proc.stderr.strip().splitlines()[-3:]}")
    if gnu_time:
        found = {k: re.search(p, proc.stderr) for k, p in TIME_FIELDS.items()}
        r = {
            k: (_seconds(m.group(1)) if k == "wall" else float(m.group(1)))
            for k, m in found.items()
        }
        r["rss_mib"] /= 1024
    else:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = {"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
             "faults": after.ru_minflt - before.ru_minflt, "rss_mib": after.ru_maxrss / 1024}  # fmt: skip
    r["stdout"] = proc.stdout
    return r


def make_inputs(folder: Path) -> tuple[Path, Path]:
    import torch
    from PIL import Image

    from medsr.models import build_model, save_weights

    image = folder / "photo_2000x1500.png"
    src = REPO / "src" / "medsr" / "samples" / "train" / "hubble_deep_field.jpg"
    Image.open(src).convert("RGB").resize((2000, 1500), Image.BICUBIC).save(image)
    torch.manual_seed(0)
    weights = save_weights(
        build_model("edsr", 4, num_feat=32, num_block=4), folder / "edsr_f32b4_x4.safetensors"
    )
    return image, weights


def export_revision(rev: str, folder: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def snapshot(folder: Path) -> Path:
    """A copy of this checkout's ``src`` (edits made while the benchmark runs do not leak in)."""
    return Path(
        shutil.copytree(REPO / "src", folder / "src", ignore=shutil.ignore_patterns("__pycache__"))
    )


def rounds(variants: dict[str, dict], n: int, run) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(n):
        for name in names if i % 2 == 0 else names[::-1]:
            results[name].append(run(name, variants[name], i))
    return results


def table(results: dict[str, list[dict]], fields: list[str]) -> None:
    base = [r["wall"] for r in results["before"]]
    print(
        "| variant | "
        + " | ".join(f"{f} (median)" for f in fields)
        + " | before / variant (wall, paired) |"
    )
    print("| --- |" + " ---: |" * (len(fields) + 1))
    for name, runs in results.items():
        cells = [
            f"{median([r[f] for r in runs]):,.{0 if f in ('faults', 'rss_mib') else 2}f}"
            for f in fields
        ]
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {paired_ratio(base, [r['wall'] for r in runs]):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline-rev", default="e45c54e", help="git revision of the 'before' source tree"
    )
    parser.add_argument("--rounds", type=int, default=3, help="paired predict rounds")
    parser.add_argument("--startup-rounds", type=int, default=5)
    parser.add_argument(
        "--attribute", action="store_true", help="add this checkout with MEDSR_HOST_TUNING=0"
    )
    parser.add_argument("--variant", action="append", default=[], metavar="ENV=VALUE[,ENV=VALUE]",
                        help="also run this checkout with these environment variables (repeatable)")  # fmt: skip
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {
            k: v for k, v in os.environ.items() if k not in ("MEDSR_HOST_TUNING", "MEDSR_THREADS")
        }
        variants = {"before": {**env, "PYTHONPATH": str(export_revision(args.baseline_rev, tmp))},
                    "after": {**env, "PYTHONPATH": str(snapshot(tmp / "after"))}}  # fmt: skip
        if args.attribute:
            args.variant.insert(0, "MEDSR_HOST_TUNING=0")
        for extra in args.variant:
            variants[f"after, {extra}"] = {
                **variants["after"],
                **dict(kv.split("=", 1) for kv in extra.split(",")),
            }
        print(f"before = {args.baseline_rev}, after = this checkout; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores\n")  # fmt: skip
        if not args.skip_predict:
            image, weights = make_inputs(tmp)

            def predict(name: str, env: dict, i: int) -> dict:
                out = tmp / "out" / f"{i}_{list(variants).index(name)}"
                cmd = [sys.executable, "-m", "medsr.predict", f"ckpt={weights}", f"input={image}",
                       f"output={out}", "device=cpu", "progress=false"]  # fmt: skip
                r = timed(cmd, env, tmp)
                r["bytes"] = (out / f"{image.stem}.png").read_bytes()
                return r

            results = rounds(variants, args.rounds, predict)
            outputs = {r["bytes"] for runs in results.values() for r in runs}
            print(f"medsr.predict 2000x1500 -> 8000x6000, EDSR f32b4 x4, tile=256, CPU; {args.rounds} paired rounds; "
                  f"outputs {'byte-identical' if len(outputs) == 1 else 'DIFFER'}:\n")  # fmt: skip
            table(results, ["wall", "user", "sys", "faults", "rss_mib"])
            print()
        if not args.skip_startup:
            if not (B100 / "B100").is_dir():
                print(f"evaluate start-up: skipped ({B100}/B100 is absent)")
                return

            def startup(name: str, env: dict, i: int) -> dict:
                cmd = [sys.executable, "-c", FIRST_IMAGE, "model=bicubic", f"data.root={B100}", "data.sets=[B100]",
                       "scale=4", "progress=false", f"hydra.run.dir={tmp / 'eval' / f'{i}_{list(variants).index(name)}'}"]  # fmt: skip
                r = timed(cmd, env, tmp)
                r["first_image"] = float(re.search(r"@@first_image (\S+)", r["stdout"]).group(1))
                return r

            results = rounds(variants, args.startup_rounds, startup)
            print(f"medsr.evaluate model=bicubic data.sets=[B100] scale=4: seconds from the first import to the first "
                  f"image; {args.startup_rounds} paired rounds:\n")  # fmt: skip
            table(results, ["first_image", "wall", "user", "sys"])


if __name__ == "__main__":
    main()
