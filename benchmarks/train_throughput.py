"""Training throughput per model: steps/s and images/s at the thesis batch and patch sizes, for each
speed switch (precision, channels_last, torch.compile).

Run:  python benchmarks/train_throughput.py [--device cpu|cuda] [--models edsr rcan rrdbnet esrgan]
                                            [--steps 20] [--warmup 3] [--tiny|--full] [--no-compile]

Each row is the real training step of ``medsr.train``: the LightningModule built from the
packaged configs (``model=<name>``), a Lightning ``Trainer`` with the row's precision, the
device-side augmentation and MATLAB-bicubic degradation (``SRDataModule.on_after_batch_transfer``)
and the optimiser step(s); ESRGAN includes the discriminator and the VGG19 perceptual loss
(random VGG weights: speed does not depend on them). Batches of random uint8 HR patches come from
host memory, so the data pipeline is not measured (``benchmarks/data_throughput.py`` is).

Steps are timed after ``--warmup`` steps (the first step, which includes compilation, is
reported separately), with one device synchronisation at each end of the timed window.

Thesis sizes (``--full``, the default on GPU): EDSR f256b32, RCAN f64g10b20, RRDBNet f64b23g32
at batch 16, HR patch 192; ESRGAN (RRDBNet generator + VGG-style discriminator) at patch 128.
``--tiny`` (the default on CPU) shrinks networks to a few blocks and HR patches to 48 px (ESRGAN 32 px), batch 4,
so a CPU finishes in minutes; those rows show relative effects, not thesis speeds.
bf16 autocast on CPU is hundreds of times slower than float32: on CPU it runs one step as a smoke
test (its time is in "first step"), without a throughput figure.

Settings in training: ``trainer.precision=bf16-mixed|16-mixed|32-true`` (default: the best the
device supports), ``channels_last=true``, ``compile=true``.
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import time
import warnings

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_module
from torch.utils.data import DataLoader, IterableDataset

from medsr._cli import quiet_third_party
from medsr.conf.resolvers import register_resolvers
from medsr.data.degrade import train_batch
from medsr.training.factory import build_module, build_network, compile_networks

# name: (model config, thesis HR patch, tiny HR patch, tiny net overrides)
MODELS = {
    "edsr": ("edsr", 192, 48, {"num_feat": 32, "num_block": 4}),
    "rcan": (
        "rcan",
        192,
        48,
        {"num_feat": 32, "num_group": 2, "num_block": 2, "squeeze_factor": 8},
    ),
    "rrdbnet": ("rrdbnet", 192, 48, {"num_feat": 32, "num_block": 2, "num_grow_ch": 16}),
    # The discriminator's head needs a power-of-two patch.
    "esrgan": ("esrgan", 128, 32, {"num_feat": 32, "num_block": 2, "num_grow_ch": 16}),
    # SwinIR-M (classical SR) at the thesis batch and patch; measured once its config exists.
    "swinir": (
        "swinir",
        192,
        48,
        {"embed_dim": 12, "depths": [2], "num_heads": [2], "window_size": 4},
    ),
}
THESIS_BATCH, TINY_BATCH, SCALE = 16, 4, 4


def available(name: str) -> bool:
    """The model's architecture is registered and its packaged config exists."""
    from importlib import resources

    from medsr.models import list_models

    config = MODELS[name][0]
    conf = resources.files("medsr") / "conf" / "model" / f"{config}.yaml"
    arch = "rrdbnet" if config == "esrgan" else config
    return arch in list_models() and conf.is_file()


class RandomPatches(IterableDataset):
    """The same random uint8 HR batch over and over (the data pipeline is not what is measured)."""

    def __init__(self, batch: int, patch: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.hr = torch.randint(0, 256, (batch, 3, patch, patch), dtype=torch.uint8, generator=g)

    def __iter__(self):
        while True:
            yield {"hr": self.hr}


class Data(pl.LightningDataModule):
    def __init__(self, batch: int, patch: int) -> None:
        super().__init__()
        self.data = RandomPatches(batch, patch)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=None, pin_memory=torch.cuda.is_available())

    def on_after_batch_transfer(self, batch, dataloader_idx):
        return train_batch(batch, SCALE, augment=True)


