"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018).

Key names follow BasicSR's ``RCAN`` so its files load as they are; the official RCAN releases
(EDSR-PyTorch code base) are converted by :mod:`medsr.models.weights.keymaps`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from medsr.errors import ConfigError
from medsr.models.common import (
    DEFAULT_IMG_RANGE,
    MeanShift,
    Upsample,
    check_positive,
    check_same_channels,
)
from medsr.models.registry import register_model
from medsr.ops.scales import check_scale


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate: global average pool, 1x1 down, ReLU, 1x1 up, sigmoid.

    Args:
        num_feat: channels.
        squeeze_factor: channel reduction of the bottleneck (16 in the paper).
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel attention block: conv-ReLU-conv-attention with an identity skip.

    Args:
        num_feat: channels.
        squeeze_factor: channel reduction of the attention bottleneck.
        res_scale: residual scaling (1 in the paper; the official code ignores it).
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.rcab(x) * self.res_scale


class ResidualGroup(nn.Module):
    """``num_block`` RCABs and a conv, with a short skip around them (residual in residual).

    Args:
        num_feat: channels.
        num_block: RCABs in the group.
        squeeze_factor: channel reduction of the attention bottleneck.
        res_scale: residual scaling inside each RCAB.
    """

    def __init__(
        self, num_feat: int, num_block: int, squeeze_factor: int = 16, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        self.residual_group = nn.Sequential(
            *(RCAB(num_feat, squeeze_factor, res_scale) for _ in range(num_block))
        )
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.residual_group(x))


@register_model("rcan")
class RCAN(nn.Module):
    """RCAN: residual groups of channel-attention blocks, a long skip and a sub-pixel upsampler.

    Paper size: 10 groups of 20 RCABs, 64 features, squeeze factor 16. Input and output in
    [0, 1]; inside, the DIV2K mean is subtracted and the body works on the ``img_range`` (255)
    scale, as in the official code.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        num_feat: channels of the trunk.
        num_group: residual groups.
        num_block: RCABs per group.
        squeeze_factor: channel reduction in the attention (``num_feat // squeeze_factor >= 1``).
        res_scale: residual scaling in each RCAB.
        num_in_ch: input channels (3 for RGB, 1 for grayscale).
        num_out_ch: output channels (must equal ``num_in_ch``: the mean is added back).
        img_range: range the body works in; keep 255 to use published weights unchanged.
        rgb_mean: per-channel mean in [0, 1]; ``None`` = DIV2K RGB mean.
    """

    scales = (2, 3, 4)

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_group: int = 10,
        num_block: int = 20,
        squeeze_factor: int = 16,
        res_scale: float = 1.0,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        img_range: float = DEFAULT_IMG_RANGE,
        rgb_mean: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.scale = check_scale(scale, self.scales, owner="rcan")
        check_positive(
            "rcan",
            num_feat=num_feat,
            num_group=num_group,
            num_block=num_block,
            squeeze_factor=squeeze_factor,
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
        )
        if num_feat // squeeze_factor < 1:
            raise ConfigError(
                f"model.net.squeeze_factor={squeeze_factor} leaves no attention channels for "
                f"num_feat={num_feat}; use squeeze_factor <= num_feat"
            )
        check_same_channels("rcan", num_in_ch, num_out_ch)
        self.sub_mean = MeanShift(num_in_ch, rgb_mean, img_range, sign=-1)
        self.add_mean = MeanShift(num_out_ch, rgb_mean, img_range, sign=+1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(
            *(
                ResidualGroup(num_feat, num_block, squeeze_factor, res_scale)
                for _ in range(num_group)
            )
        )
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_first(self.sub_mean(x))
        x = x + self.conv_after_body(self.body(x))  # long skip
        return self.add_mean(self.conv_last(self.upsample(x)))
