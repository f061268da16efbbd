"""How often a SIGKILL leaves a truncated image under its final name.

Run:  python benchmarks/kill_outputs.py [--kills 10] [--seed 0] [--src <a checkout's src/>]

``medsr.predict model=bicubic scale=4`` writes 1536x1536 RGB PNGs of noise (Pillow encodes and
writes them block by block for a good part of the run, so kills land mid-write often) and is SIGKILLed at seeded random moments after its first
output appears (0 to 6 s later, spread over several images). Counted per kill: outputs under their final name that do not decode
(truncated), and hidden temporary files left behind (the kill landed mid-write and the final
name was spared). ``--src`` runs another checkout (e.g. one without atomic writes) for
comparison; both use this interpreter.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run_once(src: Path, inputs: Path, out: Path, delay: float) -> tuple[int, int, int]:
    """(outputs written, truncated outputs, temporary files left) after one kill."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "medsr.predict", "model=bicubic", "scale=4"]
    cmd += [f"input={inputs}", f"output={out}", "progress=false", "tile=0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not any(p.suffix == ".png" and not p.name.startswith(".") for p in out.glob("*")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("predict ended before its first output")
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from PIL import Image

    finals = [p for p in out.glob("*.png") if not p.name.startswith(".")]
    truncated = 0
    for path in finals:
        try:
            with Image.open(path) as im:
                im.load()
        except Exception:  # noqa: BLE001 - any decode failure is a truncated file
            truncated += 1
    temporaries = [p for p in out.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    return len(finals), truncated, len(temporaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))
    from medsr.data.image_io import write_image

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="medsr-kill-"))
    inputs = work / "in"
    pixels = np.random.default_rng(args.seed).integers(0, 256, (384, 384, 3), dtype=np.uint8)
    for i in range(8):
        write_image(inputs / f"img{i}.png", np.roll(pixels, i, axis=0))
    totals = np.zeros(3, int)
    for k in range(args.kills):
        out = work / f"out{k}"
        result = run_once(args.src, inputs, out, rng.uniform(0.0, 6.0))
        totals += result
        print(f"kill {k}: {result[0]} outputs, {result[1]} truncated, {result[2]} temporary")
    print(
        f"{args.src}: {args.kills} kills, {totals[0]} outputs under final names, "
        f"{totals[1]} truncated, {totals[2]} hidden temporary files (kills mid-write)"
    )


if __name__ == "__main__":
    main()