class StepTimer(pl.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.marks: dict[str, float] = {}

    def _now(self, device: torch.device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.marks["start"] = self._now(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        step = trainer.global_step
        if step == 1:
            self.marks["first"] = self._now(pl_module.device)
        if step == self.warmup:
            self.marks["timed"] = self._now(pl_module.device)
        if step == trainer.max_steps:
            self.marks["end"] = self._now(pl_module.device)


def build(name: str, tiny: bool, channels_last: bool):
    config, patch, tiny_patch, small = MODELS[name]
    overrides = [f"model={config}", f"scale={SCALE}", f"channels_last={str(channels_last).lower()}"]
    if config == "esrgan":
        overrides += ["+model.lit.perceptual_opt.random_init_for_tests=true"]
    if tiny:
        overrides += [f"model.net.{k}={v}" for k, v in small.items()]
        if config == "esrgan":
            overrides += ["model.lit.network_d.num_feat=16"]
        patch = tiny_patch
    overrides += [f"data.patch_size={patch}"]
    register_resolvers()
    with initialize_config_module(config_module="medsr.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    net = build_network(cfg, init=False)
    size = f"{cfg.model.tag} {cfg.model.size_tag}"
    return build_module(cfg, net), patch, size


def compile_as_training(module: pl.LightningModule, backend: str = "inductor") -> None:
    """``compile=true`` of ``medsr.train``; another backend (``eager``) only checks the tracing."""
    if backend == "inductor":
        compile_networks(module)
        return
    for name in ("net", "net_d"):
        network = getattr(module, name, None)
        if isinstance(network, torch.nn.Module):
            network.compile(backend=backend)


def measure(name: str, device: str, precision: str, channels_last: bool, compiled: bool,
            steps: int, warmup: int, tiny: bool, backend: str = "inductor") -> dict:  # fmt: skip
    module, patch, size = build(name, tiny, channels_last)
    batch = TINY_BATCH if tiny else THESIS_BATCH
    smoke = device == "cpu" and precision != "32-true"
    total = 1 if smoke else warmup + steps
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        precision=precision,
        max_steps=total,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if compiled:
        torch._dynamo.reset()
        compile_as_training(module, backend)
    trainer.fit(module, Data(batch, patch))
    marks = timer.marks
    row = {
        "model": name,
        "size": size,
        "batch": f"{batch}x{patch}px",
        "precision": precision,
        "channels_last": channels_last,
        "compile": compiled,
        "first": marks["first"] - marks["start"],
        "steps_s": math.nan,
        "images_s": math.nan,
        "memory": math.nan,
    }
    if not smoke:
        rate = steps / (marks["end"] - marks["timed"])
        row.update(steps_s=rate, images_s=rate * batch)
    if device == "cuda":
        row["memory"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"]
    )
    parser.add_argument(
        "--models", nargs="+", default=[m for m in MODELS if available(m)], choices=list(MODELS)
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default: 50 on GPU, 5 on CPU)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--tiny", action="store_true", help="small networks and patches (default on CPU)"
    )
    size.add_argument("--full", action="store_true", help="thesis sizes (default on GPU)")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="skip the torch.compile rows (slow to compile on CPU)",
    )
    args = parser.parse_args()
    tiny = args.tiny or (args.device == "cpu" and not args.full)
    steps = args.steps or (50 if args.device == "cuda" else 5)
    quiet_third_party()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-run device banners
    warnings.filterwarnings(
        "ignore", message="the perceptual loss uses a randomly initialised VGG19"
    )
    warnings.filterwarnings("ignore", message="ESRGAN is training its generator from scratch")
    warnings.filterwarnings(
        "ignore", message="You defined a `validation_step` but have no `val_dataloader`"
    )
    pl.seed_everything(0, verbose=False)
    low = "bf16-mixed" if args.device == "cpu" or torch.cuda.is_bf16_supported() else "16-mixed"
    grid = [(p, cl, c) for p in ("32-true", low) for cl in (False, True) for c in (False, True)]
    if args.no_compile:
        grid = [g for g in grid if not g[2]]
    if args.device == "cpu":  # one bf16 smoke step per model, without the variants
        grid = [g for g in grid if g[0] == "32-true"] + [(low, False, False)]
    device_name = (
        torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "CPU"
    )
    print(
        f"# Training throughput, {device_name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{'tiny networks' if tiny else 'thesis sizes'}, x{SCALE}, {steps} timed steps after {args.warmup}\n"
    )
    print(
        "| model | network | batch | precision | channels_last | compile | first step (s) | steps/s | images/s | GPU memory (GiB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for name in args.models:
        if not available(name):
            print(
                f"| {name} | not available: no registered architecture or conf/model/{MODELS[name][0]}.yaml |"
            )
            continue
        for precision, channels_last, compiled in grid:
            try:
                r = measure(
                    name, args.device, precision, channels_last, compiled, steps, args.warmup, tiny
                )
            except Exception as err:  # e.g. no compiler for torch.compile: report and go on
                print(
                    f"| {name} | | | {precision} | {channels_last} | {compiled} | failed: {type(err).__name__}: {str(err)[:80]} | | | |"
                )
                continue
            fmt = lambda v, d: "-" if math.isnan(v) else f"{v:.{d}f}"  # noqa: E731
            print(
                f"| {r['model']} | {r['size']} | {r['batch']} | {r['precision']} | {'on' if r['channels_last'] else 'off'} | "
                f"{'on' if r['compile'] else 'off'} | {r['first']:.2f} | {fmt(r['steps_s'], 2)} | {fmt(r['images_s'], 1)} | "
                f"{fmt(r['memory'], 2)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
