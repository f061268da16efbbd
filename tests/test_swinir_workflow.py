"""SwinIR through the entry points: the paper's presets, a tiny run trained with ``medsr.train``
and scored with ``medsr.evaluate`` from its checkpoint alone, tiled and self-ensembled prediction.

Paper settings (Liang et al., ICCVW 2021, section 4.1 and the official training options):
L1, Adam (0.9, 0.99) at 2e-4 halved at 250k/400k/450k/475k of 500k iterations, batch 32
(lightweight 64), LR patch 64 on DF2K, ``img_size`` = the LR patch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose_config, run_module
from medsr.conf.resolvers import register_resolvers
from medsr.data.convert import to_float_tensor
from medsr.data.image_io import read_image, write_image
from medsr.errors import ConfigError
from medsr.evaluation.inference import Upscaler, upscale_array
from medsr.metrics import psnr_y
from medsr.models import build_model, load_pretrained, read_spec, save_weights
from medsr.ops import imresize, quantize, self_ensemble
from medsr.predict import predict

SIZE = {"swinir": ("e180w8p64", 180, 32), "swinir_light": ("e60w8p64", 60, 64)}
TINY_NET = [
    "model=swinir",
    "model.net.embed_dim=12",
    "model.net.depths=[2]",
    "model.net.num_heads=[2]",
    "model.net.img_size=16",
]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("model", ["swinir", "swinir_light"])
def test_df2k_presets_carry_the_paper_settings(model, scale):
    cfg = compose_config("train", f"experiment={model}_df2k", f"scale={scale}")
    size, embed, batch = SIZE[model]
    assert cfg.run_name == f"SwinIR_x{scale}_{size}_DF2K_500k_B{batch}"
    assert (cfg.model.arch, cfg.model.net.embed_dim, cfg.model.net.window_size) == (
        "swinir",
        embed,
        8,
    )
    assert (cfg.data.patch_size, cfg.model.net.img_size) == (64 * scale, 64)  # LR patch 64
    assert cfg.data._target_ == "medsr.data.datamodules.DF2KDataModule"
    assert (cfg.data.batch_size, cfg.trainer.max_steps) == (batch, 500_000)
    opt, sched = cfg.model.lit.optimizer, cfg.model.lit.scheduler
    assert (opt._target_, opt.lr, list(opt.betas)) == ("torch.optim.Adam", 2e-4, [0.9, 0.99])
    assert list(sched.milestones) == [250_000, 400_000, 450_000, 475_000] and sched.gamma == 0.5
    assert cfg.model.lit.pixel_opt.type == "L1Loss" and cfg.model.ema_decay is None
    with torch.device("meta"):  # the preset's network is the released one (see test_swinir.py)
        net = build_model(cfg.model.arch, scale, **cfg.model.net)
    released = {
        ("swinir", 2): 11_752_487,
        ("swinir", 3): 11_937_127,
        ("swinir", 4): 11_900_199,
        ("swinir_light", 2): 910_152,
        ("swinir_light", 3): 918_267,
        ("swinir_light", 4): 929_628,
    }
    assert sum(p.numel() for p in net.parameters()) == released[(model, scale)]


@pytest.mark.parametrize("model", ["swinir", "swinir_light"])
def test_messidor_presets_fine_tune_their_df2k_run(model):
    df2k = compose_config("train", f"experiment={model}_df2k", "scale=2")
    cfg = compose_config("train", f"experiment={model}_messidor", "scale=2")
    size, _, batch = SIZE[model]
    assert cfg.run_name == f"SwinIR_x2_{size}_MESSIDOR2_200k_B{batch}"
    assert cfg.data._target_ == "medsr.data.datamodules.MessidorDataModule" and cfg.data.fov
    assert cfg.trainer.max_steps < df2k.trainer.max_steps / 2
    assert cfg.model.lit.optimizer.lr == df2k.model.lit.optimizer.lr / 2
    assert list(cfg.model.lit.scheduler.milestones) == [cfg.trainer.max_steps // 2]
    assert (cfg.data.patch_size, cfg.data.batch_size) == (df2k.data.patch_size, batch)
    assert cfg.model.net == df2k.model.net
    OmegaConf.register_new_resolver("run_weights", lambda name: name, replace=True)
    try:  # starts from the weights of the DF2K run of the same model, size, scale and batch
        assert cfg.model.init_from == df2k.run_name
    finally:
        OmegaConf.clear_resolver("run_weights")
        register_resolvers()


def test_tiny_swinir_trains_then_evaluates_from_its_checkpoint_alone(tmp_path, samples_dir):
    train_dir, eval_dir, data = tmp_path / "train", tmp_path / "eval", tmp_path / "data"
    crop = read_image(samples_dir / "val" / "chelsea.png")[40:110, 90:190]  # 70x100: fast scoring
    write_image(data / "crops" / "chelsea.png", crop)
    run = run_module(
        "medsr.train", *TINY_NET, "debug=fast", "data=samples", f"data.val_dirs=[{data / 'crops'}]",
        "scale=2", "comparison_figure=false", run_dir=train_dir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads((train_dir / "results.json").read_text())
    assert rows[0]["method"] == "SwinIR_e12w8p16" and rows[0]["n_images"] == 1
    ckpt = next((train_dir / "checkpoints").glob("*.ckpt"))
    spec = read_spec(ckpt)
    assert spec["arch"] == "swinir" and spec["net"]["depths"] == [2]
    # No model=: the checkpoint's stored spec rebuilds the network.
    run = run_module(
        "medsr.evaluate", f"ckpt={ckpt}", f"data.root={data}", "data.sets=[crops]", "scale=2",
        "baselines=[]", "progress=false", "data.num_workers=0", run_dir=eval_dir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    [row] = json.loads((eval_dir / "results.json").read_text())
    assert row["method"] == "SwinIR" and row["n_images"] == 1
    assert row["psnr"] == pytest.approx(rows[0]["psnr"], abs=1e-6)  # train's test = evaluate
    # The number equals one computed here, directly.
    net = load_pretrained(build_model("swinir", 2, **spec["net"]), ckpt).eval()
    hr = to_float_tensor(crop)[None]
    with torch.no_grad():
        sr = quantize(net(quantize(imresize(hr, 1 / 2))))
    assert row["psnr"] == pytest.approx(float(psnr_y(sr, hr, 2)[0]), abs=1e-4)


@pytest.fixture(scope="module")
def tiny_swinir(tmp_path_factory):
    torch.manual_seed(0)
    net = build_model(
        "swinir", 2, embed_dim=12, depths=[2], num_heads=[2], window_size=8, img_size=16,
        mlp_ratio=2, upsampler="pixelshuffle",
    ).eval()  # fmt: skip
    return net, save_weights(net, tmp_path_factory.mktemp("w") / "swinir_x2.safetensors")


@torch.no_grad()
def test_tiled_and_self_ensembled_prediction(tmp_path, samples_dir, tiny_swinir):
    net, weights = tiny_swinir
    photo = read_image(samples_dir / "val" / "chelsea.png")[50:81, 100:145]  # 31x45: not 8k
    x = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None]
    expected = np.floor(self_ensemble(net, x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5)
    ensembled = upscale_array(Upscaler(net, 2, tta=True), photo).astype(int)
    assert np.abs(ensembled - expected).max() <= 1  # x8 ensemble of the same network
    whole = upscale_array(Upscaler(net, 2), photo).astype(int)
    tiled = Upscaler(net, 2, tile=24, tile_overlap=6)
    assert tiled.radius == float("inf") and tiled.align == 8  # cross-faded, on the window grid
    grey = build_model(
        "swinir", 2, in_chans=1, embed_dim=12, depths=[2], num_heads=[2], upsampler="pixelshuffle"
    )
    assert Upscaler(grey, 2).in_channels == 1  # RGB images then go channel by channel
    out = upscale_array(tiled, photo).astype(int)
    assert out.shape == (62, 90, 3) and np.abs(out - whole).mean() < 3
    # The verb, from the weights file alone (no model=), with tiles and the ensemble.
    write_image(tmp_path / "in" / "crop.png", photo)
    cfg = compose_config(
        "predict", "progress=false", f"ckpt={weights}", f"input={tmp_path / 'in' / 'crop.png'}",
        f"output={tmp_path / 'out'}", "tile=24", "tile_overlap=6", "tta=x8",
    )  # fmt: skip
    assert predict(cfg) == []
    assert read_image(tmp_path / "out" / "crop.png").shape == (62, 90, 3)
    with pytest.raises(ConfigError, match="tile >= 21"):  # no room left to end on the grid
        Upscaler(net, 2, tile=16, tile_overlap=6)
