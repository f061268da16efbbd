"""``consistency=``, ``consistency_maps=`` and ``uncertainty_maps=`` through medsr.evaluate and
medsr.predict, on real images (Set5, DRIVE fundus). References are computed here directly
(network forward, rounding, Y, PSNR in numpy) and compared with what the entry points wrote."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from helpers import compose_config, cpu_trainer
from medsr.data.convert import to_float_tensor
from medsr.data.image_io import read_image, write_image
from medsr.errors import ConfigError
from medsr.evaluate import evaluate
from medsr.evaluation.results import ResultRow, log_results
from medsr.metrics import psnr_y
from medsr.models import build_model, load_pretrained, save_weights
from medsr.ops import imresize, mod_crop, quantize
from medsr.ops.ensemble import self_ensemble_spread
from medsr.predict import predict
from medsr.training.factory import build_module, build_network

SCALE = 4
SET5 = ("baby", "bird", "butterfly", "head", "woman")
pytestmark = pytest.mark.filterwarnings("ignore:the perceptual loss uses a randomly initialised")


def rounded(x: torch.Tensor, bits: int = 8) -> np.ndarray:
    """Integer levels, halves up (reference rounding)."""
    return np.floor(np.clip(x.double().numpy(), 0, 1) * (2**bits - 1) + 0.5)


def reference_lr_psnr(sr: torch.Tensor, lr: np.ndarray, bits: int = 8) -> float:
    """The definition: PSNR on Y (grey: its channel) between round(imresize(SR, 1/s)) and the LR
    levels (C, H, W), peak = full scale, no crop. ``sr``: (C, sH, sW) in [0, 1] as the entry point
    holds it (float32 in evaluate, levels read back from the file in predict), downscaled in
    float64."""
    peak = 2**bits - 1
    down = rounded(imresize(sr.double()[None], 1 / SCALE)[0], bits) / peak * 255
    lr = lr / peak * 255
    if lr.shape[0] == 3:
        coef = np.array([65.481, 128.553, 24.966])[:, None, None] / 255
        down, lr = (coef * down).sum(0) + 16, (coef * lr).sum(0) + 16
    return 10 * math.log10(255**2 / np.mean((down - lr) ** 2))


def bicubic_lr(hr: torch.Tensor) -> torch.Tensor:
    """8-bit LR as the data pipeline makes it (float32 MATLAB bicubic, rounded halves up)."""
    return torch.from_numpy(rounded(imresize(hr.float(), 1 / SCALE)) / 255).float()


# -- medsr.evaluate ------------------------------------------------------------------------------


def test_evaluate_bicubic_set5_consistency_true_and_project(shared_data, tmp_path):
    """The issue's commands: lr_psnr = the definition; project >= 50 dB, no PSNR loss."""
    runs = {}
    for mode in ("true", "project"):
        cfg = compose_config(
            "evaluate", "model=bicubic", "data=benchmark", f"data.root={shared_data / 'benchmark'}",
            "data.sets=[Set5]", "scale=4", f"consistency={mode}", "progress=false",
        )  # fmt: skip
        (runs[mode],) = evaluate(cfg, tmp_path / mode)
    plain, projected, report = runs["true"], runs["project"], tmp_path / "true"
    expected = []
    for name in SET5:
        hr = mod_crop(to_float_tensor(read_image(shared_data / f"benchmark/Set5/HR/{name}.png")), 4)
        lr = bicubic_lr(hr[None])
        sr = quantize(imresize(lr, SCALE)[0])
        expected.append(reference_lr_psnr(sr, rounded(lr[0])))
    assert plain["lr_psnr"] == pytest.approx(sum(expected) / 5, abs=1e-6)
    assert (
        plain["lr_psnr"] == pytest.approx(38.89, abs=0.01)
        and "lr_psnr: PSNR on Y" in plain["protocol"]
    )
    assert projected["lr_psnr"] >= 50 and projected["psnr"] >= plain["psnr"] - 0.05
    assert "back-projected onto the LR input" in projected["protocol"]
    with open(report / "per_image.csv") as f:
        per_image = {r["image"]: float(r["lr_psnr"]) for r in csv.DictReader(f)}
    assert [per_image[n] for n in SET5] == pytest.approx(expected, abs=1e-6)
    with open(report / "results.csv") as f:
        assert "lr_psnr" in next(csv.reader(f))
    assert "| Set5 (LR-PSNR) |" in (report / "results.md").read_text()


