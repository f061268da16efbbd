"""Deployment through the entry points: ``python -m medsr.export`` writes ONNX, safetensors and
pth from any weights file, and ``medsr.predict backend=onnxruntime`` gives the PyTorch backend's
images (8-bit and 16-bit fundus images, tiled) within one level."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxruntime) is not installed")

from helpers import compose_config  # noqa: E402
from medsr.data.image_io import read_image, write_image  # noqa: E402
from medsr.errors import ConfigError, WeightsError  # noqa: E402
from medsr.export import export  # noqa: E402
from medsr.models import build_model, load_pretrained, save_weights  # noqa: E402
from medsr.models.weights.onnx import OnnxNetwork  # noqa: E402
from medsr.predict import predict  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1_0"
CKPT = FIXTURES / "EDSR_x2_f8b1_ema.ckpt"  # a medsr training checkpoint with EMA


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "edsr.onnx"
    assert export(compose_config("export", f"ckpt={CKPT}", f"output={out}")) == out
    return out


def test_onnx_export_of_a_training_checkpoint_runs_the_evaluation_weights(onnx_file):
    net = load_pretrained(
        build_model("edsr", 2, num_feat=8, num_block=1, res_scale=1.0), CKPT
    ).eval()
    x = torch.rand(2, 3, 21, 26, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = net(x)
    assert (OnnxNetwork(onnx_file)(x) - want).abs().max().item() <= 1e-4


def test_pth_and_safetensors_exports_load_back(tmp_path, compose):
    pth = export(compose("export", f"ckpt={CKPT}", f"output={tmp_path / 'g.pth'}"))
    content = torch.load(pth, weights_only=True)
    assert {"params", "params_ema", "medsr_spec"} <= set(content)  # BasicSR style, raw and EMA
    safe = export(
        compose(
            "export", f"ckpt={pth}", "format=safetensors", f"output={tmp_path / 'g.safetensors'}"
        )
    )
    a = load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1, res_scale=1.0), CKPT)
    b = load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1, res_scale=1.0), safe)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, msg=key)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ([f"ckpt={CKPT}"], ConfigError, "output=<file>"),
        ([f"ckpt={CKPT}", "output=x.bin"], ConfigError, "format=onnx"),
        ([f"ckpt={CKPT}", "format=tflite", "output=x.tflite"], ConfigError, "format='tflite'"),
        ([f"ckpt={CKPT}", "format=onnx", "output=x.pth"], ConfigError, r"\*\.onnx"),
        ([f"ckpt={CKPT}", "output=x.onnx", "opset=16"], ConfigError, "opset=16"),
        (["model=bicubic", "scale=2", "ckpt=x", "output=x.onnx"], ConfigError, "interpolation"),
        ([f"ckpt={FIXTURES / 'missing.pth'}", "output=x.onnx"], WeightsError, "not found"),
    ],
)
def test_bad_export_settings(tmp_path, compose, overrides, error, match):
    overrides = [o.replace("output=", f"output={tmp_path}/") for o in overrides]
    with pytest.raises(error, match=match):
        export(compose("export", *overrides))


def test_export_cli_prints_the_file_and_reports_errors_in_one_line(tmp_path):
    run = [sys.executable, "-m", "medsr.export", f"ckpt={CKPT}"]
    ok = subprocess.run(
        [*run, f"output={tmp_path / 'e.safetensors'}"], capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip().splitlines()[-1] == str(tmp_path / "e.safetensors")
    bad = subprocess.run(
        [*run, "output=e.bin"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert bad.returncode == 2 and "format=onnx|safetensors|pth" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr


@pytest.fixture(scope="module")
def fundus(tmp_path_factory, samples_dir) -> dict[str, Path]:
    """A 8-bit RGB and a 16-bit grey fundus image (a real photograph, reduced to test size)."""
    folder = tmp_path_factory.mktemp("fundus")
    rgb = (
        Image.open(samples_dir / "val" / "retina.jpg")
        .convert("RGB")
        .resize((150, 150), Image.BICUBIC)
    )
    rgb.save(folder / "retina8.png")
    grey16 = (np.asarray(rgb, dtype=np.float64).mean(axis=2) * 257).round().astype(np.uint16)
    write_image(folder / "retina16.png", grey16)
    return {"rgb8": folder / "retina8.png", "grey16": folder / "retina16.png"}


@pytest.mark.parametrize("kind", ["rgb8", "grey16"])
def test_onnxruntime_backend_equals_the_pytorch_backend(tmp_path, compose, fundus, onnx_file, kind):
    src = fundus[kind]
    common = [f"input={src}", "progress=false", "tile=64", "tile_overlap=16", "device=cpu"]
    assert (
        predict(compose("predict", f"ckpt={CKPT}", f"output={tmp_path / 'torch'}", *common)) == []
    )
    assert (
        predict(
            compose(
                "predict",
                "backend=onnxruntime",
                f"ckpt={onnx_file}",
                f"output={tmp_path / 'ort'}",
                *common,
            )
        )
        == []
    )
    a, b = read_image(tmp_path / "torch" / src.name), read_image(tmp_path / "ort" / src.name)
    assert a.dtype == b.dtype == read_image(src).dtype and a.shape == b.shape == (
        300,
        300,
        a.shape[2],
    )
    assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= 1
    assert a.std() > 0  # a real image, not a constant


def test_backend_and_file_must_match(tmp_path, compose, fundus, onnx_file):
    weights = save_weights(
        build_model("edsr", 2, num_feat=4, num_block=1), tmp_path / "w.safetensors"
    )
    common = [f"input={fundus['rgb8']}", f"output={tmp_path / 'o'}", "progress=false"]
    with pytest.raises(ConfigError, match="add backend=onnxruntime"):
        predict(compose("predict", f"ckpt={onnx_file}", *common))
    with pytest.raises(ConfigError, match="medsr.export"):
        predict(compose("predict", "backend=onnxruntime", f"ckpt={weights}", *common))
    with pytest.raises(ConfigError, match="backend='tensorrt'"):
        predict(compose("predict", "backend=tensorrt", f"ckpt={weights}", *common))
    with pytest.raises(ConfigError, match="precision=bf16"):
        predict(
            compose(
                "predict", "backend=onnxruntime", f"ckpt={onnx_file}", "precision=bf16", *common
            )
        )
    with pytest.raises(ConfigError, match="x2 network but scale=4"):
        predict(compose("predict", "backend=onnxruntime", f"ckpt={onnx_file}", "scale=4", *common))
