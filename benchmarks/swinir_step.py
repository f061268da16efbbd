"""SwinIR-light and SwinIR-M step time relative to RCAN, at the same LR patch.

Run:  python benchmarks/swinir_step.py [--device cpu|cuda] [--patch 32] [--batch 2] [--scale 2]
                                       [--repeats 5] [--warmup 1] [--precision 32|bf16]

Networks at their released / thesis sizes, built from the packaged model configs
(``model=swinir_light``, ``model=swinir``, ``model=rcan``). For each network the script times
a training step (forward, L1 loss, backward, Adam step) and an inference forward (``no_grad``) on
a random LR batch ``batch x 3 x patch x patch``. Networks are measured interleaved (repeat 1 of
every row, then repeat 2, ...) and each row reports the median, so load from other processes
spreads over all rows; the figures to quote are the ratios to RCAN. The ``math attention`` row is
SwinIR-M with SDPA forced to its math backend (the explicit softmax formula), to show what the
fused kernels bring. A patch that is a multiple of the window (8) is what training uses; any other
size is padded by the network.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch.nn.attention import SDPBackend, sdpa_kernel

from medsr.models import build_model

ROWS = [  # label, model config, force the math SDPA backend
    ("RCAN f64g10b20", "rcan", False),
    ("SwinIR-light", "swinir_light", False),
    ("SwinIR-M", "swinir", False),
    ("SwinIR-M, math attention", "swinir", True),
]


def network(config: str, scale: int) -> torch.nn.Module:
    """The network of the packaged model config ``config`` (``model=<config>``)."""
    with initialize_config_module("medsr.conf", version_base=None):
        cfg = compose("train", overrides=[f"model={config}"])
    return build_model(cfg.model.arch, scale, **OmegaConf.to_container(cfg.model.net, resolve=True))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--patch", type=int, default=32, help="LR patch side")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", choices=("32", "bf16"), default="32")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    lr = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
    hr = torch.rand(args.batch, 3, args.patch * args.scale, args.patch * args.scale, device=device)
    nets, optims = {}, {}
    for _label, config, _ in ROWS:
        if config not in nets:
            nets[config] = network(config, args.scale).to(device)
            optims[config] = torch.optim.Adam(nets[config].parameters(), 2e-4, betas=(0.9, 0.99))
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else contextlib.nullcontext()
    )

    def train_step(config: str) -> None:
        net, opt = nets[config], optims[config]
        net.train()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.l1_loss(net(lr), hr)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def forward(config: str) -> None:
        nets[config].eval()
        with autocast:
            nets[config](lr)

    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.warmup + args.repeats):
        for label, config, math_only in ROWS:
            backend = sdpa_kernel(SDPBackend.MATH) if math_only else contextlib.nullcontext()
            with backend:
                step = timed(lambda c=config: train_step(c), device)
                fwd = timed(lambda c=config: forward(c), device)
            if rep >= args.warmup:
                times.setdefault((label, "train"), []).append(step)
                times.setdefault((label, "fwd"), []).append(fwd)

    print(
        f"device {device} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), torch {torch.__version__}, precision {args.precision}, "
        f"LR {args.batch}x3x{args.patch}x{args.patch}, x{args.scale}, "
        f"median of {args.repeats} interleaved repeats"
    )
    base = {kind: statistics.median(times[(ROWS[0][0], kind)]) for kind in ("train", "fwd")}
    print(
        "| network | params (M) | train step (s) | vs RCAN | forward (s) | vs RCAN |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for label, config, _ in ROWS:
        n = sum(p.numel() for p in nets[config].parameters()) / 1e6
        step, fwd = (statistics.median(times[(label, k)]) for k in ("train", "fwd"))
        print(
            f"| {label} | {n:.2f} | {step:.3f} | {step / base['train']:.2f} | "
            f"{fwd:.3f} | {fwd / base['fwd']:.2f} |"
        )


if __name__ == "__main__":
    main()
