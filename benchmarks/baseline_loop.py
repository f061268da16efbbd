"""The side-by-side baseline of the GPU check: a plain PyTorch training loop as BasicSR runs it.

Same networks, losses, optimiser, batch and precision as medsr's training (built from the same
configs by ``train_throughput.build``), but the data are prepared the BasicSR way: DataLoader
workers (6, BasicSR's ``num_worker_per_gpu``) augment each HR patch with numpy flips and a
transpose and degrade it with a per-image, per-row MATLAB-bicubic loop on the CPU
(``imresize.per_image_loop``, the structure of ``basicsr/utils/matlab_functions.imresize``),
then the float LR/HR pair is copied to the device. medsr instead ships uint8 HR and augments and
degrades whole batches on the device. HR patches come from host memory in both (no decoding).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from imresize import per_image_loop
from torch.utils.data import DataLoader, Dataset
from train_throughput import MODELS, SCALE, THESIS_BATCH, TINY_BATCH, build

BASICSR_WORKERS = 6
AMP = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class PerImageBicubic(Dataset):
    """uint8 HR patches from memory -> BasicSR-style (LR, HR) float pairs, one image at a time."""

    def __init__(self, patch: int, pool: int = 64, length: int = 10**6) -> None:
        rng = np.random.default_rng(0)
        self.hr = rng.integers(0, 256, (pool, patch, patch, 3), dtype=np.uint8)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.hr[index % len(self.hr)].astype(np.float32) / 255.0
        rng = np.random.default_rng(index)
        if rng.random() < 0.5:  # BasicSR `augment`: hflip, vflip, rot90 (as a transpose)
            img = img[:, ::-1]
        if rng.random() < 0.5:
            img = img[::-1]
        if rng.random() < 0.5:
            img = img.transpose(1, 0, 2)
        hr = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        lr = per_image_loop(hr[None], 1 / SCALE)[0]
        return torch.round(lr.clamp(0, 1) * 255) / 255, hr  # the LR PNG BasicSR would read


def _sr_step(module, opt, scaler, amp, lr, hr) -> None:
    with amp():
        sr = module.net(lr)
    loss = module.pixel_weight * module.pixel_loss(sr.float(), hr)
    opt[0].zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt[0])
    scaler.update()


def _esrgan_step(module, opt, scaler, amp, lr, hr) -> None:
    """BasicSR's ESRGANModel.optimize_parameters: a G step, then D on real and on fake."""
    opt_g, opt_d = opt
    d_params = list(module.net_d.parameters())
    for p in d_params:
        p.requires_grad_(False)
    with amp():
        sr = module.net(lr)
        l_pix = module.pixel_weight * module.pixel_loss(sr.float(), hr)
        l_percep = module.perceptual_loss(sr, hr)
        real_g = module.net_d(hr).detach().float()
        fake_g = module.net_d(sr).float()
        l_g = l_pix + l_percep + module.gan_loss.generator_loss(real_g, fake_g)
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(l_g).backward()
    scaler.step(opt_g)
    for p in d_params:
        p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with amp():
        real_d = module.net_d(hr).float()
        l_real = 0.5 * module.gan_loss.relative(real_d, fake_g.detach(), more_real=True)
    scaler.scale(l_real).backward()
    with amp():
        fake_d = module.net_d(sr.detach()).float()
        l_fake = 0.5 * module.gan_loss.relative(fake_d, real_d.detach(), more_real=False)
    scaler.scale(l_fake).backward()
    scaler.step(opt_d)
    scaler.update()


def measure_baseline(name: str, device: str, precision: str, steps: int, warmup: int, tiny: bool,
                     workers: int = BASICSR_WORKERS) -> dict:  # fmt: skip
    """Iterations per second (after ``warmup``) and peak device memory of the plain loop."""
    module, patch, size = build(name, tiny, channels_last=False)
    dev = torch.device(device)
    module.to(dev).train()
    batch = TINY_BATCH if tiny else THESIS_BATCH
    esrgan = MODELS[name][0] == "esrgan"
    opt = [module.optimizer_factory(module.net.parameters())]
    if esrgan:
        opt.append(module.optimizer_factory(module.net_d.parameters(), **module.optimizer_d_kwargs))
    dtype = AMP[precision]
    amp = (lambda: torch.autocast(dev.type, dtype=dtype)) if dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "16-mixed" and dev.type == "cuda")
    loader = DataLoader(
        PerImageBicubic(patch), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
        pin_memory=dev.type == "cuda", persistent_workers=workers > 0, prefetch_factor=2 if workers else None,
    )  # fmt: skip
    step = _esrgan_step if esrgan else _sr_step
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    batches = iter(loader)
    marks = [time.perf_counter()]
    for i in range(warmup + steps):
        lr, hr = next(batches)
        step(module, opt, scaler, amp, lr.to(dev, non_blocking=True), hr.to(dev, non_blocking=True))
        if i == 0 or i == warmup - 1 or i == warmup + steps - 1:
            sync()
            marks.append(time.perf_counter())
    del batches, loader
    return {
        "model": name, "size": size, "batch": f"{batch}x{patch}px", "precision": precision,
        "first": marks[1] - marks[0], "steps_s": steps / (marks[-1] - marks[-2]),
        "memory": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan"),
        "workers": workers,
    }  # fmt: skip