def test_results_table_for_loggers_carries_lr_psnr_and_tta_std():
    class TableLogger:
        def log_table(self, key, columns, data):
            self.columns, self.data = columns, data

        def log_metrics(self, values):
            pass

        def save(self):
            pass

    row = ResultRow("EDSR+", 4, "DRIVE", 30.0, 0.9, 2, "p", lr_psnr=41.5, tta_std=0.8)
    logger = TableLogger()
    log_results([logger], [row])
    assert logger.columns[-2:] == ["lr_psnr", "tta_std"] and "psnr" in logger.columns
    record = dict(zip(logger.columns, logger.data[0], strict=True))
    assert record["lr_psnr"] == 41.5 and record["tta_std"] == 0.8 and record["psnr"] == 30.0


@pytest.fixture(scope="module")
def fundus_root(shared_data, tmp_path_factory) -> Path:
    """Two DRIVE test images in the benchmark layout (links, not copies)."""
    root = tmp_path_factory.mktemp("fundus")
    drive = shared_data / "fundus" / "DRIVE" / "test" / "images"
    (root / "DRIVE" / "HR").mkdir(parents=True)
    for n in ("01", "02"):
        os.symlink(drive / f"{n}_test.png", root / "DRIVE" / "HR" / f"{n}_test.png")
    return root


def fundus_patches(shared_data) -> TensorDataset:
    """HR patches (32 px) of real DRIVE training images with their 8-bit bicubic LR."""
    hr = []
    for n in ("21", "22"):
        image = to_float_tensor(
            read_image(shared_data / f"fundus/DRIVE/train/images/{n}_training.png")
        )
        hr += [image[:, 250 + 40 * k : 282 + 40 * k, 260:292] for k in range(2)]
    hr = torch.stack(hr)
    return TensorDataset(hr, bicubic_lr(hr))


