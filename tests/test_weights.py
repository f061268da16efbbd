"""load_pretrained / save_weights / read_spec: every official layout loads and reproduces the
original network's outputs; mismatches and unsafe files are refused with one clear error.

The official networks are re-declared below from their published source (EDSR-PyTorch
``src/model/{edsr,rcan,common}.py``, ESRGAN ``RRDBNet_arch.py`` and ``architecture.py``/``block.py``)
with random weights: their own module structure produces the exact official key layout, and
their own forward (0-255 range for EDSR/RCAN) is the independent reference the loaded medsr
network must match.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import cpu_trainer
from medsr.errors import WeightsError
from medsr.models import build_model, load_pretrained, read_spec, save_weights
from medsr.models.weights.files import read_state_dict

DIV2K = (0.4488, 0.4371, 0.4040)


def conv(c_in, c_out, k=3):
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


# --- EDSR-PyTorch (src/model/common.py, edsr.py, rcan.py) ---------------------------------------------


class RefMeanShift(nn.Conv2d):
    def __init__(self, rgb_range, rgb_mean=DIV2K, sign=-1):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean)
        for p in self.parameters():
            p.requires_grad = False


class RefResBlock(nn.Module):
    def __init__(self, n_feats, res_scale):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats), nn.ReLU(True), conv(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


class RefUpsampler(nn.Sequential):
    def __init__(self, scale, n_feats):
        m = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                m += [conv(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        else:
            m += [conv(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        super().__init__(*m)


class RefEDSR(nn.Module):
    """EDSR-PyTorch EDSR; input and output on the 0-255 scale."""

    def __init__(self, scale, n_resblocks, n_feats, res_scale, rgb_mean=DIV2K):
        super().__init__()
        self.sub_mean = RefMeanShift(255, rgb_mean)
        self.add_mean = RefMeanShift(255, rgb_mean, sign=1)
        self.head = nn.Sequential(conv(3, n_feats))
        self.body = nn.Sequential(
            *[RefResBlock(n_feats, res_scale) for _ in range(n_resblocks)], conv(n_feats, n_feats)
        )
        self.tail = nn.Sequential(RefUpsampler(scale, n_feats), conv(n_feats, 3))

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(x))


class RefCALayer(nn.Module):
    def __init__(self, channel, reduction):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1),
            nn.ReLU(True),
            nn.Conv2d(channel // reduction, channel, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RefRCAB(nn.Module):
    def __init__(self, n_feat, reduction):
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feat, n_feat), nn.ReLU(True), conv(n_feat, n_feat), RefCALayer(n_feat, reduction)
        )

    def forward(self, x):
        return self.body(x) + x


class RefResidualGroup(nn.Module):
    def __init__(self, n_feat, reduction, n_resblocks):
        super().__init__()
        self.body = nn.Sequential(
            *[RefRCAB(n_feat, reduction) for _ in range(n_resblocks)], conv(n_feat, n_feat)
        )

    def forward(self, x):
        return self.body(x) + x


class RefRCAN(nn.Module):
    """Official RCAN (EDSR-PyTorch code base); input and output on the 0-255 scale."""

    def __init__(self, scale, n_resgroups, n_resblocks, n_feats, reduction):
        super().__init__()
        self.sub_mean = RefMeanShift(255)
        self.head = nn.Sequential(conv(3, n_feats))
        self.body = nn.Sequential(
            *[RefResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)],
            conv(n_feats, n_feats),
        )
        self.tail = nn.Sequential(RefUpsampler(scale, n_feats), conv(n_feats, 3))
        self.add_mean = RefMeanShift(255, sign=1)

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(x))


# --- ESRGAN (RRDBNet_arch.py; architecture.py + block.py for the old layout) ------------------------


class RefRDB(nn.Module):
    def __init__(self, nf, gc, old=False):
        super().__init__()
        lrelu = nn.LeakyReLU(0.2, True)
        chans = [nf + i * gc for i in range(5)]
        outs = [gc, gc, gc, gc, nf]
        for i in range(5):
            c = nn.Conv2d(chans[i], outs[i], 3, 1, 1)
            # block.conv_block: Sequential(conv, act) (conv5 has no act in CNA mode)
            setattr(
                self,
                f"conv{i + 1}",
                (nn.Sequential(c, lrelu) if i < 4 else nn.Sequential(c)) if old else c,
            )
        self.old, self.lrelu = old, lrelu

    def forward(self, x):
        act = (lambda t: t) if self.old else self.lrelu
        x1 = act(self.conv1(x))
        x2 = act(self.conv2(torch.cat((x, x1), 1)))
        x3 = act(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = act(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RefRRDB(nn.Module):
    def __init__(self, nf, gc, old=False):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (
            RefRDB(nf, gc, old),
            RefRDB(nf, gc, old),
            RefRDB(nf, gc, old),
        )

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class RefRRDBNet(nn.Module):
    """ESRGAN RRDBNet_arch.RRDBNet (x4)."""

    def __init__(self, in_nc, out_nc, nf, nb, gc):
        super().__init__()
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[RefRRDB(nf, gc) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out_nc, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.lrelu(self.upconv1(F.interpolate(fea, scale_factor=2, mode="nearest")))
        fea = self.lrelu(self.upconv2(F.interpolate(fea, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.HRconv(fea)))


class RefShortcut(nn.Module):
    def __init__(self, sub):
        super().__init__()
        self.sub = sub

    def forward(self, x):
        return x + self.sub(x)


class RefOldRRDBNet(nn.Module):
    """ESRGAN architecture.RRDB_Net (x4, upconv), flattened by block.sequential into ``model``."""

    def __init__(self, nf, nb, gc):
        super().__init__()
        lrelu = nn.LeakyReLU(0.2, True)
        trunk = nn.Sequential(
            *[RefRRDB(nf, gc, old=True) for _ in range(nb)], nn.Conv2d(nf, nf, 3, 1, 1)
        )
        self.model = nn.Sequential(
            nn.Conv2d(3, nf, 3, 1, 1),
            RefShortcut(trunk),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(nf, nf, 3, 1, 1),
            lrelu,
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(nf, nf, 3, 1, 1),
            lrelu,
            nn.Conv2d(nf, nf, 3, 1, 1),
            lrelu,
            nn.Conv2d(nf, 3, 3, 1, 1),
        )

    def forward(self, x):
        return self.model(x)


def esrgan_to_basicsr(state):
    """ESRGAN RRDBNet_arch names -> BasicSR names (as BasicSR's convert_esrgan_model does)."""
    out = {}
    for k, v in state.items():
        k = k.replace("RRDB_trunk", "body").replace("RDB", "rdb").replace("trunk_conv", "conv_body")
        k = k.replace("upconv", "conv_up").replace("HRconv", "conv_hr")
        out[k] = v
    return out


def randomize(net, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:  # not the frozen MeanShift
                p.add_(torch.randn_like(p) * 0.02)
    return net.eval()


def lr(seed=1, h=9, w=11):
    torch.manual_seed(seed)
    return torch.rand(2, 3, h, w)


def assert_outputs_agree(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# --- official formats reproduce the original outputs ---------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("img_range", [255.0, 1.0])
def test_edsr_pytorch_release_legacy_format(tmp_path, scale, img_range):
    ref = randomize(RefEDSR(scale, n_resblocks=3, n_feats=16, res_scale=0.1), seed=scale)
    path = tmp_path / f"edsr_x{scale}.pt"
    torch.save(
        ref.state_dict(), path, _use_new_zipfile_serialization=False
    )  # pre-1.6 release files
    net = build_model("edsr", scale, num_feat=16, num_block=3, res_scale=0.1, img_range=img_range)
    load_pretrained(net, path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), ref(x * 255) / 255)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_rcan_release(tmp_path, scale):
    ref = randomize(
        RefRCAN(scale, n_resgroups=2, n_resblocks=3, n_feats=16, reduction=4), seed=scale
    )
    path = tmp_path / f"RCAN_BIX{scale}.pt"
    torch.save(ref.state_dict(), path, _use_new_zipfile_serialization=False)
    net = build_model("rcan", scale, num_feat=16, num_group=2, num_block=3, squeeze_factor=4)
    load_pretrained(net, path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), ref(x * 255) / 255)


def test_official_rcan_into_unit_range_model(tmp_path):
    ref = randomize(RefRCAN(2, n_resgroups=1, n_resblocks=2, n_feats=16, reduction=4), seed=0)
    path = tmp_path / "RCAN_BIX2.pt"
    torch.save(ref.state_dict(), path)
    net = build_model(
        "rcan", 2, num_feat=16, num_group=1, num_block=2, squeeze_factor=4, img_range=1.0
    )
    load_pretrained(net, path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), ref(x * 255) / 255)


