"""HR training patches per second from a folder of 2K PNGs: direct decoding, several patches per
decode, and the uint8 memory-map cache, through the real DataLoader with N workers.

Run:  python benchmarks/data_throughput.py [--root DF2K_or_folder] [--images 16] [--workers 2]
      [--patch 192] [--scale 4] [--margin 2] [--seconds 10]

Patches are cut as training cuts them: on the scale's grid with ``--margin`` LR pixels around
them for the exact-LR crop (``medsr.data.patches``; ``--margin 0``: the bare patch).

Without ``--root`` it makes 2040x1356 PNGs (the DIV2K size) by upscaling real photographs from
``../shared/data/train/BSDS500_test`` into a temporary folder. Each mode is timed after its first
batch (worker start-up and the shuffle buffer's first fill excluded, as in a long run); the cache
build time is printed separately (it is paid once, by the first run on a dataset).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from PIL import Image
from torch.utils.data import DataLoader

from medsr.data.cache import ImageCache
from medsr.data.datasets import PatchDataset
from medsr.data.decode import FovOptions
from medsr.data.image_io import list_images
from medsr.data.patches import LR_MARGIN
from medsr.data.sources import records_from

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "BSDS500_test"


def make_2k_pngs(out: Path, n: int) -> list[Path]:
    sources = list_images(SHARED)[:n]
    paths = []
    for i, src in enumerate(sources):
        im = Image.open(src).convert("RGB")
        size = (2040, 1356) if im.width >= im.height else (1356, 2040)
        path = out / f"{i + 1:04d}.png"
        im.resize(size, Image.BICUBIC).save(path)
        paths.append(path)
    return paths


def throughput(dataset: PatchDataset, workers: int, seconds: float) -> float:
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )
    patches, start = 0, None
    while True:
        for b in loader:
            if start is None:
                start = time.perf_counter()  # after the first batch: workers are up
                continue
            patches += b["hr"].shape[0]
            if time.perf_counter() - start >= seconds:
                return patches / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--root", type=Path, help="folder of HR PNGs (e.g. DF2K/DIV2K_train_HR); default: made"
    )
    ap.add_argument("--images", type=int, default=16, help="images made / used")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--patch", type=int, default=192)
    ap.add_argument("--scale", type=int, default=4, help="patch grid and margin unit")
    ap.add_argument("--margin", type=int, default=LR_MARGIN, help="LR pixels around each patch")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--per-image", type=int, default=32, help="patches per decode")
    ap.add_argument("--seconds", type=float, default=10.0, help="timing window per mode")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.root:
            files = list_images(args.root, recursive=True)[: args.images]
            where = str(args.root)
        else:
            (tmp / "hr").mkdir()
            t0 = time.perf_counter()
            files = make_2k_pngs(tmp / "hr", args.images)
            where = f"{len(files)} 2040x1356 PNGs upscaled from BSDS500 ({time.perf_counter() - t0:.1f} s to make)"
        records = records_from(files)
        t0 = time.perf_counter()
        for f in files:
            Image.open(f).load()
        decode_ms = (time.perf_counter() - t0) / len(files) * 1e3

        def dataset(per_image: int, buffer: int, cache=None) -> PatchDataset:
            return PatchDataset(
                records if cache is None else records_from([Path(p) for p in cache.paths]),
                args.patch,
                args.batch,
                args.workers,
                per_image,
                buffer,
                FovOptions(),
                False,
                cache,
                scale=args.scale,
                margin=args.margin,
            )

        rows = [
            (
                "direct decoding (1 patch per decode)",
                throughput(dataset(1, 0), args.workers, args.seconds),
            )
        ]
        rows.append(
            (
                f"{args.per_image} patches per decode, shuffle buffer 512",
                throughput(dataset(args.per_image, 512), args.workers, args.seconds),
            )
        )
        t0 = time.perf_counter()
        cache = ImageCache.open_or_build(
            records, tmp / "cache", FovOptions(), workers=args.workers, tag="bench"
        )
        build_s = time.perf_counter() - t0
        rows.append(
            (
                "uint8 memory-map cache",
                throughput(dataset(1, 0, cache), args.workers, args.seconds),
            )
        )

    print(
        f"data: {where}; Pillow decode {decode_ms:.0f} ms/image; cache build {build_s:.1f} s (once)"
    )
    side = args.patch + 2 * args.margin * args.scale
    print(
        f"HR patches {args.patch}x{args.patch} (shipped {side}x{side}: x{args.scale}, "
        f"{args.margin} LR px margin), batch {args.batch}, {args.workers} workers, "
        f"{args.seconds:.0f} s per mode after the first batch; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other processes slow every row)\n"
    )
    print("| mode | HR patches/s |")
    print("| --- | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