def train_tiny(cfg, data: TensorDataset, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    module = build_module(cfg, build_network(cfg))
    loader = DataLoader([{"hr": h, "lr": lr} for h, lr in data], batch_size=4)
    trainer = cpu_trainer(steps)
    trainer.fit(module, loader)
    return module.net.eval()


@pytest.fixture(scope="module")
def tiny_pair(shared_data, tmp_path_factory) -> dict[str, Path]:
    """A tiny ESRGAN generator (GAN + perceptual + L1 steps) and a tiny EDSR (L1), trained a few
    steps on real fundus patches through medsr's own modules, saved with their specs."""
    folder, data = tmp_path_factory.mktemp("tiny"), fundus_patches(shared_data)
    gan = compose_config(
        "train", "data=samples", "scale=4", "model=esrgan", "model.net.num_feat=8",
        "model.net.num_block=1", "model.net.num_grow_ch=4", "model.lit.network_d.num_feat=8",
        "+model.lit.perceptual_opt.random_init_for_tests=true", "data.patch_size=32",
    )  # fmt: skip
    edsr = compose_config(
        "train", "data=samples", "scale=4", "model=edsr_baseline", "model.net.num_feat=8",
        "model.net.num_block=1",
    )  # fmt: skip
    return {
        "esrgan": save_weights(train_tiny(gan, data, 4), folder / "esrgan.safetensors"),
        "edsr": save_weights(train_tiny(edsr, data, 4), folder / "edsr.safetensors"),
    }


@torch.no_grad()
def test_esrgan_and_edsr_rows_have_their_own_lr_psnr(fundus_root, tiny_pair, tmp_path):
    cfg = compose_config(
        "evaluate", "progress=false", f"data.root={fundus_root}", "data.sets=[DRIVE]", "scale=4",
        f"ckpts={{esrgan: {tiny_pair['esrgan']}, edsr_baseline: {tiny_pair['edsr']}}}",
        "baselines=[]", "consistency=true", "data.num_workers=0",
    )  # fmt: skip
    rows = {r["method"]: r for r in evaluate(cfg, tmp_path)}
    assert set(rows) == {"ESRGAN", "EDSR"}
    for method, arch, key in (("ESRGAN", "rrdbnet", "esrgan"), ("EDSR", "edsr", "edsr")):
        net = load_pretrained(build_model(arch, 4, **_tiny_kwargs(arch)), tiny_pair[key]).eval()
        values = []
        for n in ("01", "02"):
            hr = mod_crop(to_float_tensor(read_image(fundus_root / f"DRIVE/HR/{n}_test.png")), 4)
            lr = bicubic_lr(hr[None])
            values.append(reference_lr_psnr(quantize(net(lr)[0]), rounded(lr[0])))
        assert rows[method]["lr_psnr"] == pytest.approx(sum(values) / 2, abs=1e-6), method
    assert abs(rows["ESRGAN"]["lr_psnr"] - rows["EDSR"]["lr_psnr"]) > 0.1


def _tiny_kwargs(arch: str) -> dict:
    return {"num_feat": 8, "num_block": 1, **({"num_grow_ch": 4} if arch == "rrdbnet" else {})}


def test_evaluate_figure_gains_a_residual_row(fundus_root, tmp_path):
    cfg = compose_config(
        "evaluate", "progress=false", f"data.root={fundus_root}", "data.sets=[DRIVE]", "scale=4",
        "model=bicubic", "baselines=[nearest]", "figures=true", "data.num_workers=0",
    )  # fmt: skip
    evaluate(cfg, tmp_path)
    (path,) = (tmp_path / "figures").glob("*.png")
    figure = np.asarray(Image.open(path).convert("RGB")).astype(int)
    # two rows of panels: whole HR | GT | Bicubic | Nearest, then scale bar | 3 residual maps
    colourful = (figure.max(-1) - figure.min(-1) > 60).sum(1)
    lower = figure[figure.shape[0] // 2 :]
    assert colourful[figure.shape[0] // 2 :].max() > 0 and lower.shape[1] == figure.shape[1]
    assert (lower.max(-1) - lower.min(-1) > 60).sum() > 3 * 100  # colour-mapped panels


# -- medsr.predict -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fundus_crop(shared_data, tmp_path_factory) -> Path:
    """A 96 x 120 crop of a real DRIVE image (edge of the field of view included)."""
    folder = tmp_path_factory.mktemp("inputs")
    image = read_image(shared_data / "fundus/DRIVE/test/images/01_test.png")[250:346, 0:120]
    write_image(folder / "fundus.png", image)
    return folder


@pytest.fixture(scope="module")
def tiny_edsr_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = build_model("edsr", 4, num_feat=8, num_block=1)
    return save_weights(net, tmp_path_factory.mktemp("w") / "edsr.safetensors")


def run_predict(*overrides: str) -> list:
    return predict(compose_config("predict", "progress=false", *overrides))


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["rgb8", "grey16"])
def test_predict_fundus_writes_consistency_csv_and_residual_map(fundus_crop, tmp_path, kind):
    source, bits = fundus_crop / "fundus.png", 8
    if kind == "grey16":  # the green channel (the vessels' contrast) with 16-bit detail
        image = read_image(source)[..., 1:2].astype(np.uint16) * 257
        image += np.random.default_rng(0).integers(0, 257, image.shape, dtype=np.uint16)
        source, bits = tmp_path / "grey16" / "fundus16.png", 16
        write_image(source, image)
    out = tmp_path / "out"
    assert not run_predict(
        "model=bicubic", "scale=4", f"input={source}", f"output={out}",
        "consistency=true", "consistency_maps=true",
    )  # fmt: skip
    (row,) = read_csv(out / "consistency.csv")
    assert row["file"] == source.name and row["consistency"] == "true" and row["bits"] == str(bits)
    lr = read_image(source).transpose(2, 0, 1).astype(float)
    sr = read_image(out / source.name).transpose(2, 0, 1).astype(float)
    assert lr.shape[0] == (1 if kind == "grey16" else 3) and sr.max() > 255 * (bits == 16)
    unit = torch.from_numpy(sr / (2**bits - 1))
    assert float(row["lr_psnr"]) == pytest.approx(reference_lr_psnr(unit, lr, bits), abs=1e-6)
    down = imresize(unit[None], 1 / SCALE)[0].numpy() * (2**bits - 1)
    residual = np.abs(down - lr).max(0)
    assert float(row["lr_residual_mean"]) == pytest.approx(residual.mean(), rel=1e-4)
    assert float(row["lr_residual_p99"]) == pytest.approx(np.percentile(residual, 99), rel=1e-4)
    heat = Image.open(out / f"{source.stem}_lr_residual.png")
    assert heat.height == 96 * 4 and heat.width > 120 * 4  # output size, then the scale bar


def test_predict_project_reaches_the_lr_and_tiles_match_whole(
    fundus_crop, tiny_edsr_file, tmp_path
):
    common = [f"ckpt={tiny_edsr_file}", f"input={fundus_crop}", "consistency=project"]
    assert not run_predict(*common, f"output={tmp_path / 'whole'}", "tile=0")
    assert not run_predict(*common, f"output={tmp_path / 'tiled'}", "tile=40", "tile_overlap=16")
    whole = read_image(tmp_path / "whole/fundus.png").astype(int)
    tiled = read_image(tmp_path / "tiled/fundus.png").astype(int)
    assert np.abs(whole - tiled).max() <= 1
    for run in ("whole", "tiled"):
        (row,) = read_csv(tmp_path / run / "consistency.csv")
        assert row["consistency"] == "project" and float(row["lr_psnr"]) >= 50
    plain = tmp_path / "plain"
    assert not run_predict(
        f"ckpt={tiny_edsr_file}", f"input={fundus_crop}", f"output={plain}", "consistency=true"
    )
    assert (
        float(read_csv(plain / "consistency.csv")[0]["lr_psnr"]) < 40
    )  # the untrained net departs


@torch.no_grad()
def test_predict_tta_uncertainty_map_and_tta_std(fundus_crop, tiny_edsr_file, tmp_path):
    out = tmp_path / "out"
    assert not run_predict(
        f"ckpt={tiny_edsr_file}", f"input={fundus_crop}", f"output={out}", "tta=x8",
        "uncertainty_maps=true", "consistency=true", "tile=0", "precision=32",
    )  # fmt: skip
    net = load_pretrained(build_model("edsr", 4, num_feat=8, num_block=1), tiny_edsr_file).eval()
    lr = to_float_tensor(read_image(fundus_crop / "fundus.png"))[None]
    _, std = self_ensemble_spread(net, lr)
    expected = float(std.double().square().mean(1).sqrt().mean() * 255)
    (row,) = read_csv(out / "consistency.csv")
    assert float(row["tta_std"]) == pytest.approx(expected, rel=1e-4) and expected > 0.5
    assert Image.open(out / "fundus_uncertainty.png").height == 96 * 4
    over = tmp_path / "overlay"
    assert not run_predict(
        f"ckpt={tiny_edsr_file}", f"input={fundus_crop}", f"output={over}", "tta=x8",
        "uncertainty_maps=overlay", "tile=48", "tile_overlap=16",
    )  # fmt: skip
    assert Image.open(over / "fundus_uncertainty.png").height == 96 * 4
    assert not (over / "consistency.csv").exists()  # consistency=false: maps only


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["uncertainty_maps=true"], "needs tta=x8"),
        (["consistency=maybe"], "consistency='maybe' is not valid"),
        (["consistency=project", "projection.max_iterations=0"], "max_iterations"),
    ],
)
def test_bad_settings_are_config_errors(fundus_crop, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        run_predict(
            "model=bicubic", "scale=4", f"input={fundus_crop}", f"output={tmp_path}", *overrides
        )


def test_evaluate_rows_carry_tta_std_for_self_ensembles(fundus_root, tiny_edsr_file, tmp_path):
    cfg = compose_config(
        "evaluate", "progress=false", f"data.root={fundus_root}", "data.sets=[DRIVE]", "scale=4",
        f"ckpt={tiny_edsr_file}", "tta=x8", "data.num_workers=0",
    )  # fmt: skip
    rows = {r["method"]: r for r in evaluate(cfg, tmp_path)}
    assert rows["EDSR+"]["tta_std"] > 0.5 and "tta_std" not in rows["Bicubic"]
    assert "tta_std: per-pixel standard deviation" in rows["EDSR+"]["protocol"]
    assert "| DRIVE (TTA std) |" in (tmp_path / "results.md").read_text()
    # psnr of the ensemble mean is unchanged by measuring its spread
    net = load_pretrained(build_model("edsr", 4, num_feat=8, num_block=1), tiny_edsr_file).eval()
    hr = mod_crop(to_float_tensor(read_image(fundus_root / "DRIVE/HR/01_test.png")), 4)[None]
    with torch.no_grad():
        mean, _ = self_ensemble_spread(net, bicubic_lr(hr))
    sr = torch.from_numpy(rounded(mean) / 255).float()
    with open(tmp_path / "per_image.csv") as f:
        mine = next(
            r for r in csv.DictReader(f) if r["method"] == "EDSR+" and r["image"] == "01_test"
        )
    assert float(mine["psnr"]) == pytest.approx(float(psnr_y(sr, hr, 4)[0]), abs=1e-6)
