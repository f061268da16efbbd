"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCV Workshops 2021).

Constructor keywords and defaults are the official ``SwinIR`` class's (``models/network_swinir.py``
of JingyunLiang/SwinIR), and so are the parameter names: the model-zoo files load as released
(:func:`medsr.models.load_pretrained`). The released configurations (``main_test_swinir.py``):

- classical SwinIR-M: ``embed_dim=180, depths=[6]*6, num_heads=[6]*6, window_size=8,
  mlp_ratio=2, upsampler='pixelshuffle'`` (``img_size`` = training LR patch, 48 or 64);
- lightweight: ``embed_dim=60, depths=[6]*4, num_heads=[6]*4, upsampler='pixelshuffledirect'``;
- real-world SwinIR-M: as classical with ``upsampler='nearest+conv'`` (``params_ema``);
  SwinIR-L: ``embed_dim=240, depths=[6]*9, num_heads=[8]*9, resi_connection='3conv'``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsr.errors import ConfigError
from medsr.models.common import DIV2K_RGB_MEAN, Upsample, check_positive
from medsr.models.registry import register_model
from medsr.models.swinir_blocks import RSTB, conv_block, shift_mask
from medsr.ops.scales import check_scale

UPSAMPLER_SCALES = {
    "pixelshuffle": (2, 3, 4, 8),  # classical SR
    "pixelshuffledirect": (2, 3, 4, 8),  # lightweight SR: one conv + pixel shuffle
    "nearest+conv": (2, 4),  # real-world SR: nearest x2 steps, fewer checkerboard artefacts
    "": (1,),  # denoising / JPEG artefact removal: same size out
}
RESI_CONNECTIONS = ("1conv", "3conv")
NUM_FEAT = 64  # channels of the (nearest+conv / pixelshuffle) reconstruction, fixed officially
MASK_CACHE_SIZE = 4  # input sizes whose shift masks are kept (masks grow with the image area)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise ConfigError(f"model.net.{name}={value!r} must be a positive int or a pair of them")
    return pair


def _int_list(value: Sequence[int], name: str) -> list[int]:
    if isinstance(value, (int, str)) or not all(isinstance(v, int) and v > 0 for v in value):
        raise ConfigError(f"model.net.{name}={value!r} must be a list of positive ints")
    return [int(v) for v in value]


