"""ONNX export: every learned architecture in the registry, run by onnxruntime on a real image
crop of a size the export never saw, equals PyTorch within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxruntime) is not installed")

from medsr.errors import ConfigError, WeightsError  # noqa: E402
from medsr.models import build_model, list_models  # noqa: E402
from medsr.models.interpolation import INTERPOLATION_MODES  # noqa: E402
from medsr.models.weights.onnx import TRACE_SIZE, OnnxNetwork, export_onnx  # noqa: E402
from medsr.ops.tiling import receptive_radius  # noqa: E402

# Tiny networks per architecture (fast); a learned architecture missing here fails the test
# below, so a newly registered one cannot go untested.
TINY = {
    "edsr": [(4, {"num_feat": 8, "num_block": 1})],
    "rcan": [(4, {"num_feat": 8, "num_group": 1, "num_block": 1, "squeeze_factor": 4})],
    "rrdbnet": [
        (2, {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}),  # pixel-unshuffle head
        (4, {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}),
    ],
    "swinir": [
        (2, {"img_size": 16, "embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4,
             "mlp_ratio": 1.0, "upsampler": "pixelshuffle"}),
    ],
}  # fmt: skip
LEARNED = [name for name in list_models() if name not in INTERPOLATION_MODES]
CASES = [(name, scale, kw) for name in LEARNED for scale, kw in TINY.get(name, [])]


def test_every_learned_architecture_has_a_tiny_export_case():
    assert {"edsr", "rcan", "rrdbnet"} <= set(LEARNED)
    missing = [name for name in LEARNED if name not in TINY]
    assert not missing, f"add tiny ONNX export cases for {missing} to TINY"


@pytest.fixture(scope="module")
def crops(samples_dir) -> torch.Tensor:
    """Two real 27x43 crops (odd, non-square, unlike the trace size): a batch of 2."""
    image = np.asarray(Image.open(samples_dir / "val" / "chelsea.png").convert("RGB"))
    assert (27, 43) != TRACE_SIZE
    picks = [image[100:127, 200:243], image[40:67, 10:53]]
    return torch.from_numpy(np.stack(picks)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize(("name", "scale", "kwargs"), CASES, ids=[f"{n}_x{s}" for n, s, _ in CASES])
def test_onnxruntime_equals_pytorch_on_an_unseen_size(tmp_path, crops, name, scale, kwargs):
    torch.manual_seed(0)
    net = build_model(name, scale, **kwargs).eval()
    path = export_onnx(net, tmp_path / f"{name}.onnx")
    runner = OnnxNetwork(path, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = net(crops)
    got = runner(crops)
    assert got.shape == (2, 3, 27 * scale, 43 * scale) == want.shape
    assert (got - want).abs().max().item() <= 1e-4
    assert runner.scale == scale and runner.medsr_spec == net.medsr_spec
    assert runner.receptive_radius == receptive_radius(net)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.onnx"]  # one file, no leftovers


def test_interpolation_and_old_opsets_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="interpolation"):
        export_onnx(build_model("bicubic", 2), tmp_path / "b.onnx")
    net = build_model("edsr", 2, num_feat=4, num_block=1)
    with pytest.raises(ConfigError, match="opset=16"):
        export_onnx(net, tmp_path / "e.onnx", opset=16)
    with pytest.raises(ConfigError, match=r"\.onnx"):
        export_onnx(net, tmp_path / "e.pth")


class SizeBranch(nn.Module):
    """A network whose forward branches on the input size in Python (frozen when traced)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        x = torch.nn.functional.interpolate(self.conv(x), scale_factor=2)
        return x * 2 if x.shape[-1] == 2 * TRACE_SIZE[1] else x


def test_an_export_that_only_works_at_the_trace_size_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="does not reproduce"):
        export_onnx(SizeBranch(), tmp_path / "frozen.onnx")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_file_without_medsr_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.onnx"
    torch.onnx.export(nn.Conv2d(3, 3, 1), (torch.rand(1, 3, 4, 4),), str(path), dynamo=False)
    with pytest.raises(WeightsError, match="not written by medsr"):
        OnnxNetwork(path)
    with pytest.raises(WeightsError, match="not found"):
        OnnxNetwork(tmp_path / "missing.onnx")
