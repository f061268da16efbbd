"""RRDBNet, the ESRGAN generator (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative
Adversarial Networks", ECCVW 2018), with Real-ESRGAN's x2 variant (Wang et al., ICCVW 2021).

Key names follow BasicSR's ``RRDBNet`` (also Real-ESRGAN's); the original ESRGAN releases are
converted by :mod:`medsr.models.weights.keymaps`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsr.models.common import check_positive, scaled_kaiming_init
from medsr.models.registry import register_model
from medsr.ops.scales import check_scale

_NO_X3 = (
    "RRDBNet upsamples with two nearest-neighbour x2 steps (x4); x2 is the Real-ESRGAN variant "
    "that pixel-unshuffles the input first. No published RRDBNet has a x3 head; for x3 use "
    "model=edsr or model=rcan."
)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (each sees all earlier outputs), LeakyReLU(0.2).

    Args:
        num_feat: channels in and out.
        num_grow_ch: channels each of the first four convs adds (growth rate).
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        # ESRGAN: smaller initialisation (Kaiming x 0.1) makes the very deep residual net trainable.
        scaled_kaiming_init([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + x5 * 0.2  # residual scaling 0.2 (ESRGAN)


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks and an outer scaled skip.

    Args:
        num_feat: channels.
        num_grow_ch: growth rate of the dense blocks.
    """

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.rdb3(self.rdb2(self.rdb1(x))) * 0.2  # residual scaling 0.2 (ESRGAN)


@register_model("rrdbnet")
class RRDBNet(nn.Module):
    """RRDBNet: RRDB trunk with a long skip, two nearest x2 upsampling convs, HR conv.

    Works on [0, 1] directly (no mean shift). x4 natively; x2 pixel-unshuffles the input by 2
    first (so the first conv takes ``4 * num_in_ch`` channels) and then runs the x4 net, which
    is how the Real-ESRGAN x2 release is built. For x2, inputs of odd height or width are
    reflect-padded by one pixel and the output is cropped back to ``2H x 2W``.

    Args:
        scale: 4, or 2 (pixel-unshuffle variant). No x3 exists.
        num_feat: channels of the trunk.
        num_block: RRDBs in the trunk (23 in ESRGAN).
        num_grow_ch: growth rate of the dense blocks.
        num_in_ch: input channels.
        num_out_ch: output channels.
    """

    scales = (2, 4)

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
    ) -> None:
        super().__init__()
        self.scale = check_scale(scale, self.scales, owner="rrdbnet", why=_NO_X3)
        check_positive(
            "rrdbnet",
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
        )
        self.unshuffle = 2 if scale == 2 else 1
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if self.unshuffle > 1:
            pad_h, pad_w = h % self.unshuffle, w % self.unshuffle
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))  # long skip
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out[..., : h * self.scale, : w * self.scale]
