"""Device-side batch preparation: patches/s of each degradation next to the bicubic path, the
dihedral augmentation three ways, and (``--rrdb``) the ratio to an RRDBNet training step.

Run:  python benchmarks/degradation_throughput.py [--device cpu|cuda] [--batch 16] [--patch 256]
          [--scale 4] [--repeats 7] [--threads N] [--rrdb] [--rrdb-batch 2]

Each row is the full device step from uint8 HR patches (as the workers ship them) to float LR/HR:
dihedral augmentation, float conversion, the pipeline's target (Real-ESRGAN's USM) and LR, with
a fresh generator per batch (``step_generator(seed, step)``). HR patches are crops of real photos
(``../shared/data/train/BSDS500_test``; random pixels without it). Variants are run interleaved,
``--repeats`` rounds after one warm-up round, and the table shows medians: on a shared machine
only the ratios are meaningful. Dihedral: 0.1's ``torch.where`` over the batch, the per-sample
version (``medsr.data.degrade.random_dihedral``) and ``kornia.augmentation`` (flips + 90-degree
rotation on float, as Kornia needs); outputs are checked equal (Kornia's per sample, to one of
the 8 group elements). ``--rrdb``: time of one RRDBNet (f64b23g32, x4) training step
(forward, L1, backward, Adam) per batch of ``--batch`` patches, measured on ``--rrdb-batch``
patches and scaled linearly, next to the realistic pipelines' time per batch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from medsr.conf.compose import degradation_config
from medsr.data.degradations import build_degradation, step_generator
from medsr.data.degrade import dihedral, random_dihedral, to_unit_float

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "BSDS500_test"


def hr_patches(n: int, patch: int, device: torch.device) -> torch.Tensor:
    """``n`` uint8 ``(3, patch, patch)`` crops of real photos, channels_last as workers ship them."""
    from medsr.data.image_io import list_images, read_image

    gen = torch.Generator().manual_seed(0)
    crops = []
    files = list_images(SHARED) if SHARED.is_dir() else []
    for i in range(n):
        if not files:
            crops.append(torch.randint(0, 256, (3, patch, patch), dtype=torch.uint8, generator=gen))
            continue
        img = torch.as_tensor(read_image(files[i % len(files)]))
        img = img.permute(2, 0, 1) if img.ndim == 3 else img[None].expand(3, -1, -1)
        top = int(torch.randint(0, img.shape[1] - patch + 1, (1,), generator=gen))
        left = int(torch.randint(0, img.shape[2] - patch + 1, (1,), generator=gen))
        crops.append(img[:3, top : top + patch, left : left + patch])
    batch = torch.stack(crops).to(device)
    return batch.contiguous(memory_format=torch.channels_last)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(variants: dict[str, Callable[[int], object]], repeats: int, device) -> dict:
    """Median seconds per call of each variant, rounds interleaved, after one warm-up round."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats + 1):
        for name, fn in variants.items():
            sync(device)
            t0 = time.perf_counter()
            fn(r)
            sync(device)
            if r:
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def degradation_rows(hr8: torch.Tensor, scale: int, repeats: int, device) -> dict:
    def step(deg, grey: bool = False):
        def run(r: int):
            gen = step_generator(0, r)
            x = to_unit_float(random_dihedral(hr8, gen)).contiguous()
            if grey:
                x = x[:, :1]
            target = deg.target(x)
            return deg(target, scale, gen), target

        return run

    variants = {"bicubic (default)": step(build_degradation(degradation_config("bicubic")))}
    for name in ("realesrgan", "fundus"):
        variants[name] = step(build_degradation(degradation_config(name)))
    variants["realesrgan, batch-shared resize"] = step(
        build_degradation(degradation_config("realesrgan"), per_sample_resize=False)
    )
    variants["realesrgan, kornia JPEG"] = step(
        build_degradation(degradation_config("realesrgan"), jpeg_codec="kornia")
    )
    variants["scanner (1 channel)"] = step(
        build_degradation(degradation_config("scanner")), grey=True
    )
    return interleaved(variants, repeats, device)