def test_original_esrgan_release(tmp_path):
    ref = randomize(RefRRDBNet(3, 3, nf=8, nb=2, gc=4), seed=0)
    path = tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save(ref.state_dict(), path)
    assert "RRDB_trunk.1.RDB3.conv5.weight" in ref.state_dict()
    net = load_pretrained(build_model("rrdbnet", 4, num_feat=8, num_block=2, num_grow_ch=4), path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), ref(x))


def test_original_esrgan_old_architecture_layout(tmp_path):
    ref = randomize(RefOldRRDBNet(nf=8, nb=2, gc=4), seed=0)
    keys = set(ref.state_dict())
    assert {
        "model.0.weight",
        "model.1.sub.0.RDB1.conv1.0.weight",
        "model.1.sub.2.weight",
        "model.3.weight",
        "model.6.weight",
        "model.8.weight",
        "model.10.bias",
    } <= keys
    path = tmp_path / "RRDB_PSNR_x4_old_arch.pth"
    torch.save(ref.state_dict(), path, _use_new_zipfile_serialization=False)
    net = load_pretrained(build_model("rrdbnet", 4, num_feat=8, num_block=2, num_grow_ch=4), path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), ref(x))


def test_real_esrgan_x2_params_ema(tmp_path):
    # RealESRGAN_x2plus: BasicSR RRDBNet, pixel-unshuffled input, weights under params_ema.
    ref = randomize(RefRRDBNet(12, 3, nf=8, nb=2, gc=4), seed=0)
    noise = randomize(RefRRDBNet(12, 3, nf=8, nb=2, gc=4), seed=1)
    path = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save(
        {
            "params_ema": esrgan_to_basicsr(ref.state_dict()),
            "params": esrgan_to_basicsr(noise.state_dict()),
        },
        path,
    )
    x = lr(h=8, w=10)
    unshuffled = x.view(2, 3, 4, 2, 5, 2).permute(0, 1, 3, 5, 2, 4).reshape(2, 12, 4, 5)
    net = load_pretrained(build_model("rrdbnet", 2, num_feat=8, num_block=2, num_grow_ch=4), path)
    with torch.no_grad():
        assert_outputs_agree(net(x), ref(unshuffled))
        load_pretrained(net, path, param_key="params")
        assert_outputs_agree(net(x), noise(unshuffled))


