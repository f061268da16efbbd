"""Building blocks shared by the architectures: sub-pixel upsampler, mean shift, init, checks."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from medsr.errors import ConfigError

# RGB mean of DIV2K (EDSR-PyTorch `common.MeanShift`, BasicSR `rgb_mean`).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
# EDSR/RCAN run their body on the 0-255 scale (the papers, EDSR-PyTorch `rgb_range=255`, BasicSR
# `img_range=255`); a file trained that way only reproduces its outputs with the same range.
DEFAULT_IMG_RANGE = 255.0


def check_positive(arch: str, **values: object) -> None:
    """Raise ConfigError for any network size setting that is not a positive int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"model.net.{name}={value!r} is invalid for {arch}; it must be a positive integer"
            )


def check_same_channels(arch: str, num_in_ch: int, num_out_ch: int) -> None:
    """EDSR/RCAN add the input mean back to the output, so the channel counts must agree."""
    if num_in_ch != num_out_ch:
        raise ConfigError(
            f"{arch} adds the input mean back to its output, so model.net.num_out_ch ({num_out_ch}) "
            f"must equal model.net.num_in_ch ({num_in_ch})"
        )


class MeanShift(nn.Module):
    """Subtracts (``sign=-1``) or adds back (``sign=+1``) a per-channel mean, with range scaling.

    ``sign=-1``: ``(x - mean) * img_range``; ``sign=+1``: ``x / img_range + mean``. The mean is a
    non-persistent buffer, so it follows ``.to(device)`` but stays out of the state dict (the
    BasicSR key layout, which has no mean keys).

    Args:
        num_ch: number of channels.
        rgb_mean: per-channel mean in [0, 1]; ``None`` is the DIV2K RGB mean for 3 channels and
            its average for any other channel count (grayscale inputs).
        img_range: range the network body works in (255 in the papers).
        sign: -1 to normalise the input, +1 to restore the output.
    """

    def __init__(
        self, num_ch: int, rgb_mean: Iterable[float] | None, img_range: float, sign: int
    ) -> None:
        super().__init__()
        if rgb_mean is None:
            rgb_mean = DIV2K_RGB_MEAN if num_ch == 3 else (sum(DIV2K_RGB_MEAN) / 3,) * num_ch
        mean = torch.tensor([float(v) for v in rgb_mean], dtype=torch.float32)
        if mean.numel() != num_ch:
            raise ConfigError(
                f"model.net.rgb_mean has {mean.numel()} values but the network has {num_ch} channels"
            )
        if not img_range > 0:
            raise ConfigError(
                f"model.net.img_range={img_range!r} must be positive (255 in the papers)"
            )
        self.register_buffer("mean", mean.view(1, num_ch, 1, 1), persistent=False)
        self.img_range = float(img_range)
        self.sign = sign

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        if self.sign < 0:
            return (x - mean) * self.img_range
        return x / self.img_range + mean


def model_range(model: nn.Module) -> tuple[Tensor | None, float | None]:
    """(mean, img_range) of an EDSR/RCAN-style model (its input MeanShift), else (None, None)."""
    sub = getattr(model, "sub_mean", None)
    if isinstance(sub, MeanShift):
        return sub.mean, sub.img_range
    return None, None


class Upsample(nn.Sequential):
    """Sub-pixel convolution upsampler (Shi et al., CVPR 2016) as in EDSR and RCAN.

    x2^n: n times (conv to 4C, PixelShuffle(2)); x3: conv to 9C, PixelShuffle(3). Convs sit at
    the even indices, which is the key layout of both EDSR-PyTorch (`tail.0.*`) and BasicSR
    (`upsample.*`).

    Args:
        scale: 2, 3, 4 (any power of two works).
        num_feat: channels in and out.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale >= 2 and scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ConfigError(
                f"scale={scale} is not supported by the sub-pixel upsampler; use 2, 3 or 4"
            )
        super().__init__(*layers)


@torch.no_grad()
def scaled_kaiming_init(modules: Iterable[nn.Module], scale: float) -> None:
    """Kaiming-normal init scaled by ``scale``, zero bias (ESRGAN: 0.1 eases training deep nets)."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.zero_()
