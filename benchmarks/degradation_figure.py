"""Figure: one HR crop per row (a photo, a fundus photograph, a grey image) beside its LR from
each degradation (bicubic, realesrgan, fundus, scanner), LR shown with nearest upscaling.

Run:  python benchmarks/degradation_figure.py [--out docs/degradations.png] [--scale 4]
          [--crop 128] [--seed 0]

The images are the CC0 samples shipped in ``src/medsr/samples``; each LR is the seeded
evaluation LR of that image (``image_generator(seed, name)``), so the figure is reproducible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from medsr.conf.compose import degradation_config
from medsr.data.degradations import build_degradation, image_generator

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medsr" / "samples"
# (file, top, left) of each row's HR crop
ROWS = [("val/chelsea.png", 60, 150), ("val/retina.jpg", 560, 150), ("train/camera.png", 90, 200)]
COLUMNS = ["HR", "bicubic", "realesrgan", "fundus", "scanner"]


def crop(path: Path, top: int, left: int, size: int) -> torch.Tensor:
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(img[top : top + size, left : left + size]).permute(2, 0, 1)[None]


def panel(x: torch.Tensor, size: int) -> Image.Image:
    """``(1, C, h, w)`` in [0, 1] -> RGB image of side ``size`` (nearest upscaling)."""
    rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    arr = (rgb[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr).resize((size, size), Image.NEAREST)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("docs/degradations.png"))
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--crop", type=int, default=160, help="HR crop side (a multiple of scale)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    size, label = args.crop, 16
    degs = {
        name: build_degradation(degradation_config(name), seed=args.seed) for name in COLUMNS[1:]
    }
    sheet = Image.new("RGB", (size * len(COLUMNS), (size + label) * len(ROWS)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, top, left) in enumerate(ROWS):
        hr = crop(SAMPLES / name, top, left, size)
        if name.startswith("train/camera"):
            hr = hr[:, :1]  # a single-channel image, as a scanner writes it
        y = r * (size + label)
        sheet.paste(panel(hr, size), (0, y + label))
        for c, deg in enumerate(degs.values(), start=1):
            lr = deg(hr, args.scale, image_generator(args.seed, name))
            sheet.paste(panel(lr, size), (c * size, y + label))
        for c, title in enumerate(COLUMNS):
            text = title if c else f"HR ({Path(name).stem})"
            draw.text(
                (c * size + 3, y + 2), text if c == 0 else f"{title} x{args.scale}", fill="black"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
