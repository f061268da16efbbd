"""VGG-style discriminator of SRGAN/ESRGAN (Ledig et al., CVPR 2017; Wang et al., ECCVW 2018).

Key names follow BasicSR's ``VGGStyleDiscriminator``, so its ESRGAN discriminator files load.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from medsr.errors import ConfigError


class VGGStyleDiscriminator(nn.Module):
    """Conv-BN-LeakyReLU(0.2) stages halving the size down to 4x4 with 512 channels, then
    linear 100 and linear 1 (a raw logit; the relativistic GAN loss applies the sigmoid).

    Each stage is a 3x3 stride-1 conv then a 4x4 stride-2 conv; channels 64, 128, 256, 512, 512.
    128x128 patches use five stages (ESRGAN), 256x256 six; any power of two >= 32 works (small
    patches for tests and quick runs get fewer stages, channels capped at ``8 * num_feat``).

    Args:
        num_in_ch: input channels.
        num_feat: channels of the first stage (doubled up to ``8 * num_feat``).
        input_size: HR patch size the linear head is built for (a power of two >= 32; ESRGAN: 128).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if not isinstance(input_size, int) or input_size < 32 or input_size & (input_size - 1):
            raise ConfigError(
                f"discriminator input_size={input_size!r} (the HR training patch, data.patch_size) "
                "is not supported; use a power of two >= 32: data.patch_size=128 (ESRGAN's), 64 "
                "or 256"
            )
        self.input_size = input_size
        # Stage k: in -> out (3x3, s1), out -> out (4x4, s2); the very first conv has a bias, no BN.
        chans = [min(num_feat * 2**k, num_feat * 8) for k in range(int(math.log2(input_size // 4)))]
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat)
        for k in range(1, len(chans)):
            c_in, c_out = chans[k - 1], chans[k]
            setattr(self, f"conv{k}_0", nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
            setattr(self, f"bn{k}_0", nn.BatchNorm2d(c_out))
            setattr(self, f"conv{k}_1", nn.Conv2d(c_out, c_out, 4, 2, 1, bias=False))
            setattr(self, f"bn{k}_1", nn.BatchNorm2d(c_out))
        self.num_stages = len(chans)
        self.linear1 = nn.Linear(chans[-1] * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ConfigError(
                f"the discriminator was built for {self.input_size}x{self.input_size} HR patches but got "
                f"{x.shape[-2]}x{x.shape[-1]}; set the HR patch size to {self.input_size} or the "
                f"discriminator's input_size to match"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for k in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{k}_0")(getattr(self, f"conv{k}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{k}_1")(getattr(self, f"conv{k}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))  # 4x4 spatial left
        return self.linear2(feat)
