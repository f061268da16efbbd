"""Speed of medsr.ops.imresize against torch's antialiased bicubic and a per-image loop port.

Run:  python benchmarks/imresize.py [--repeat 15] [--threads N] [--device cpu|cuda]

Prints milliseconds per call: medians over ``--repeat`` rounds, each round running medsr and
``F.interpolate`` once (interleaved, so a neighbour's burst on shared cores slows both, not one
block of runs), and their ratio as the median of per-round ratios. ``F.interpolate(mode="bicubic", antialias=True)`` is
the speed target (the same Keys a = -0.5 kernel, different borders, not MATLAB's output
rule); ``per-image loop`` is a BasicSR-style port (one weighted sum per output row and
column, image by image), the usual way MATLAB's imresize is reproduced in Python.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from timing import interleaved, median, paired_ratio

from medsr.ops import imresize
from medsr.ops.imresize import _contributions


def per_image_loop(x: torch.Tensor, scale: float) -> torch.Tensor:
    """BasicSR-style reference: per image, per output row/column weighted sums (no batching)."""
    outs = []
    for img in x:  # (C, H, W)
        c, h, w = img.shape
        out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
        idx_h, w_h = (torch.from_numpy(a) for a in _contributions(h, out_h, scale))
        idx_w, w_w = (torch.from_numpy(a) for a in _contributions(w, out_w, scale))
        w_h, w_w = w_h.to(img.dtype), w_w.to(img.dtype)
        rows = torch.empty(c, out_h, w, dtype=img.dtype)
        for i in range(out_h):
            rows[:, i, :] = torch.einsum("k,ckw->cw", w_h[i], img[:, idx_h[i], :])
        cols = torch.empty(c, out_h, out_w, dtype=img.dtype)
        for j in range(out_w):
            cols[:, :, j] = rows[:, :, idx_w[j]] @ w_w[j]
        outs.append(cols)
    return torch.stack(outs)


def median_ms(fn, repeat: int, sync) -> float:
    return 1e3 * median(interleaved({"fn": fn}, repeat, sync)["fn"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow per-image loop")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)

    cases = [  # (label, shape, scale)
        ("16x3x192x192 -> 1/2", (16, 3, 192, 192), 1 / 2),
        ("16x3x192x192 -> 1/4", (16, 3, 192, 192), 1 / 4),
        ("16x3x48x48 -> x4", (16, 3, 48, 48), 4),
        ("16x3x192x192 -> x4", (16, 3, 192, 192), 4),
        ("1x3x1356x2040 -> 1/4", (1, 3, 1356, 2040), 1 / 4),
        ("1x3x339x510 -> x4", (1, 3, 339, 510), 4),
    ]
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"float32, medians of {args.repeat} interleaved rounds (ms per call)"
    )
    header = f"| {'case':<22} | {'medsr':>8} | {'F.interpolate':>13} | {'per-image loop':>14} | {'medsr / F.interp':>16} | {'loop / medsr':>12} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rows = []
    for label, shape, scale in cases:  # the slow loop runs afterwards: it fragments the heap
        x = torch.rand(shape, generator=gen).to(device)
        out_hw = (math.ceil(shape[2] * scale), math.ceil(shape[3] * scale))
        times = interleaved(
            {
                "medsr": lambda x=x, s=scale: imresize(x, s),
                "torch": lambda x=x, hw=out_hw: F.interpolate(
                    x, size=hw, mode="bicubic", antialias=True
                ),
            },
            args.repeat,
            sync,
        )
        t_medsr, t_torch = (1e3 * median(times[k]) for k in ("medsr", "torch"))
        rows.append(
            (label, x, scale, t_medsr, t_torch, paired_ratio(times["medsr"], times["torch"]))
        )
    for label, x, scale, t_medsr, t_torch, ratio in rows:
        if args.no_reference or device.type != "cpu":
            t_loop = math.nan
        else:
            t_loop = median_ms(
                lambda x=x, s=scale: per_image_loop(x, s), max(1, args.repeat // 5), sync
            )
        print(
            f"| {label:<22} | {t_medsr:8.2f} | {t_torch:13.2f} | {t_loop:14.1f} | "
            f"{ratio:16.2f} | {t_loop / t_medsr:12.1f} |"
        )


if __name__ == "__main__":
    main()
