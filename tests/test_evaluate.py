"""``python -m medsr.evaluate``: published bicubic numbers, results files, several models, FOV, figures."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import compose_config, run_module
from medsr.data.convert import to_float_tensor
from medsr.data.fov import load_mask
from medsr.data.image_io import read_image
from medsr.errors import ConfigError, DataError, WeightsError
from medsr.evaluate import evaluate
from medsr.evaluation.results import ROW_FIELDS, markdown_table
from medsr.metrics import psnr_y, ssim_y
from medsr.models import build_model, load_pretrained, save_weights
from medsr.ops import imresize, mod_crop, quantize, self_ensemble
from medsr.results import main as results_main
from published import N_IMAGES, PUBLISHED


def count_panels(figure: Image.Image, top: int, height: int) -> int:
    """Runs of columns that are not pure white in a horizontal band of the figure."""
    band = np.asarray(figure.convert("RGB"))[top : top + height]
    filled = (band != 255).any(axis=(0, 2))
    return int(np.count_nonzero(filled[1:] & ~filled[:-1]) + filled[0])


def eval_cfg(*overrides: str):
    return compose_config("evaluate", "progress=false", *overrides)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Tiny x4 EDSR and RCAN files carrying their network description."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    edsr = build_model("edsr", 4, num_feat=8, num_block=1)
    rcan = build_model("rcan", 4, num_feat=8, num_group=1, num_block=1, squeeze_factor=4)
    return {
        "edsr": save_weights(edsr, folder / "edsr_x4.safetensors"),
        "rcan": save_weights(rcan, folder / "rcan_x4.pth"),
    }


def test_bicubic_multirun_through_the_cli_writes_every_file_and_the_published_numbers(
    shared_data, tmp_path
):
    """The CLI end of the bicubic table (test_bicubic_baselines.py checks all nine numbers
    directly): a multirun over two scales, its files, per-image rows and printed protocol."""
    proc = run_module(
        "medsr.evaluate",
        "-m",
        "model=bicubic",
        f"data.root={shared_data / 'benchmark'}",
        "data.sets=[Set5,Set14]",
        "scale=2,4",
        f"hydra.sweep.dir={tmp_path}",
        "progress=false",
        run_dir=tmp_path / "unused",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("| Method | Scale | Set5 | Set14 |") == 2
    assert "Protocol: Y channel" in proc.stdout and "4 px border removed" in proc.stdout
    rows = [r for p in sorted(tmp_path.glob("*/results.json")) for r in json.loads(p.read_text())]
    assert len(rows) == 4
    for row in rows:
        assert set(ROW_FIELDS) <= set(row) and row["method"] == "Bicubic"
        assert row["n_images"] == N_IMAGES[row["dataset"]]
        want_psnr, want_ssim = PUBLISHED[(row["dataset"], row["scale"])]
        where = f"{row['dataset']} x{row['scale']}: {row['psnr']:.4f} / {row['ssim']:.5f}"
        assert abs(row["psnr"] - want_psnr) <= 0.025, where
        assert abs(row["ssim"] - want_ssim) <= 0.0012, where
    job = next(tmp_path.glob("*_x4"))
    assert {p.name for p in job.iterdir()} >= {
        "results.json",
        "results.csv",
        "results.md",
        "per_image.csv",
    }
    with open(job / "per_image.csv") as f:
        per_image = list(csv.DictReader(f))
    assert len(per_image) == 19 and {"baby", "bridge"} <= {r["image"] for r in per_image}
    with open(job / "results.csv") as f:
        assert [r["dataset"] for r in csv.DictReader(f)] == ["Set5", "Set14"]


@pytest.fixture(scope="module")
def fundus_root(shared_data, tmp_path_factory) -> Path:
    """Two DRIVE test images with their FOV masks in the benchmark layout (links, not copies)."""
    root = tmp_path_factory.mktemp("fundus")
    drive = shared_data / "fundus" / "DRIVE" / "test"
    for sub in ("HR", "mask"):
        (root / "DRIVE" / sub).mkdir(parents=True)
    for n in ("01", "02"):
        os.symlink(drive / "images" / f"{n}_test.png", root / "DRIVE" / "HR" / f"{n}_test.png")
        os.symlink(
            drive / "mask" / f"{n}_test_mask.png", root / "DRIVE" / "mask" / f"{n}_test_mask.png"
        )
    return root


@torch.no_grad()
def test_several_models_fov_metrics_and_figures_in_one_table(fundus_root, weights, tmp_path):
    cfg = eval_cfg(
        f"data.root={fundus_root}",
        "data.sets=[DRIVE]",
        "data.fov_sets=[DRIVE]",
        "scale=4",
        f"ckpt={weights['edsr']}",
        f"ckpts={{rcan: {weights['rcan']}}}",
        "baselines=[bicubic,nearest]",
        "figures=true",
        "data.num_workers=0",
    )
    rows = evaluate(cfg, tmp_path)
    assert [r["method"] for r in rows] == ["Bicubic", "Nearest", "EDSR", "RCAN"]
    assert all(r["n_images"] == 2 and "psnr_fov" in r and "ssim_fov" in r for r in rows)
    assert "inside the field-of-view mask" in rows[0]["protocol"]
    # Independent computation of EDSR's numbers on the first image, whole image and inside the FOV.
    drive = fundus_root / "DRIVE"
    hr = mod_crop(to_float_tensor(read_image(drive / "HR" / "01_test.png"))[None], 4)
    mask = torch.from_numpy(load_mask(drive / "mask" / "01_test_mask.png"))[
        None, None, : hr.shape[-2], : hr.shape[-1]
    ]
    net = build_model("edsr", 4, num_feat=8, num_block=1)
    load_pretrained(net, weights["edsr"])
    sr = quantize(net.eval()(quantize(imresize(hr, 1 / 4))))
    with open(tmp_path / "per_image.csv") as f:
        mine = next(
            r for r in csv.DictReader(f) if r["method"] == "EDSR" and r["image"] == "01_test"
        )
    assert float(mine["psnr"]) == pytest.approx(float(psnr_y(sr, hr, 4)[0]), abs=1e-6)
    assert float(mine["ssim"]) == pytest.approx(float(ssim_y(sr, hr, 4)[0]), abs=1e-6)
    assert float(mine["psnr_fov"]) == pytest.approx(
        float(psnr_y(sr, hr, 4, mask=mask)[0]), abs=1e-6
    )
    assert float(mine["psnr_fov"]) != pytest.approx(float(mine["psnr"]), abs=0.1)
    # Markdown: one line per method, whole-image and FOV columns.
    md = (tmp_path / "results.md").read_text()
    assert "| Method | Scale | DRIVE | DRIVE (FOV) |" in md and md.count("| x4 |") == 4
    # One figure (first image of the set): whole HR, GT, bicubic, nearest, EDSR, RCAN.
    figures = list((tmp_path / "figures").glob("*.png"))
    assert [p.name for p in figures] == ["DRIVE_01_test_x4.png"]
    assert count_panels(Image.open(figures[0]), 30, 120) == 6


@torch.no_grad()
def test_self_ensemble_crop_border_and_figure_without_bicubic_row(samples_dir, weights, tmp_path):
    """tta=x8 rows are marked '+' and equal the ensemble computed directly; crop_border is used;
    the figure shows bicubic even when it is not a row."""
    cfg = eval_cfg(
        f"data.root={samples_dir}",
        "data.sets=[val]",
        "scale=4",
        f"ckpt={weights['edsr']}",
        "tta=x8",
        "crop_border=0",
        "baselines=[]",
        "data.num_workers=0",
        "figures=true",
        "figure_images=[microaneurysms]",
    )
    rows = evaluate(cfg, tmp_path)
    assert [r["method"] for r in rows] == ["EDSR+"] and rows[0]["n_images"] == 3
    assert "x8 self-ensemble" in rows[0]["protocol"] and "0 px border" in rows[0]["protocol"]
    net = build_model("edsr", 4, num_feat=8, num_block=1)
    load_pretrained(net, weights["edsr"]).eval()
    hr = mod_crop(to_float_tensor(read_image(samples_dir / "val" / "microaneurysms.png"))[None], 4)
    lr = quantize(imresize(hr, 1 / 4))
    # grey image through the RGB network, averaged back to one channel
    sr = quantize(self_ensemble(lambda x: net(x.expand(-1, 3, -1, -1)).mean(1, keepdim=True), lr))
    with open(tmp_path / "per_image.csv") as f:
        mine = next(r for r in csv.DictReader(f) if r["image"] == "microaneurysms")
    assert float(mine["psnr"]) == pytest.approx(float(psnr_y(sr, hr, 0)[0]), abs=1e-6)
    figures = list((tmp_path / "figures").glob("*.png"))
    assert [p.name for p in figures] == ["val_microaneurysms_x4.png"]
    assert count_panels(Image.open(figures[0]), 30, 120) == 4  # whole HR, GT, bicubic, EDSR+


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["model=edsr_baseline"], ConfigError, "needs its trained weights"),
        (["scale=2", "ckpt={edsr}"], WeightsError, "x4 edsr weights but scale=2"),
        (["model=rcan", "ckpt={edsr}"], WeightsError, "holds edsr weights but model= builds rcan"),
        (["baselines=[lanczos]"], ConfigError, "baselines"),
        (["scale=5"], ConfigError, "scale=5"),
        (["data.root={missing}"], DataError, "does not exist"),
    ],
)
def test_clear_errors(samples_dir, weights, tmp_path, overrides, error, match):
    subs = {"edsr": weights["edsr"], "missing": tmp_path / "nowhere"}
    cfg = eval_cfg(
        f"data.root={samples_dir}", "data.sets=[val]", *(o.format(**subs) for o in overrides)
    )
    with pytest.raises(error, match=match):
        evaluate(cfg, tmp_path)


def test_markdown_table_layout_and_merge(tmp_path, capsys):
    rows = [
        {
            "method": "Bicubic",
            "scale": 4,
            "dataset": "Set5",
            "psnr": 28.4213,
            "ssim": 0.81044,
            "n_images": 5,
            "protocol": "p4",
        },
        {
            "method": "EDSR",
            "scale": 4,
            "dataset": "Set5",
            "psnr": 32.46,
            "ssim": 0.8968,
            "n_images": 5,
            "protocol": "p4",
        },
        {
            "method": "Bicubic",
            "scale": 2,
            "dataset": "Set5",
            "psnr": 33.66,
            "ssim": 0.9299,
            "n_images": 5,
            "protocol": "p2",
        },
        {
            "method": "EDSR",
            "scale": 4,
            "dataset": "DRIVE",
            "psnr": 45.1,
            "ssim": 0.97,
            "n_images": 20,
            "protocol": "p4",
            "psnr_fov": 40.0,
            "ssim_fov": 0.9,
        },
    ]
    assert markdown_table(rows).splitlines() == [
        "| Method | Scale | Set5 | DRIVE | DRIVE (FOV) |",
        "| --- | ---: | ---: | ---: | ---: |",
        "| Bicubic | x2 | 33.66 / 0.9299 | - | - |",
        "| Bicubic | x4 | 28.42 / 0.8104 | - | - |",
        "| EDSR | x4 | 32.46 / 0.8968 | 45.10 / 0.9700 | 40.00 / 0.9000 |",
    ]
    for i, part in enumerate((rows[:2], rows[2:])):
        (tmp_path / f"{i}.json").write_text(json.dumps(part))
    results_main(
        [str(tmp_path / "0.json"), str(tmp_path / "1.json"), "--out", str(tmp_path / "merged")]
    )
    assert "| Bicubic | x2 | 33.66 / 0.9299 | - | - |" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "merged" / "results.json").read_text())) == 4
