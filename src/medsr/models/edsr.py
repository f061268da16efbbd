"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017).

Key names follow BasicSR's ``EDSR`` so its files load as they are; EDSR-PyTorch releases are
converted by :mod:`medsr.models.weights.keymaps`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from medsr.models.common import (
    DEFAULT_IMG_RANGE,
    MeanShift,
    Upsample,
    check_positive,
    check_same_channels,
)
from medsr.models.registry import register_model
from medsr.ops.scales import check_scale


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with an identity skip and no batch norm (EDSR removes BN from SRResNet).

    Args:
        num_feat: channels.
        res_scale: residual scaling (0.1 in the 256-feature EDSR to stabilise training).
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


@register_model("edsr")
class EDSR(nn.Module):
    """EDSR: a residual trunk without BN, a long skip and a sub-pixel upsampler.

    The paper's two sizes: baseline ``num_feat=64, num_block=16, res_scale=1`` and full
    ``num_feat=256, num_block=32, res_scale=0.1``. Input and output are in [0, 1]; inside, the
    DIV2K mean is subtracted and the body works on the ``img_range`` (255) scale, as in the paper.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        num_feat: channels of the trunk.
        num_block: residual blocks.
        res_scale: residual scaling in each block.
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
        num_block: int = 16,
        res_scale: float = 1.0,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        img_range: float = DEFAULT_IMG_RANGE,
        rgb_mean: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.scale = check_scale(scale, self.scales, owner="edsr")
        check_positive(
            "edsr",
            num_feat=num_feat,
            num_block=num_block,
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
        )
        check_same_channels("edsr", num_in_ch, num_out_ch)
        self.sub_mean = MeanShift(num_in_ch, rgb_mean, img_range, sign=-1)
        self.add_mean = MeanShift(num_out_ch, rgb_mean, img_range, sign=+1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(
            *(ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block))
        )
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_first(self.sub_mean(x))
        x = x + self.conv_after_body(self.body(x))  # long skip over the whole trunk
        return self.add_mean(self.conv_last(self.upsample(x)))
