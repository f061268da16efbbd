"""Realistic degradations through the entry points: Real-ESRGAN presets, a training run, a seeded
evaluation, the device step's per-batch seeding, and the U-Net discriminator in the ESRGAN module."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from helpers import FAST_TRAIN, compose_config, cpu_trainer, degradation_preset, run_module
from medsr.conf.compose import degradation_config
from medsr.conf.resolvers import register_resolvers
from medsr.data.datamodules import FolderDataModule
from medsr.data.degradations import build_degradation, image_generator
from medsr.data.sources import IMRESIZE_PROTOCOL
from medsr.evaluate import evaluate
from medsr.metrics import psnr_y
from medsr.models import UNetDiscriminatorSN, build_model
from medsr.ops import quantize
from medsr.training.factory import build_module, build_network
from medsr.training.losses import RelativisticGANLoss

TINY_RRDB = ["model.net.num_feat=8", "model.net.num_block=1", "model.net.num_grow_ch=4"]
LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


@pytest.fixture(scope="module")
def crops_root(tmp_path_factory, samples_dir) -> Path:
    """Small real crops of the shipped samples: train/ (4 of 96 px) and val/ (3 of 64 px)."""
    root = tmp_path_factory.mktemp("crops")
    sources = sorted((samples_dir / "train").iterdir())[:4] + sorted(
        (samples_dir / "val").iterdir()
    )
    for i, path in enumerate(sources):
        split, size = ("train", 96) if i < 4 else ("val", 64)
        (root / split).mkdir(exist_ok=True)
        img = Image.open(path).convert("RGB")
        left, top = img.width // 3, img.height // 3
        img.crop((left, top, left + size, top + size)).save(root / split / f"{path.stem}.png")
    return root


def _with_run_weights_names(fn):
    """Evaluate ``fn`` with ``${run_weights:...}`` giving the run name it looks for."""
    OmegaConf.register_new_resolver("run_weights", lambda name: name, replace=True)
    try:
        return fn()
    finally:
        OmegaConf.clear_resolver("run_weights")
        register_resolvers()


# -- presets ------------------------------------------------------------------------------------
def test_realesrgan_degradation_config_is_the_x4plus_options():
    """The packaged values against options/train_realesrgan_x4plus.yml (transcribed here)."""
    cfg = degradation_preset("realesrgan")
    first, second, final = cfg["first"], cfg["second"], cfg["final"]
    kernel = {
        "kernel_size": [7, 21],
        "kernel_types": ["iso", "aniso", "generalized_iso", "generalized_aniso"]
        + ["plateau_iso", "plateau_aniso"],
        "kernel_probs": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
        "betag": [0.5, 4.0],
        "betap": [1.0, 2.0],
        "sinc_prob": 0.1,
    }
    for stage, sigma in ((first, [0.2, 3.0]), (second, [0.2, 1.5])):
        assert {k: stage["blur"][k] for k in kernel} == kernel and stage["blur"]["sigma"] == sigma
        assert stage["blur"]["sinc_cutoff_small"] == pytest.approx([np.pi / 3, np.pi])
        assert stage["blur"]["sinc_cutoff_large"] == pytest.approx([np.pi / 5, np.pi])
        assert stage["jpeg_quality"] == [30.0, 95.0] and stage["noise"]["gray_prob"] == 0.4
        assert stage["noise"]["gaussian_prob"] == 0.5
    assert (first["resize"]["probs"], first["resize"]["range"]) == ([0.2, 0.7, 0.1], [0.15, 1.5])
    assert (first["noise"]["sigma"], first["noise"]["poisson_scale"]) == ([1.0, 30.0], [0.05, 3.0])
    assert (second["blur_prob"], second["resize"]["probs"]) == (0.8, [0.3, 0.4, 0.3])
    assert second["resize"]["range"] == [0.3, 1.2]
    assert (second["noise"]["sigma"], second["noise"]["poisson_scale"]) == (
        [1.0, 25.0],
        [0.05, 2.5],
    )
    assert (final["sinc_prob"], final["jpeg_first_prob"], final["jpeg_quality"]) == (
        0.8,
        0.5,
        [30.0, 95.0],
    )
    assert final["sinc_cutoff"] == pytest.approx([np.pi / 3, np.pi])
    assert cfg["sharpen_target"] == {"enabled": True, "weight": 0.5, "radius": 50, "threshold": 10}


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize(
    ("preset", "tag", "steps", "lr"),
    [
        ("realesrnet_df2k", "RealESRNet", 1_000_000, 2e-4),
        ("realesrgan_df2k", "RealESRGAN", 400_000, 1e-4),
    ],
)
def test_real_esrgan_presets(preset, tag, steps, lr, scale):
    cfg = compose_config("train", f"experiment={preset}", f"scale={scale}")
    assert cfg.run_name == f"{tag}_x{scale}_f64b23g32_DF2K_realesrgan_{steps // 1000}k_B12"
    assert cfg.degradation.name == "realesrgan" and cfg.data._target_.endswith("DF2KDataModule")
    assert (cfg.trainer.max_steps, cfg.data.patch_size, cfg.data.batch_size) == (steps, 256, 12)
    lit = cfg.model.lit
    assert (lit.optimizer.lr, list(lit.optimizer.betas)) == (lr, [0.9, 0.99])
    assert list(lit.scheduler.milestones) == [steps] and cfg.model.ema_decay == 0.999
    assert cfg.checkpoint.select == "last"  # Real-ESRGAN's final weights, not a chosen step
    assert (cfg.model.arch, dict(cfg.model.net)) == (
        "rrdbnet",
        {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "num_in_ch": 3, "num_out_ch": 3},
    )
    if tag == "RealESRGAN":
        assert lit.network_d.type == "UNetDiscriminatorSN" and lit.network_d.skip_connection
        weights = (lit.pixel_opt.loss_weight, lit.perceptual_opt.perceptual_weight)
        assert (*weights, lit.gan_opt.loss_weight) == (1.0, 1.0, 0.1)
        assert not lit.gan_opt.relativistic and dict(lit.perceptual_opt.layer_weights) == LAYERS
        init = _with_run_weights_names(lambda: cfg.model.init_from)
        assert init == f"RealESRNet_x{scale}_f64b23g32_DF2K_realesrgan_1000k_B12"


@pytest.mark.parametrize("model", ["realesrnet", "realesrgan"])
def test_messidor_fine_tunes_use_the_fundus_degradation(model):
    df2k = compose_config("train", f"experiment={model}_df2k", "scale=4")
    cfg = compose_config("train", f"experiment={model}_messidor", "scale=4")
    assert cfg.degradation.name == "fundus" and cfg.data._target_.endswith("MessidorDataModule")
    assert cfg.data.fov and cfg.trainer.max_steps < df2k.trainer.max_steps / 2
    assert cfg.model.lit.optimizer.lr == df2k.model.lit.optimizer.lr / 2
    assert cfg.run_name == df2k.run_name.replace("DF2K_realesrgan", "MESSIDOR2_fundus").replace(
        f"_{df2k.trainer.max_steps // 1000}k_", f"_{cfg.trainer.max_steps // 1000}k_"
    )
    assert _with_run_weights_names(lambda: cfg.model.init_from) == df2k.run_name


# -- training ----------------------------------------------------------------------------------
def test_realesrgan_trains_a_tiny_rrdbnet_through_medsr_train(crops_root, tmp_path):
    run = run_module(
        "medsr.train",
        "model=rrdbnet",
        *TINY_RRDB,
        *FAST_TRAIN,
        "data=folder",
        f"data.train_dirs=[{crops_root / 'train'}]",
        f"data.val_dirs=[{crops_root / 'val'}]",
        "data.patches_per_image=2",
        "scale=4",
        "degradation=realesrgan",
        "comparison_figure=false",
        run_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in rows] == ["RRDBNet_f8b1g4", "Bicubic"]
    assert all("medsr realesrgan degradation, seed 0" in r["protocol"] for r in rows)
    assert (tmp_path / "RRDBNet_x4_f8b1g4_folder_realesrgan_4_B2.pth").is_file()


def _stub_trainer(step: int, rank: int = 0):
    progress = SimpleNamespace(total=SimpleNamespace(ready=step))
    loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
    return SimpleNamespace(training=True, global_rank=rank, fit_loop=loop)


def test_training_batches_are_seeded_by_run_seed_rank_and_batch(crops_root):
    hr8 = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)

    def device_step(step: int, rank: int = 0, seed: int = 0) -> dict:
        dm = FolderDataModule(
            train_dirs=[str(crops_root / "train")],
            scale=4,
            degradation=build_degradation(degradation_config("realesrgan")),
            train_seed=seed,
        )
        dm.trainer = _stub_trainer(step, rank)
        return dm.on_after_batch_transfer({"hr": hr8}, 0)

    a, again = device_step(7), device_step(7)  # a resumed run reaches batch 7 again
    assert torch.equal(a["lr"], again["lr"]) and torch.equal(a["hr"], again["hr"])
    for other in (device_step(8), device_step(7, rank=1), device_step(7, seed=1)):
        assert not torch.equal(a["lr"], other["lr"])


# -- evaluation --------------------------------------------------------------------------------
def _eval(crops_root: Path, out: Path, *overrides: str) -> list[dict]:
    cfg = compose_config(
        "evaluate",
        "progress=false",
        f"data.root={crops_root}",
        "data.sets=[val]",
        "scale=4",
        "baselines=[bicubic,nearest]",
        "data.num_workers=0",
        *overrides,
    )
    return evaluate(cfg, out)


def test_seeded_realistic_evaluation_is_bit_identical(crops_root, tmp_path):
    args = ("degradation=realesrgan", "degradation.seed=0")
    first = _eval(crops_root, tmp_path / "a", *args)
    torch.manual_seed(1234)  # the global RNG plays no part
    second = _eval(crops_root, tmp_path / "b", *args)
    assert first == second
    per_image = (tmp_path / "a" / "per_image.csv").read_bytes()
    assert per_image == (tmp_path / "b" / "per_image.csv").read_bytes()
    assert all("medsr realesrgan degradation, seed 0," in r["protocol"] for r in first)
    other_seed = _eval(crops_root, tmp_path / "c", "degradation=realesrgan", "degradation.seed=1")
    assert other_seed[0]["psnr"] != first[0]["psnr"]
    bicubic = _eval(crops_root, tmp_path / "d")
    assert all(IMRESIZE_PROTOCOL in r["protocol"] for r in bicubic)
    assert not any("degradation" in r["protocol"] for r in bicubic)
    # The bicubic row scored the documented LR: the image's own seeded degradation of its HR.
    deg = build_degradation(degradation_config("realesrgan"), seed=0)
    scores = []
    for path in sorted((crops_root / "val").iterdir()):
        hr = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255)
        hr = hr.permute(2, 0, 1)[None]
        lr = deg(hr, 4, image_generator(0, f"val/{path.stem}"))
        sr = quantize(build_model("bicubic", 4)(lr))
        scores.append(float(psnr_y(sr, hr, 4)[0]))
    assert first[0]["method"] == "Bicubic"
    assert first[0]["psnr"] == pytest.approx(sum(scores) / len(scores), abs=1e-9)


# -- Real-ESRGAN's GAN: U-Net discriminator, standard GAN loss ----------------------------------
def test_standard_gan_loss_is_bce_against_own_labels():
    loss = RelativisticGANLoss(loss_weight=0.1, relativistic=False)
    fake, real = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(
        loss.generator_loss(None, fake), 0.1 * bce(fake, torch.ones_like(fake))
    )
    torch.testing.assert_close(loss.relative(real, fake, True), bce(real, torch.ones_like(real)))
    torch.testing.assert_close(loss.relative(fake, real, False), bce(fake, torch.zeros_like(fake)))
    assert loss.d_weight == 1.0 and RelativisticGANLoss().d_weight == 0.5


@pytest.mark.filterwarnings("ignore:the perceptual loss uses a randomly initialised VGG19")
def test_esrgan_module_trains_with_the_unet_discriminator():
    cfg = compose_config(
        "train",
        "experiment=realesrgan_df2k",
        "scale=4",
        "model.init_from=null",
        *TINY_RRDB,
        "model.lit.network_d.num_feat=8",
        "+model.lit.perceptual_opt.random_init_for_tests=true",
        "data.patch_size=32",
    )
    torch.manual_seed(0)
    module = build_module(cfg, build_network(cfg))
    assert isinstance(module.net_d, UNetDiscriminatorSN) and not module.gan_loss.relativistic
    d_before = {k: v.clone() for k, v in module.net_d.state_dict().items()}
    hr = torch.rand(4, 3, 32, 32)
    data = [{"hr": hr[i], "lr": quantize(F.avg_pool2d(hr[i : i + 1], 4))[0]} for i in range(4)]
    logged = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    trainer = cpu_trainer(3, callbacks=[Record()])
    trainer.fit(module, DataLoader(data, batch_size=4))
    assert trainer.global_step == 3 and len(logged) == 3
    assert all(np.isfinite(v) for row in logged for v in row.values())
    changed = [k for k, v in module.net_d.state_dict().items() if not torch.equal(v, d_before[k])]
    assert "conv1.weight_orig" in changed and "conv9.weight" in changed