def test_basicsr_edsr_params_with_dataparallel_prefix(tmp_path):
    # BasicSR EDSR files use medsr's key names and the same 255 range; `module.` is DataParallel's.
    src = randomize(build_model("edsr", 2, num_feat=16, num_block=2), seed=0)
    path = tmp_path / "EDSR_Mx2_f64b16_DIV2K_official.pth"
    torch.save({"params": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    net = load_pretrained(build_model("edsr", 2, num_feat=16, num_block=2), path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), src(x))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_save_weights_round_trip_with_spec(tmp_path, suffix):
    src = randomize(
        build_model("rcan", 3, num_feat=16, num_group=1, num_block=2, squeeze_factor=4), seed=0
    )
    path = save_weights(src, tmp_path / f"rcan_x3{suffix}")
    spec = read_spec(path)
    assert spec == {
        "arch": "rcan",
        "scale": 3,
        "net": {"num_feat": 16, "num_group": 1, "num_block": 2, "squeeze_factor": 4},
    }
    net = load_pretrained(build_model(spec["arch"], spec["scale"], **spec["net"]), path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), src(x))
    if suffix == ".pth":  # BasicSR-compatible container
        raw = torch.load(path, weights_only=True)
        assert set(raw) == {"params", "medsr_spec"} and set(raw["params"]) == set(src.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_saved_unit_range_model_reloads_into_paper_range_model(tmp_path):
    from medsr.models.edsr import EDSR

    src = randomize(
        EDSR(scale=2, num_feat=16, num_block=2, img_range=1.0), seed=0
    )  # no spec attached
    path = save_weights(src, tmp_path / "edsr.safetensors")
    assert read_spec(path) is None
    net = load_pretrained(build_model("edsr", 2, num_feat=16, num_block=2), path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(net(x), src(x))


def test_medsr_lightning_checkpoint(tmp_path):
    import lightning.pytorch as pl

    from medsr.models import VGGStyleDiscriminator

    class Lit(pl.LightningModule):
        def __init__(self, net, model_spec):
            super().__init__()
            self.save_hyperparameters(ignore=["net"])
            self.net, self.net_d = net, VGGStyleDiscriminator(num_feat=4)
            self.loss_pix = nn.L1Loss()

        def training_step(self, batch, _):
            lr_img, hr = batch
            return self.loss_pix(self.net(lr_img), hr)

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
            return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10], gamma=0.5)]

    torch.manual_seed(0)
    net = build_model("edsr", 2, num_feat=8, num_block=1)
    data = torch.utils.data.TensorDataset(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16))
    trainer = cpu_trainer(2)
    trainer.fit(Lit(net, net.medsr_spec), torch.utils.data.DataLoader(data, batch_size=1))
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)

    assert read_spec(path) == {"arch": "edsr", "scale": 2, "net": {"num_feat": 8, "num_block": 1}}
    fresh = load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1), path)
    x = lr()
    with torch.no_grad():
        assert_outputs_agree(fresh(x), net(x))
    state, where, _ = read_state_dict(path)
    assert where == "Lightning checkpoint" and not any(
        k.startswith(("net_d.", "loss_")) for k in state
    )