@register_model("swinir")
class SwinIR(nn.Module):
    """SwinIR: conv, residual Swin Transformer blocks (shifted-window attention), reconstruction.

    Input and output are in [0, 1]; inside, the DIV2K RGB mean (3 channels; none otherwise) is
    subtracted and the body works on ``img_range``. Inputs of any size are reflect-padded to a
    multiple of the window and the output is cropped back (as the official forward).

    Args:
        scale: upscaling factor (the official ``upscale``): 2, 3, 4, 8 for ``pixelshuffle`` and
            ``pixelshuffledirect``, 2 or 4 for ``nearest+conv``, 1 for ``''``.
        img_size: training LR patch size; only the absolute position embedding (``ape``) and
            whether windows shrink (an ``img_size`` not larger than the window) depend on it.
        patch_size: 1 (the official forward embeds every pixel; other values only resize buffers).
        in_chans: image channels (output has as many).
        embed_dim: token channels.
        depths: Swin blocks per residual Swin Transformer block (RSTB).
        num_heads: attention heads per RSTB.
        window_size: attention window side (8 in the released models).
        mlp_ratio: MLP width over ``embed_dim`` (2 in the released models).
        qkv_bias: learnable query/key/value bias.
        qk_scale: attention logit scale; None = head_dim ** -0.5.
        drop_rate: dropout after the position embedding, in the MLPs and after attention.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth, rising linearly to this rate over all blocks.
        ape: learned absolute position embedding (then inputs must be ``img_size``).
        patch_norm: LayerNorm after the patch embedding.
        use_checkpoint: gradient checkpointing of every Swin block (training memory).
        img_range: range the body works in (1 in the released SR models).
        upsampler: ``pixelshuffle`` (classical), ``pixelshuffledirect`` (lightweight),
            ``nearest+conv`` (real-world) or ``''`` (restoration at scale 1).
        resi_connection: ``1conv`` or ``3conv`` (SwinIR-L).
        num_in_ch: medsr's name for ``in_chans`` (all medsr architectures take it).
        num_out_ch: output channels; must equal the input channels (the mean is added back).
    """

    # Windows are anchored at the image origin and shifted windows chain them across the map
    # over 24-54 blocks: no overlap makes tiles exact, so tiled inference cross-fades them.
    receptive_radius = math.inf

    def __init__(
        self,
        scale: int = 2,
        img_size: int | Sequence[int] = 64,
        patch_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        img_range: float = 1.0,
        upsampler: str = "",
        resi_connection: str = "1conv",
        num_in_ch: int | None = None,
        num_out_ch: int | None = None,
    ) -> None:
        super().__init__()
        upsampler = upsampler or ""  # the official docstring also allows None
        if upsampler not in UPSAMPLER_SCALES:
            valid = ", ".join(repr(u) for u in UPSAMPLER_SCALES)
            raise ConfigError(f"model.net.upsampler={upsampler!r} is not valid; use one of {valid}")
        why = f"(model.net.upsampler={upsampler!r})"
        self.scale = check_scale(scale, UPSAMPLER_SCALES[upsampler], owner="swinir", why=why)
        if num_in_ch is not None and num_in_ch != in_chans and in_chans != 3:
            raise ConfigError(
                f"model.net.num_in_ch={num_in_ch} and model.net.in_chans={in_chans} disagree; set one"
            )
        in_chans = in_chans if num_in_ch is None else num_in_ch
        if num_out_ch is not None and num_out_ch != in_chans:
            raise ConfigError(
                f"swinir outputs as many channels as it takes: model.net.num_out_ch={num_out_ch} "
                f"must equal the input channels ({in_chans})"
            )
        if resi_connection not in RESI_CONNECTIONS:
            raise ConfigError(
                f"model.net.resi_connection={resi_connection!r} is not valid; use '1conv' or '3conv'"
            )
        if patch_size != 1:
            raise ConfigError(
                f"model.net.patch_size={patch_size!r}: SwinIR embeds every pixel; use patch_size=1"
            )
        check_positive("swinir", in_chans=in_chans, embed_dim=embed_dim, window_size=window_size)
        depths, num_heads = _int_list(depths, "depths"), _int_list(num_heads, "num_heads")
        if len(depths) != len(num_heads) or any(embed_dim % h for h in num_heads):
            raise ConfigError(
                f"model.net.depths={depths} and num_heads={num_heads} need one entry per RSTB, "
                f"and embed_dim={embed_dim} must be divisible by every head count"
            )
        if not img_range > 0:
            raise ConfigError(f"model.net.img_range={img_range!r} must be positive")
        resolution = _pair(img_size, "img_size")
        # Official rule: windows no larger than the training patch; then blocks never shift.
        block_window, shift = window_size, window_size // 2
        if min(resolution) <= window_size:
            block_window, shift = min(resolution), 0
            if window_size % block_window:
                raise ConfigError(
                    f"model.net.img_size={img_size!r} is smaller than window_size={window_size} "
                    f"and does not divide it; use img_size >= window_size (the training LR patch)"
                )
        self.window_size, self.block_window, self.shift_size = window_size, block_window, shift
        # Tiled inference starts tiles on the window grid: the grid is anchored at the origin.
        self.tile_align = window_size
        self.upsampler, self.img_range = upsampler, float(img_range)
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,)  # official: no mean for grey images
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self._masks: OrderedDict[tuple, Tensor] = OrderedDict()

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = nn.Module()  # holds only the optional norm: key patch_embed.norm
        self.patch_embed.norm = nn.LayerNorm(embed_dim) if patch_norm else None
        self.absolute_pos_embed = (
            nn.Parameter(torch.zeros(1, resolution[0] * resolution[1], embed_dim)) if ape else None
        )
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList(
            RSTB(
                embed_dim,
                depth,
                heads,
                block_window,
                shift,
                drop_path=rates[sum(depths[:i]) : sum(depths[: i + 1])],
                resi_connection=resi_connection,
                use_checkpoint=use_checkpoint,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
            )
            for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True))
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = conv_block(embed_dim, resi_connection)
        self._build_reconstruction(upsampler, embed_dim, in_chans)
        self.apply(_init_weights)
        if ape:
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)

    def _build_reconstruction(self, upsampler: str, embed_dim: int, out_ch: int) -> None:
        if upsampler in ("pixelshuffle", "nearest+conv"):
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
        if upsampler == "pixelshuffle":
            self.upsample = Upsample(self.scale, NUM_FEAT)
            self.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(embed_dim, self.scale**2 * out_ch, 3, 1, 1), nn.PixelShuffle(self.scale)
            )
        elif upsampler == "nearest+conv":
            self.conv_up1 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            if self.scale == 4:
                self.conv_up2 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_hr = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
            self.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, out_ch, 3, 1, 1)

    def cached_shift_mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        """The (nW, N, N) shift mask of an (h, w) token map, cached for the last few sizes."""
        if not self.shift_size:
            return None
        args = (h, w, self.block_window, self.shift_size, device)
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return shift_mask(*args)  # symbolic sizes: no Python-side cache lookup
        key = (h, w, str(device))
        if key in self._masks:
            self._masks.move_to_end(key)
        else:
            with torch.inference_mode(False):  # a normal tensor, usable later in training
                self._masks[key] = shift_mask(*args)
            while len(self._masks) > MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return self._masks[key]

    def forward_features(self, x: Tensor) -> Tensor:
        """Deep features: RSTBs over the (B, H * W, C) tokens of the (B, C, H, W) map."""
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        if self.patch_embed.norm is not None:
            x = self.patch_embed.norm(x)
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        mask = self.cached_shift_mask(h, w, x.device)
        for layer in self.layers:
            x = layer(x, (h, w), mask)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ws = self.window_size
        # Reflect-pad to ws * ceil(n / ws), written so a symbolic tracer sees multiples of ws.
        pad_h, pad_w = (h + ws - 1) // ws * ws - h, (w + ws - 1) // ws * ws - w
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        if self.upsampler == "":
            first = self.conv_first(x)
            x = x + self.conv_last(self.conv_after_body(self.forward_features(first)) + first)
        else:
            x = self.conv_first(x)
            x = self._reconstruct(self.conv_after_body(self.forward_features(x)) + x)
        x = x / self.img_range + mean
        return x[..., : h * self.scale, : w * self.scale]

    def _reconstruct(self, x: Tensor) -> Tensor:
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(x)
        x = self.conv_before_upsample(x)
        if self.upsampler == "pixelshuffle":
            return self.conv_last(self.upsample(x))
        x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
        if self.scale == 4:
            x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(x)))


@torch.no_grad()
def _init_weights(m: nn.Module) -> None:
    """Official init: truncated normal (std 0.02) linear weights, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
