"""Tiled vs untiled SwinIR on a fundus crop: the difference in 8-bit levels against the overlap.

Run:  python benchmarks/swinir_tiling.py --ckpt <file> [--model swinir] [--scale 2]
                                          [--image <fundus image>] [--crop 384] [--tile 128]
                                          [--overlaps 0 8 16 24 32 48 64] [--tta] [--device cpu]

Attention gives SwinIR no finite receptive field (the window grid is anchored at the image
origin and shifted windows chain across the map), so tiles never stitch exactly: medsr starts
and ends tiles on the window grid and cross-fades them (``medsr.ops.tiling``). This script
measures how far the tiled output (``medsr.predict tile=<tile> tile_overlap=<o>``) is from the
whole-image output, on a crop of a real fundus photograph used as the LR input (``--tta``: both
with the x8 self-ensemble), for each overlap: the largest and mean absolute difference in 8-bit
levels and the share of values that differ by more than one level. It prints the smallest
overlap that keeps every value within one level.

``--ckpt``: any file ``medsr.predict`` takes; official releases also need ``--model`` (a model
config, e.g. ``swinir`` or ``swinir_light``) and ``--scale``.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch

from medsr.conf.compose import model_config
from medsr.data.image_io import read_image
from medsr.evaluation.inference import Upscaler, upscale_array
from medsr.evaluation.networks import load_network

DRIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fundus" / "DRIVE" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--model", default=None, help="model config for files without a spec")
    parser.add_argument("--scale", type=int, default=None)
    parser.add_argument("--image", default=str(DRIVE / "images" / "01_test.png"))
    parser.add_argument("--crop", type=int, default=384, help="LR crop side, centred")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 8, 16, 24, 32, 48, 64])
    parser.add_argument("--tta", action="store_true", help="x8 self-ensemble on both sides")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    model = model_config(args.model) if args.model else None
    net, scale, tag = load_network(args.ckpt, args.scale, model)
    image = read_image(args.image)
    top, left = ((n - args.crop) // 2 for n in image.shape[:2])
    lr = np.ascontiguousarray(image[top : top + args.crop, left : left + args.crop, :3])
    run = {"device": args.device, "precision": "32", "tta": args.tta}
    whole = upscale_array(Upscaler(net, scale, **run), lr)
    whole = whole.astype(np.int32)

    print(
        f"{tag} x{scale} ({args.ckpt}), {Path(args.image).name} centre crop {args.crop}x{args.crop} "
        f"LR, tile={args.tile}{', x8 self-ensemble' if args.tta else ''}, float32 on "
        f"{args.device} ({platform.machine()})"
    )
    print("| tile_overlap | max diff (levels) | mean diff | values > 1 level |")
    print("| ---: | ---: | ---: | ---: |")
    enough = None
    for overlap in args.overlaps:
        up = Upscaler(net, scale, tile=args.tile, tile_overlap=overlap, **run)
        diff = np.abs(upscale_array(up, lr).astype(np.int32) - whole)
        print(f"| {overlap} | {diff.max()} | {diff.mean():.4f} | {np.mean(diff > 1) * 100:.3f} % |")
        if enough is None and diff.max() <= 1:
            enough = overlap
    print(f"smallest overlap within 1 level: {enough if enough is not None else 'none tried'}")


if __name__ == "__main__":
    main()