# --- mismatches: one error, nothing loaded ---------------------------------------------------------------


def snapshot(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def assert_unchanged(net, before):
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was modified by a failed load"


def test_wrong_architecture_is_refused(tmp_path):
    path = tmp_path / "RCAN_BIX2.pt"
    torch.save(RefRCAN(2, 1, 1, 16, 4).state_dict(), path)
    net = build_model("edsr", 2, num_feat=16, num_block=1)
    before = snapshot(net)
    with pytest.raises(
        WeightsError, match=r"holds rcan weights \(official RCAN release.*the network is edsr"
    ):
        load_pretrained(net, path)
    assert_unchanged(net, before)


def test_wrong_scale_names_format_keys_and_what_the_file_holds(tmp_path):
    path = tmp_path / "edsr_baseline_x4.pt"
    torch.save(RefEDSR(4, 2, 16, 1.0).state_dict(), path, _use_new_zipfile_serialization=False)
    net = build_model("edsr", 2, num_feat=16, num_block=2)
    before = snapshot(net)
    with pytest.raises(WeightsError) as info:
        load_pretrained(net, path)
    msg = str(info.value)
    assert "EDSR-PyTorch EDSR release" in msg and "Nothing was loaded" in msg
    assert "the file looks like: x4, num_feat=16, num_block=2" in msg
    assert "unexpected in the file (2): upsample.2.weight, upsample.2.bias" in msg
    assert_unchanged(net, before)


def test_shape_conflicts_are_listed(tmp_path):
    path = tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save(RefRRDBNet(3, 3, nf=8, nb=1, gc=4).state_dict(), path)
    net = build_model("rrdbnet", 2, num_feat=8, num_block=1, num_grow_ch=4)  # x2 takes 12 channels
    before = snapshot(net)
    with pytest.raises(
        WeightsError,
        match=r"(?s)original ESRGAN release.*shape conflicts \(1\): conv_first\.weight: file \(8, 3, 3, 3\) vs network \(8, 12, 3, 3\)",
    ):
        load_pretrained(net, path, strict=False)  # shape conflicts refuse even when not strict
    assert_unchanged(net, before)


def test_missing_blocks_are_listed(tmp_path):
    src = build_model("rrdbnet", 4, num_feat=8, num_block=1, num_grow_ch=4)
    path = save_weights(src, tmp_path / "rrdb_b1.safetensors")
    net = build_model("rrdbnet", 4, num_feat=8, num_block=2, num_grow_ch=4)
    with pytest.raises(
        WeightsError,
        match=r"(?s)safetensors file.*missing from the file \(30\): body\.1\.rdb1\.conv1\.weight",
    ):
        load_pretrained(net, path)


def test_non_strict_loads_what_matches_and_warns(tmp_path):
    ref = randomize(RefEDSR(4, 2, 16, 1.0), seed=0)
    path = tmp_path / "edsr_baseline_x4.pt"
    torch.save(ref.state_dict(), path)
    net = build_model("edsr", 2, num_feat=16, num_block=2)
    with pytest.warns(UserWarning, match=r"2 file keys were ignored"):
        load_pretrained(net, path, strict=False)
    torch.testing.assert_close(net.body[1].conv2.weight, ref.body[1].body[2].weight, rtol=0, atol=0)


def test_file_mean_must_match_the_model_mean(tmp_path):
    path = tmp_path / "edsr_custom_mean.pt"
    torch.save(RefEDSR(2, 1, 16, 1.0, rgb_mean=(0.5, 0.4, 0.3)).state_dict(), path)
    with pytest.raises(WeightsError, match=r"rgb_mean=\[0\.5, 0\.4, 0\.3\]"):
        load_pretrained(build_model("edsr", 2, num_feat=16, num_block=1), path)
    load_pretrained(
        build_model("edsr", 2, num_feat=16, num_block=1, rgb_mean=[0.5, 0.4, 0.3]), path
    )


def test_unknown_param_key_lists_the_entries(tmp_path):
    path = tmp_path / "basicsr.pth"
    torch.save({"params": build_model("edsr", 2, num_feat=8, num_block=1).state_dict()}, path)
    with pytest.raises(WeightsError, match=r"no entry 'params_ema'.*params"):
        load_pretrained(
            build_model("edsr", 2, num_feat=8, num_block=1), path, param_key="params_ema"
        )


# --- unsafe and broken files ---------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker directory
        return (os.makedirs, (self.marker,))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_would_run_code_is_refused(tmp_path, legacy):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    state = build_model("edsr", 2, num_feat=8, num_block=1).state_dict()
    torch.save(
        {**state, "payload": _RunsCode(str(marker))},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    with pytest.raises(WeightsError, match=r"refused to load.*os\.makedirs.*weights_only=True"):
        load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1), path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"this is a text file\n", r"not a PyTorch weights file"),
        (b"", r"not a PyTorch weights file"),
    ],
)
def test_not_a_weights_file(tmp_path, content, pattern):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=pattern):
        load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1), path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(build_model("edsr", 2, num_feat=8, num_block=1).state_dict(), path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(WeightsError, match=r"cut\.pth"):
        load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1), path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file not found: .*absent\.pth"):
        load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1), tmp_path / "absent.pth")


def test_dict_without_weights(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "note": "no tensors"}, path)
    with pytest.raises(WeightsError, match=r"no state dict found; top-level keys are epoch, note"):
        load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1), path)


def test_save_weights_refuses_unknown_suffix(tmp_path):
    with pytest.raises(WeightsError, match=r"\.safetensors or \.pth"):
        save_weights(build_model("edsr", 2, num_feat=8, num_block=1), tmp_path / "w.bin")


def test_official_release_carries_no_spec(tmp_path):
    path = tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save(RefRRDBNet(3, 3, 8, 1, 4).state_dict(), path)
    assert read_spec(path) is None