def dihedral_rows(hr8: torch.Tensor, repeats: int, device) -> tuple[dict, str]:
    import kornia.augmentation as K

    aug = K.AugmentationSequential(
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        K.RandomRotation90((0, 1), resample="nearest"),
    )
    hr_float = hr8.float()
    codes = torch.randint(0, 8, (hr8.shape[0],), generator=torch.Generator().manual_seed(1))
    same = torch.equal(
        where_dihedral(hr8, codes), random_dihedral(hr8, torch.Generator().manual_seed(1))
    )
    out = aug(hr_float)
    kornia_ok = all(
        any(torch.equal(out[i], dihedral(hr_float[i], c)) for c in range(8))
        for i in range(hr8.shape[0])
    )

    def where(r: int):
        return where_dihedral(hr8, torch.randint(0, 8, (hr8.shape[0],), device=device))

    variants = {
        "torch.where (0.1, uint8)": where,
        "per-sample views (uint8)": lambda r: random_dihedral(hr8, step_generator(0, r)),
        "kornia.augmentation (float)": lambda r: aug(hr_float),
    }
    note = (
        f"per-sample == torch.where for the same codes: {same}; "
        f"Kornia's output is a dihedral image of each input: {kornia_ok}"
    )
    return interleaved(variants, repeats, device), note


def where_dihedral(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """0.1's ``random_dihedral``: three flipped copies of the batch selected with ``torch.where``."""
    c = codes.to(x.device).view(-1, 1, 1, 1)
    x = torch.where((c & 1).bool(), x.flip(-1), x)
    x = torch.where((c & 2).bool(), x.flip(-2), x)
    return torch.where((c & 4).bool(), x.transpose(-1, -2), x)


def rrdb_step_seconds(batch: int, lr_patch: int, per: int, repeats: int, device) -> float:
    from medsr.models import build_model

    net = build_model("rrdbnet", 4).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    lr = torch.rand(per, 3, lr_patch, lr_patch, device=device)
    hr = torch.rand(per, 3, 4 * lr_patch, 4 * lr_patch, device=device)

    def step(r: int):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(net(lr), hr).backward()
        opt.step()

    return interleaved({"rrdb": step}, repeats, device)["rrdb"] * batch / per


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=256, help="HR patch side")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--rrdb", action="store_true", help="also time an RRDBNet training step")
    ap.add_argument("--rrdb-batch", type=int, default=2, help="patches per timed RRDBNet step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    hr8 = hr_patches(args.batch, args.patch, device)
    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, HR {args.patch}, x{args.scale}"
    )

    rows = degradation_rows(hr8, args.scale, args.repeats, device)
    base = rows["bicubic (default)"]
    print(
        "\n| degradation | ms / batch | patches/s | time vs bicubic |\n| --- | ---: | ---: | ---: |"
    )
    for name, sec in rows.items():
        print(f"| {name} | {sec * 1e3:.0f} | {args.batch / sec:.0f} | {sec / base:.1f}x |")

    drows, note = dihedral_rows(hr8, args.repeats, device)
    where = drows["torch.where (0.1, uint8)"]
    print("\n| dihedral augmentation | ms / batch | speed vs torch.where |\n| --- | ---: | ---: |")
    for name, sec in drows.items():
        print(f"| {name} | {sec * 1e3:.2f} | {where / sec:.1f}x |")
    print(note)

    if args.rrdb:
        step = rrdb_step_seconds(
            args.batch, args.patch // 4, args.rrdb_batch, max(2, args.repeats // 3), device
        )
        print(
            f"\nRRDBNet f64b23g32 x4 training step, batch {args.batch} (from {args.rrdb_batch}-patch steps): {step:.2f} s"
        )
        print("| degradation | degradation / RRDBNet step |\n| --- | ---: |")
        for name, sec in rows.items():
            print(f"| {name} | {sec / step:.4f} |")


if __name__ == "__main__":
    main()
