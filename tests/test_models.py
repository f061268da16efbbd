"""Architectures: shapes at every scale, published parameter counts, registry errors, init,
discriminator, and the VGG19 feature extractor's torchvision layout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medsr.errors import ConfigError, WeightsError
from medsr.models import VGG19FeatureExtractor, VGGStyleDiscriminator, build_model, list_models
from medsr.models.vgg import VGG19_LAYER_INDEX

TINY = {
    "edsr": {"num_feat": 8, "num_block": 2},
    "rcan": {"num_feat": 8, "num_group": 2, "num_block": 2, "squeeze_factor": 4},
    "rrdbnet": {"num_feat": 8, "num_block": 2, "num_grow_ch": 4},
}
SCALES = {"edsr": (2, 3, 4), "rcan": (2, 3, 4), "rrdbnet": (2, 4)}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_registry_lists_the_architectures_and_baselines():
    assert list_models() == ["bicubic", "bilinear", "edsr", "nearest", "rcan", "rrdbnet", "swinir"]


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_interpolation_baselines_are_parameter_free_upscalers(mode):
    from medsr.ops import imresize

    x = torch.rand(2, 3, 9, 7)
    net = build_model(mode, 3)
    assert net(x).shape == (2, 3, 27, 21) and not list(net.parameters())
    assert net.medsr_spec == {"arch": mode, "scale": 3, "net": {}}
    if mode == "bicubic":  # MATLAB's kernel, the one the benchmark LR images were made with
        torch.testing.assert_close(net(x), imresize(x, 3))
    if mode == "nearest":
        torch.testing.assert_close(net(x)[..., ::3, ::3], x)


@pytest.mark.parametrize(("arch", "scale"), [(a, s) for a, ss in SCALES.items() for s in ss])
@pytest.mark.parametrize("channels", [3, 1])
def test_output_shape_every_scale(arch, scale, channels):
    torch.manual_seed(0)
    net = build_model(arch, scale, num_in_ch=channels, num_out_ch=channels, **TINY[arch])
    x = torch.rand(2, channels, 10, 12)
    y = net(x)
    assert y.shape == (2, channels, 10 * scale, 12 * scale)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert net.medsr_spec == {
        "arch": arch,
        "scale": scale,
        "net": {"num_in_ch": channels, "num_out_ch": channels, **TINY[arch]},
    }


def test_rrdbnet_x2_odd_input_is_padded_then_cropped():
    torch.manual_seed(0)
    net = build_model("rrdbnet", 2, **TINY["rrdbnet"])
    x = torch.rand(1, 3, 7, 9)
    y = net(x)
    assert y.shape == (1, 3, 14, 18)
    padded = F.pad(x, (0, 1, 0, 1), mode="reflect")
    torch.testing.assert_close(y, net(padded)[..., :14, :18])


def test_rrdbnet_x2_unshuffle_matches_basicsr_channel_order():
    # BasicSR/Real-ESRGAN pixel_unshuffle: view (b, c, h, s, w, s) -> permute (0, 1, 3, 5, 2, 4).
    torch.manual_seed(0)
    x = torch.rand(2, 3, 6, 8)
    ref = x.view(2, 3, 3, 2, 4, 2).permute(0, 1, 3, 5, 2, 4).reshape(2, 12, 3, 4)
    net = build_model("rrdbnet", 2, **TINY["rrdbnet"])
    seen = {}
    net.conv_first.register_forward_pre_hook(lambda m, inp: seen.update(x=inp[0].clone()))
    net(x)
    torch.testing.assert_close(seen["x"], ref, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["edsr", "rcan"])
def test_mean_shift_inside_the_model(arch):
    # With every weight zero only the mean shift acts: the output is the DIV2K mean everywhere.
    net = build_model(arch, 2, **TINY[arch])
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    y = net(torch.rand(1, 3, 4, 4))
    expected = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand_as(y)
    torch.testing.assert_close(y, expected)
    assert not any("mean" in k for k in net.state_dict())  # BasicSR key layout: no mean keys


@pytest.mark.parametrize(
    ("arch", "net_kwargs", "expected"),
    [
        ("edsr", {}, {2: 1_369_859, 3: 1_554_499, 4: 1_517_571}),
        (
            "edsr",
            {"num_feat": 256, "num_block": 32, "res_scale": 0.1},
            {2: 40_729_603, 3: 43_680_003, 4: 43_089_923},
        ),
        ("rcan", {}, {2: 15_444_643, 3: 15_629_283, 4: 15_592_355}),
        ("rrdbnet", {}, {2: 16_703_171, 4: 16_697_987}),
    ],
)
def test_parameter_counts_equal_the_published_ones(arch, net_kwargs, expected):
    # Built on the meta device: the count needs shapes only, not 40M initialised floats.
    with torch.device("meta"):
        counts = {s: n_params(build_model(arch, s, **net_kwargs)) for s in expected}
    assert counts == expected


def test_constructor_defaults_are_the_papers():
    with torch.device("meta"):
        rcan, rrdb, edsr = build_model("rcan", 4), build_model("rrdbnet", 4), build_model("edsr", 4)
    assert len(rcan.body) == 10 and len(rcan.body[0].residual_group) == 20
    assert rcan.body[0].residual_group[0].rcab[3].attention[1].out_channels == 64 // 16
    assert len(rrdb.body) == 23 and rrdb.body[0].rdb1.conv1.out_channels == 32
    assert (
        len(edsr.body) == 16
        and edsr.conv_first.out_channels == 64
        and edsr.body[0].res_scale == 1.0
    )
    assert edsr.sub_mean.img_range == 255.0


def test_rrdbnet_init_is_kaiming_scaled_by_0_1():
    torch.manual_seed(0)
    net = build_model("rrdbnet", 4, num_feat=64, num_block=1, num_grow_ch=32)
    conv = net.body[0].rdb2.conv5  # fan_in = (64 + 4 * 32) * 9
    expected_std = 0.1 * math.sqrt(2.0 / conv.weight[0].numel())
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0


def test_unknown_model_names_setting_and_choices():
    with pytest.raises(
        ConfigError, match=r"model='srcnn'.*bicubic, bilinear, edsr, nearest, rcan, rrdbnet"
    ):
        build_model("srcnn", 2)


@pytest.mark.parametrize(
    ("arch", "scale"), [("edsr", 5), ("rcan", 1), ("edsr", "2"), ("rrdbnet", 8)]
)
def test_unsupported_scale_names_setting_and_choices(arch, scale):
    with pytest.raises(ConfigError, match=r"scale=.*scale=2"):
        build_model(arch, scale, **TINY[arch])


def test_rrdbnet_x3_is_refused_with_the_reason():
    with pytest.raises(
        ConfigError,
        match=r"scale=3 is not supported by rrdbnet; use scale=2, scale=4\..*pixel-unshuffles.*No published",
    ):
        build_model("rrdbnet", 3)


def test_unknown_net_kwarg_names_the_config_key():
    with pytest.raises(ConfigError, match=r"model\.net\.num_resblocks.*num_block"):
        build_model("edsr", 2, num_resblocks=16)


@pytest.mark.parametrize(
    ("arch", "kwargs", "pattern"),
    [
        ("edsr", {"num_feat": 0}, r"model\.net\.num_feat=0"),
        ("rcan", {"num_feat": 8, "squeeze_factor": 16}, r"squeeze_factor=16"),
        ("edsr", {"num_in_ch": 1}, r"num_out_ch"),
        ("edsr", {"rgb_mean": [0.5, 0.5]}, r"rgb_mean has 2 values"),
    ],
)
def test_bad_net_settings_are_config_errors(arch, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_model(arch, 2, **kwargs)


# --- discriminator -------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "stages", "last_ch"), [(32, 3, 32), (128, 5, 64), (256, 6, 64)])
def test_discriminator_logits_shape(size, stages, last_ch):
    torch.manual_seed(0)
    d = VGGStyleDiscriminator(num_in_ch=3, num_feat=8, input_size=size)
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1)
    assert d.linear1.in_features == last_ch * 4 * 4 and hasattr(d, f"conv{stages - 1}_1")
    assert not hasattr(d, f"conv{stages}_0")


def test_discriminator_basicsr_layout_and_size():
    d = VGGStyleDiscriminator()
    keys = set(d.state_dict())
    assert {
        "conv0_0.weight",
        "conv0_0.bias",
        "conv0_1.weight",
        "bn0_1.running_mean",
        "conv4_1.weight",
        "bn4_1.weight",
        "linear1.weight",
        "linear2.bias",
    } <= keys
    assert "conv0_1.bias" not in keys and "conv5_0.weight" not in keys
    assert (
        d.conv4_1.out_channels == 512
        and d.linear1.out_features == 100
        and d.linear2.out_features == 1
    )


def test_discriminator_wrong_patch_size_is_a_clear_error():
    d = VGGStyleDiscriminator(num_feat=8)
    with pytest.raises(ConfigError, match=r"128x128 HR patches but got 96x96"):
        d(torch.rand(1, 3, 96, 96))
    for size in (192, 16):
        with pytest.raises(ConfigError, match=rf"input_size={size}"):
            VGGStyleDiscriminator(input_size=size)


# --- VGG19 features --------------------------------------------------------------------------------

# torchvision.models.vgg19().features (cfg "E"), written out from its definition:
# conv3x3+ReLU pairs, MaxPool2d(2, 2) after each block; channels 64,64 | 128,128 | 256x4 | 512x4 | 512x4.
TV_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
TV_CONV_OUT = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
TV_POOL_INDICES = [4, 9, 18, 27, 36]


def test_vgg19_layer_index_follows_torchvision():
    conv_names = [
        f"conv{b}_{c}"
        for b, n in zip(range(1, 6), (2, 2, 4, 4, 4), strict=True)
        for c in range(1, n + 1)
    ]
    assert [VGG19_LAYER_INDEX[n] for n in conv_names] == TV_CONV_INDICES
    assert [VGG19_LAYER_INDEX[n.replace("conv", "relu")] for n in conv_names] == [
        i + 1 for i in TV_CONV_INDICES
    ]
    assert [VGG19_LAYER_INDEX[f"pool{b}"] for b in range(1, 6)] == TV_POOL_INDICES
    assert VGG19_LAYER_INDEX["conv5_4"] == 34 and len(VGG19_LAYER_INDEX) == 37


def test_vgg19_modules_and_keys_follow_torchvision():
    vgg = VGG19FeatureExtractor(("pool5",), random_init=True)
    feats = vgg.features
    assert len(feats) == 37
    for i, c_out in zip(TV_CONV_INDICES, TV_CONV_OUT, strict=True):
        assert (
            isinstance(feats[i], nn.Conv2d)
            and feats[i].out_channels == c_out
            and feats[i].kernel_size == (3, 3)
        )
        assert isinstance(feats[i + 1], nn.ReLU)
    for i in TV_POOL_INDICES:
        assert (
            isinstance(feats[i], nn.MaxPool2d)
            and feats[i].kernel_size == 2
            and feats[i].stride == 2
        )
    expected_keys = {f"features.{i}.{p}" for i in TV_CONV_INDICES for p in ("weight", "bias")}
    assert set(vgg.state_dict()) == expected_keys


def test_vgg19_builds_only_up_to_the_deepest_layer():
    assert len(VGG19FeatureExtractor(("conv1_1",), random_init=True).features) == 1
    assert len(VGG19FeatureExtractor(("relu2_2", "conv3_1"), random_init=True).features) == 11


def test_vgg19_features_before_relu_and_input_norm():
    torch.manual_seed(0)
    vgg = VGG19FeatureExtractor(("conv1_1", "relu1_1", "conv2_1"), random_init=True)
    x = torch.rand(2, 3, 16, 16)
    out = vgg(x)
    assert set(out) == {"conv1_1", "relu1_1", "conv2_1"}
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    conv = vgg.features[0]
    ref = F.conv2d((x - mean) / std, conv.weight, conv.bias, padding=1)
    torch.testing.assert_close(out["conv1_1"], ref)  # not overwritten by the ReLU that follows
    assert (out["conv1_1"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], ref.clamp_min(0))
    assert out["conv2_1"].shape == (2, 128, 8, 8)
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg19_range_norm_maps_minus_one_one_to_unit_range():
    torch.manual_seed(0)
    a = VGG19FeatureExtractor(("conv1_2",), random_init=True)
    b = VGG19FeatureExtractor(("conv1_2",), random_init=True, range_norm=True)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(b(x * 2 - 1)["conv1_2"], a(x)["conv1_2"])


def test_vgg19_loads_a_torchvision_file_and_ignores_the_classifier(tmp_path):
    torch.manual_seed(0)
    full = VGG19FeatureExtractor(("pool5",), random_init=True)
    state = dict(full.state_dict())
    state["classifier.0.weight"] = torch.zeros(
        2, 8
    )  # torchvision also saves its (here shrunk) head
    state["classifier.0.bias"] = torch.zeros(2)
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    vgg = VGG19FeatureExtractor(("conv5_4",), weights_path=path)
    assert len(vgg.features) == 35
    for key, value in vgg.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_vgg19_rejects_another_network(tmp_path):
    bad = {f"features.{i}.weight": torch.zeros(64, 3, 3, 3) for i in (0, 2)}
    path = tmp_path / "vgg16_bn.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match=r"not torchvision's VGG19"):
        VGG19FeatureExtractor(("conv1_2",), weights_path=path)


def test_vgg19_missing_file_names_file_location_setting_and_page(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(WeightsError) as info:
        VGG19FeatureExtractor()
    msg = str(info.value)
    expected_path = tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert str(expected_path) in msg
    assert (
        "model.lit.perceptual_opt.vgg_weights=" in msg
        and "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    )
    assert not expected_path.exists()  # nothing downloaded
    with pytest.raises(WeightsError, match=r"nowhere\.pth \(the path you gave\)"):
        VGG19FeatureExtractor(weights_path=tmp_path / "nowhere.pth")


def test_vgg19_unknown_layer_is_a_config_error():
    with pytest.raises(ConfigError, match=r"conv5_5"):
        VGG19FeatureExtractor(("conv5_5",), random_init=True)
