"""SwinIR: published parameter counts, parity with the official network, the SDPA attention and
the model-zoo file layout.

The reference below (``Ref*``) is a minimal transcription of the official forward in
JingyunLiang/SwinIR ``models/network_swinir.py`` (WindowAttention, SwinTransformerBlock with its
slice-loop ``calculate_mask``, BasicLayer/RSTB, SwinIR.forward with ``check_image_size``'s reflect
padding, the mean shift and the final crop). It keeps the official module names, so its
``state_dict()`` is the released files' layout, buffers (``relative_position_index``,
``attn_mask`` at ``img_size``) included; it never imports medsr's SwinIR.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medsr.errors import ConfigError, WeightsError
from medsr.models import build_model, load_pretrained, read_spec, save_weights
from medsr.models.swinir import MASK_CACHE_SIZE
from medsr.models.swinir_blocks import WindowAttention, shift_mask

# --- reference transcription of the official network_swinir.py ----------------------------------


def ref_partition(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def ref_reverse(windows, ws, h, w):
    b = int(windows.shape[0] / (h * w / ws / ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def ref_mask(h, w, ws, shift):
    img_mask = torch.zeros((1, h, w, 1))
    slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for hs in slices:
        for wsl in slices:
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    mw = ref_partition(img_mask, ws).view(-1, ws * ws)
    m = mw.unsqueeze(1) - mw.unsqueeze(2)
    return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)


class RefAttention(nn.Module):
    def __init__(self, dim, ws, heads):
        super().__init__()
        self.ws, self.heads, self.scale = ws, heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid([torch.arange(ws), torch.arange(ws)], indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += ws - 1
        rel[:, :, 1] += ws - 1
        rel[:, :, 0] *= 2 * ws - 1
        self.register_buffer("relative_position_index", rel.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c))


class RefMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class RefBlock(nn.Module):
    def __init__(self, dim, res, heads, ws, shift, mlp_ratio):
        super().__init__()
        self.res, self.ws, self.shift = res, ws, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = RefAttention(dim, ws, heads)
        self.mlp = RefMlp(dim, int(dim * mlp_ratio))
        self.register_buffer("attn_mask", ref_mask(*res, ws, shift) if shift > 0 else None)

    def forward(self, x, x_size):
        (h, w), ws, s = x_size, self.ws, self.shift
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        xw = ref_partition(x, ws).view(-1, ws * ws, c)
        mask = self.attn_mask if self.res == x_size else (ref_mask(h, w, ws, s) if s else None)
        x = ref_reverse(self.attn(xw, mask).view(-1, ws, ws, c), ws, h, w)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + x.view(b, h * w, c)
        return x + self.mlp(self.norm2(x))


def ref_resi(dim, kind):
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    q = dim // 4
    return nn.Sequential(
        nn.Conv2d(dim, q, 3, 1, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(q, q, 1, 1, 0),
        nn.LeakyReLU(0.2, True), nn.Conv2d(q, dim, 3, 1, 1),
    )  # fmt: skip


class RefRSTB(nn.Module):
    def __init__(self, dim, res, depth, heads, ws, mlp_ratio, resi):
        super().__init__()
        self.residual_group = nn.Module()
        self.residual_group.blocks = nn.ModuleList(
            RefBlock(dim, res, heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio)
            for i in range(depth)
        )
        self.conv = ref_resi(dim, resi)

    def forward(self, x, x_size):
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y, x_size)
        b, _, c = y.shape
        y = self.conv(y.transpose(1, 2).view(b, c, *x_size))
        return y.flatten(2).transpose(1, 2) + x


class RefSwinIR(nn.Module):
    def __init__(self, upscale, img_size, in_chans, embed_dim, depths, num_heads, window_size,
                 mlp_ratio, upsampler, resi_connection="1conv", img_range=1.0):  # fmt: skip
        super().__init__()
        self.up, self.sampler, self.ws, self.range = upscale, upsampler, window_size, img_range
        self.mean = torch.tensor((0.4488, 0.4371, 0.4040)).view(1, 3, 1, 1)
        if in_chans != 3:
            self.mean = torch.zeros(1, 1, 1, 1)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = nn.Module()
        self.patch_embed.norm = nn.LayerNorm(embed_dim)
        res = (img_size, img_size)
        self.layers = nn.ModuleList(
            RefRSTB(embed_dim, res, d, h, window_size, mlp_ratio, resi_connection)
            for d, h in zip(depths, num_heads, strict=True)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = ref_resi(embed_dim, resi_connection)
        if upsampler in ("pixelshuffle", "nearest+conv"):
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, 64, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
        if upsampler == "pixelshuffle":
            m = []
            if upscale & (upscale - 1) == 0:
                for _ in range(int(math.log(upscale, 2))):
                    m += [nn.Conv2d(64, 256, 3, 1, 1), nn.PixelShuffle(2)]
            else:
                m += [nn.Conv2d(64, 576, 3, 1, 1), nn.PixelShuffle(3)]
            self.upsample = nn.Sequential(*m)
            self.conv_last = nn.Conv2d(64, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(embed_dim, upscale**2 * in_chans, 3, 1, 1), nn.PixelShuffle(upscale)
            )
        elif upsampler == "nearest+conv":
            self.conv_up1 = nn.Conv2d(64, 64, 3, 1, 1)
            if upscale == 4:
                self.conv_up2 = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_last = nn.Conv2d(64, in_chans, 3, 1, 1)
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)

    def features(self, x):
        b, c, h, w = x.shape
        x = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            x = layer(x, (h, w))
        return self.norm(x).transpose(1, 2).view(b, c, h, w)

    def forward(self, x):
        h, w = x.shape[2:]
        x = F.pad(
            x,
            (0, (self.ws - w % self.ws) % self.ws, 0, (self.ws - h % self.ws) % self.ws),
            "reflect",
        )
        x = (x - self.mean) * self.range
        if self.sampler == "":
            first = self.conv_first(x)
            x = x + self.conv_last(self.conv_after_body(self.features(first)) + first)
        else:
            x = self.conv_first(x)
            x = self.conv_after_body(self.features(x)) + x
            if self.sampler == "pixelshuffle":
                x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
            elif self.sampler == "pixelshuffledirect":
                x = self.upsample(x)
            else:
                lrelu = nn.LeakyReLU(0.2)
                x = self.conv_before_upsample(x)
                x = lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
                if self.up == 4:
                    x = lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
                x = self.conv_last(lrelu(self.conv_hr(x)))
        x = x / self.range + self.mean
        return x[:, :, : h * self.up, : w * self.up]


# --- helpers ----------------------------------------------------------------------------------------

TINY = dict(img_size=16, embed_dim=12, depths=[2, 2], num_heads=[2, 3], window_size=4, mlp_ratio=2)


def randomize(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights everywhere (LayerNorms and position bias included), so every term counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(max(p[0].numel(), 1)))
    return net.eval()


def reference(scale, **kw) -> RefSwinIR:
    cfg = {**TINY, **kw}
    return randomize(RefSwinIR(scale, cfg.pop("img_size"), cfg.pop("in_chans", 3), **cfg))


def trainable(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# --- parameter counts ------------------------------------------------------------------------------

# Released configurations: main_test_swinir.py define_model() (img_size 64, window 8, mlp_ratio 2);
# the counts are issue #14's, i.e. sum(p.numel()) of the official network_swinir.SwinIR built so.
CLASSICAL_M = dict(embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, upsampler="pixelshuffle")
LIGHT = dict(embed_dim=60, depths=[6] * 4, num_heads=[6] * 4, upsampler="pixelshuffledirect")
REAL_M = dict(CLASSICAL_M, upsampler="nearest+conv")
REAL_L = dict(REAL_M, embed_dim=240, depths=[6] * 9, num_heads=[8] * 9, resi_connection="3conv")
RELEASED = [
    ("classical SwinIR-M", CLASSICAL_M, 2, 11_752_487),
    ("classical SwinIR-M", CLASSICAL_M, 3, 11_937_127),
    ("classical SwinIR-M", CLASSICAL_M, 4, 11_900_199),
    ("lightweight SwinIR", LIGHT, 2, 910_152),
    ("lightweight SwinIR", LIGHT, 3, 918_267),
    ("lightweight SwinIR", LIGHT, 4, 929_628),
    ("real-world SwinIR-M", REAL_M, 4, 11_715_559),
    ("real-world SwinIR-L", REAL_L, 4, 28_013_059),
]


@pytest.mark.parametrize(("name", "cfg", "scale", "count"), RELEASED)
def test_trainable_parameters_equal_the_released_models(name, cfg, scale, count):
    with torch.device("meta"):  # shapes only: no memory, no init time
        net = build_model("swinir", scale, img_size=64, window_size=8, mlp_ratio=2, **cfg)
    assert trainable(net) == count, name


# --- parity with the official forward, through the official file layout ------------------------------

CASES = [  # (scale, options): every upsampler kind, 3conv, grey input, img_range 255
    (2, dict(upsampler="pixelshuffle")),
    (3, dict(upsampler="pixelshuffle", resi_connection="3conv")),
    (4, dict(upsampler="pixelshuffledirect")),
    (3, dict(upsampler="pixelshuffledirect", in_chans=1)),
    (4, dict(upsampler="nearest+conv")),
    (2, dict(upsampler="nearest+conv", resi_connection="3conv")),
    (1, dict(upsampler="", img_range=255.0)),
]


@pytest.mark.parametrize(("scale", "opts"), CASES)
def test_official_file_loads_strictly_and_outputs_match(tmp_path, scale, opts):
    ref = reference(scale, **opts)
    state = ref.state_dict()
    assert any(k.endswith(".attn_mask") for k in state)  # the layout of the released files
    assert any(k.endswith(".attn.relative_position_index") for k in state)
    path = tmp_path / "official.pth"
    torch.save({"params": state}, path)
    net = load_pretrained(build_model("swinir", scale, **TINY, **opts), path).eval()
    chans = opts.get("in_chans", 3)
    # 13x10 and 7x9 are not multiples of the window (4): reflect padding and crop are exercised;
    # 15x14 pads to 16x16 = img_size, where the official block uses its stored attn_mask.
    for h, w in ((13, 10), (15, 14), (7, 9)):
        x = torch.rand(2, chans, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            expected, got = ref(x), net(x)
        assert got.shape == (2, chans, h * scale, w * scale)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_params_ema_file_and_another_training_patch_size(tmp_path):
    # Real-world releases are {'params_ema': ...}; BasicSR saves 'params' beside it (ignored).
    # The file was trained at img_size 16; the model is built for 12: the masks are recomputed.
    ref = reference(4, upsampler="nearest+conv")
    decoy = reference(4, upsampler="nearest+conv").state_dict()
    decoy = {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in decoy.items()}
    path = tmp_path / "real.pth"
    torch.save({"params": decoy, "params_ema": ref.state_dict()}, path)
    net = build_model("swinir", 4, **{**TINY, "img_size": 12}, upsampler="nearest+conv")
    load_pretrained(net, path).eval()
    x = torch.rand(1, 3, 11, 9)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("buffer", ["relative_position_index", "attn_mask"])
def test_damaged_official_buffers_are_refused(tmp_path, buffer):
    state = reference(2, upsampler="pixelshuffle").state_dict()
    key = next(k for k in state if k.endswith(buffer))
    state[key] = state[key].clone()
    state[key].view(-1)[5] = 7 if buffer == "relative_position_index" else -100.0
    torch.save({"params": state}, tmp_path / "bad.pth")
    net = build_model("swinir", 2, **TINY, upsampler="pixelshuffle")
    with pytest.raises(WeightsError, match=f"{key} is not"):
        load_pretrained(net, tmp_path / "bad.pth")


def test_file_of_another_size_names_both_networks(tmp_path):
    torch.save({"params": reference(2, upsampler="pixelshuffle").state_dict()}, tmp_path / "f.pth")
    net = build_model("swinir", 4, **TINY, upsampler="pixelshuffle")
    with pytest.raises(WeightsError, match=r"x2 pixelshuffle.*embed_dim=12.*x4 pixelshuffle"):
        load_pretrained(net, tmp_path / "f.pth")
    with pytest.raises(WeightsError, match="holds swinir weights"):
        load_pretrained(
            build_model("rcan", 2, num_feat=8, num_group=1, num_block=1, squeeze_factor=4),
            tmp_path / "f.pth",
        )


def test_medsr_file_round_trip_rebuilds_from_its_spec(tmp_path):
    net = randomize(build_model("swinir", 3, **TINY, upsampler="pixelshuffledirect", in_chans=1))
    path = save_weights(net, tmp_path / "swinir.safetensors")
    spec = read_spec(path)
    assert spec["arch"] == "swinir" and spec["net"]["depths"] == [2, 2]
    again = load_pretrained(build_model(spec["arch"], spec["scale"], **spec["net"]), path).eval()
    x = torch.rand(1, 1, 9, 10)
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x), atol=0, rtol=0)


# --- attention and masks ---------------------------------------------------------------------------


@pytest.mark.parametrize("shifted", [False, True])
def test_sdpa_attention_equals_the_explicit_softmax_formula(shifted):
    torch.manual_seed(0)
    dim, heads, ws, b, (h, w) = 12, 3, 4, 2, (8, 12)
    attn = randomize(WindowAttention(dim, ws, heads))
    nw, n = (h // ws) * (w // ws), ws * ws
    x = torch.randn(b * nw, n, dim)
    mask = shift_mask(h, w, ws, ws // 2) if shifted else None
    # softmax(q k^T * d^-1/2 + B + M) v per head (SwinIR eq. 3, Swin's official code)
    q, k, v = attn.qkv(x).view(b * nw, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    table = attn.relative_position_bias_table
    idx = torch.tensor([[(i // ws - j // ws + ws - 1) * (2 * ws - 1) + (i % ws - j % ws + ws - 1)
                         for j in range(n)] for i in range(n)])  # fmt: skip
    logits = q @ k.transpose(-1, -2) * (dim // heads) ** -0.5 + table[idx].permute(2, 0, 1)
    if shifted:
        logits = logits + mask.repeat(b, 1, 1).unsqueeze(1)
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b * nw, n, dim)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, mask), attn.proj(out), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("h", "w", "ws"), [(8, 8, 4), (4, 12, 4), (16, 8, 8), (12, 20, 4)])
def test_shift_mask_equals_the_official_slice_construction(h, w, ws):
    torch.testing.assert_close(shift_mask(h, w, ws, ws // 2), ref_mask(h, w, ws, ws // 2))


def test_masks_are_cached_per_size_and_bounded():
    net = build_model("swinir", 2, **TINY, upsampler="pixelshuffle").eval()
    with torch.no_grad():
        net(torch.rand(1, 3, 8, 8))
        first = net.cached_shift_mask(8, 8, torch.device("cpu"))
        for side in (12, 16, 20, 24, 28):
            net(torch.rand(1, 3, side, 8))
    assert net.cached_shift_mask(28, 8, torch.device("cpu")).shape == (7 * 2, 16, 16)
    assert len(net._masks) == MASK_CACHE_SIZE
    again = net.cached_shift_mask(8, 8, torch.device("cpu"))
    assert again is not first and torch.equal(again, first)  # evicted, rebuilt identical
    assert net.cached_shift_mask(8, 8, torch.device("cpu")) is again


def test_mask_cached_during_inference_serves_training():
    net = build_model("swinir", 2, **TINY, upsampler="pixelshuffle")
    x = torch.rand(2, 3, 16, 16)
    with torch.inference_mode():  # Lightning validates in inference mode
        net.eval()(x)
    net.train()(x).mean().backward()  # same size: the cached mask takes part in autograd
    assert net.conv_first.weight.grad is not None


# --- training path, options and errors ----------------------------------------------------------------


def test_backward_reaches_every_parameter_and_checkpointing_changes_nothing():
    torch.manual_seed(0)
    opts = dict(TINY, upsampler="pixelshuffle", drop_path_rate=0.0)
    plain = randomize(build_model("swinir", 2, **opts)).train()
    ckpt = build_model("swinir", 2, **opts, use_checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 10, 9)
    for net in (plain, ckpt):
        net(x).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5)


def test_num_in_ch_alias_and_absolute_position_embedding():
    grey = build_model("swinir", 2, **TINY, upsampler="pixelshuffle", num_in_ch=1, num_out_ch=1)
    assert grey.conv_first.in_channels == 1 and grey(torch.rand(1, 1, 5, 6)).shape == (1, 1, 10, 12)
    ape = build_model("swinir", 2, **TINY, upsampler="pixelshuffle", ape=True)
    assert ape.absolute_pos_embed.shape == (1, 16 * 16, 12)
    assert ape(torch.rand(1, 3, 16, 16)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("scale", "opts", "match"),
    [
        (2, dict(upsampler=""), r"scale=2 is not supported.*upsampler=''"),
        (3, dict(upsampler="nearest+conv"), "scale=3 is not supported"),
        (2, dict(upsampler="pixelshuffel"), "upsampler='pixelshuffel' is not valid"),
        (2, dict(upsampler="pixelshuffle", num_heads=[5, 3]), "divisible by every head count"),
        (2, dict(upsampler="pixelshuffle", depths=[2]), "one entry per RSTB"),
        (2, dict(upsampler="pixelshuffle", resi_connection="2conv"), "resi_connection"),
        (2, dict(upsampler="pixelshuffle", patch_size=2), "patch_size=1"),
        (2, dict(upsampler="pixelshuffle", num_out_ch=1), "num_out_ch=1"),
        (2, dict(upsampler="pixelshuffle", upscale=2), "upscale is not a parameter of swinir"),
    ],
)
def test_bad_settings_name_the_setting(scale, opts, match):
    with pytest.raises(ConfigError, match=match):
        build_model("swinir", scale, **{**TINY, **opts})


def test_forward_traces_with_dynamic_batch_and_size(tmp_path):
    # No Python-side branch on the input size: one ONNX graph serves every batch and size.
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import warnings

    net = randomize(build_model("swinir", 2, **TINY, upsampler="pixelshuffle"))
    path = tmp_path / "swinir.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (torch.rand(1, 3, 13, 10),), str(path), dynamo=False, opset_version=17,
            input_names=["lr"], output_names=["sr"],
            dynamic_axes={"lr": {0: "b", 2: "h", 3: "w"}, "sr": {0: "b", 2: "sh", 3: "sw"}},
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((2, 3, 9, 17), (1, 3, 16, 16)):  # sizes (and padding) the export did not see
        x = torch.rand(shape)
        with torch.no_grad():
            expected = net(x).numpy()
        got = session.run(None, {"lr": x.numpy()})[0]
        assert got.shape == expected.shape
        assert abs(got - expected).max() < 1e-4


def test_tiling_treats_attention_as_global_context():
    from medsr.ops import receptive_radius

    net = build_model("swinir", 2, **TINY, upsampler="pixelshuffle")
    assert receptive_radius(net) == math.inf  # so tiles are cross-faded, never hard-cut


@pytest.mark.parametrize(
    ("length", "tile", "overlap"), [(384, 128, 16), (45, 24, 6), (300, 64, 20)]
)
def test_tiles_start_and_end_on_the_window_grid(length, tile, overlap):
    # Starts on multiples of the window from the origin, stops on multiples from the far edge:
    # every tile, flipped or not by the x8 self-ensemble, shares the whole image's window grid.
    from medsr.ops.tiling import axis_windows

    windows = axis_windows(length, tile, overlap, align=8)
    assert windows[0][0] == 0 and windows[-1][1] == length
    assert all(a % 8 == 0 and (length - b) % 8 == 0 and b - a <= tile for a, b in windows)
    for (a0, b0), (a1, _) in zip(windows, windows[1:], strict=False):
        assert a0 < a1 and b0 - a1 >= overlap


@torch.no_grad()
def test_window_grid_is_anchored_at_the_origin():
    # Why tiles must start on multiples of the window: a crop starting on the grid reproduces
    # the whole image's output away from its borders, a crop starting off the grid does not.
    net = randomize(build_model("swinir", 2, **TINY, upsampler="pixelshuffle"))
    assert net.tile_align == 4
    x = torch.rand(1, 3, 80, 80, generator=torch.Generator().manual_seed(0))
    whole = net(x)
    core = (slice(None), slice(None), slice(96, 112), slice(96, 112))  # LR 48-55: 24 px inside
    on_grid = net(x[..., 24:, 24:])[..., 48:64, 48:64]
    off_grid = net(x[..., 22:, 22:])[..., 52:68, 52:68]
    torch.testing.assert_close(on_grid, whole[core], atol=1e-5, rtol=0)
    assert (off_grid - whole[core]).abs().max() > 1e-2
