"""One-channel networks for grey scanner data, and their start from RGB weights."""

from __future__ import annotations

import pytest
import torch

from medsr.errors import ConfigError, WeightsError
from medsr.models import build_model, load_pretrained, save_weights
from medsr.models.weights.grey import init_from_rgb

TINY = {
    "edsr": {"num_feat": 8, "num_block": 2},
    "rcan": {"num_feat": 8, "num_group": 1, "num_block": 2, "squeeze_factor": 4},
    "rrdbnet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
}
CASES = [("edsr", 2), ("edsr", 3), ("rcan", 4), ("rrdbnet", 2), ("rrdbnet", 4)]


@pytest.mark.parametrize(("arch", "scale"), CASES)
def test_one_channel_networks_build_and_run(arch, scale):
    net = build_model(arch, scale, num_in_ch=1, num_out_ch=1, **TINY[arch])
    out = net(torch.rand(2, 1, 9, 11))
    assert out.shape == (2, 1, 9 * scale, 11 * scale)
    assert net.conv_first.in_channels == (4 if (arch, scale) == ("rrdbnet", 2) else 1)
    assert net.conv_last.out_channels == 1
    if arch != "rrdbnet":  # one-channel mean shift: the average of the DIV2K RGB mean
        assert net.sub_mean.mean.shape == (1, 1, 1, 1)
        assert float(net.sub_mean.mean) == pytest.approx((0.4488 + 0.4371 + 0.4040) / 3)


def _random_rgb(arch: str, scale: int, path) -> torch.nn.Module:
    torch.manual_seed(0)
    rgb = build_model(arch, scale, **TINY[arch])
    with torch.no_grad():
        for p in rgb.parameters():
            p.normal_(0, 0.05)  # far from init, so a wrong conversion shows
    save_weights(rgb, path)
    return rgb.eval()


@pytest.mark.parametrize(("arch", "scale"), CASES)
def test_init_from_rgb_equals_the_rgb_network_on_grey_images(tmp_path, arch, scale):
    """grey(x) == mean over colours of rgb(x, x, x) away from the border (zero padding of the
    mean-shifted input differs there; RRDBNet has no mean shift and matches everywhere)."""
    rgb = _random_rgb(arch, scale, tmp_path / "rgb.pth")
    grey = init_from_rgb(
        build_model(arch, scale, num_in_ch=1, num_out_ch=1, **TINY[arch]), tmp_path / "rgb.pth"
    )
    x = torch.rand(1, 1, 36, 36)
    with torch.no_grad():
        diff = (grey.eval()(x) - rgb(x.expand(-1, 3, -1, -1)).mean(1, keepdim=True)).abs()[0, 0]
    margin = 0 if arch == "rrdbnet" else 12 * scale
    inner = diff[margin : diff.shape[0] - margin, margin : diff.shape[1] - margin]
    assert float(inner.max()) < 1e-4, float(inner.max())


def test_rgb_file_into_a_one_channel_network_names_init_from_rgb(tmp_path):
    _random_rgb("edsr", 2, tmp_path / "rgb.pth")
    grey = build_model("edsr", 2, num_in_ch=1, num_out_ch=1, **TINY["edsr"])
    with pytest.raises(WeightsError, match=r"model\.init_from_rgb=true") as err:
        load_pretrained(grey, tmp_path / "rgb.pth")
    assert "rgb.pth" in str(err.value) and "3-channel (RGB)" in str(err.value)


def test_init_from_rgb_needs_a_one_channel_network(tmp_path):
    _random_rgb("edsr", 2, tmp_path / "rgb.pth")
    with pytest.raises(ConfigError, match="num_in_ch=1"):
        init_from_rgb(build_model("edsr", 2, **TINY["edsr"]), tmp_path / "rgb.pth")
    other_size = build_model("edsr", 2, num_in_ch=1, num_out_ch=1, num_feat=16, num_block=2)
    with pytest.raises(WeightsError):  # the RGB twin is strict about the rest of the network
        init_from_rgb(other_size, tmp_path / "rgb.pth")


def test_init_from_rgb_through_the_training_config(tmp_path):
    from helpers import compose_config
    from medsr.training.factory import build_network

    rgb = _random_rgb("edsr", 2, tmp_path / "rgb.pth")
    grey = build_network(compose_config(*_overrides(tmp_path), "model.init_from_rgb=true"))
    torch.testing.assert_close(grey.conv_first.weight, rgb.conv_first.weight.sum(1, keepdim=True))
    torch.testing.assert_close(grey.conv_last.weight, rgb.conv_last.weight.mean(0, keepdim=True))
    with pytest.raises(WeightsError, match=r"model\.init_from_rgb=true"):
        build_network(compose_config(*_overrides(tmp_path)))


def _overrides(tmp_path) -> list[str]:
    return [
        "train", "model=edsr_baseline", "scale=2", "model.net.num_feat=8", "model.net.num_block=2",
        "model.net.num_in_ch=1", "model.net.num_out_ch=1", f"model.init_from={tmp_path / 'rgb.pth'}",
    ]  # fmt: skip
