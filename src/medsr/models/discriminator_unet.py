"""U-Net discriminator with spectral normalisation (Real-ESRGAN, Wang et al., ICCVW 2021).

Key names follow BasicSR's ``UNetDiscriminatorSN`` (``conv1.weight_orig``, ``conv1.weight_u``,
``conv1.weight_v``, ...), so the official ``RealESRGAN_x4plus_netD.pth`` loads. It returns one
realness logit per pixel ``(B, 1, H, W)``: the per-pixel feedback that lets a GAN judge local
textures of images degraded in complex ways. Any input whose sides are multiples of 8 works.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

from medsr.errors import ConfigError


class UNetDiscriminatorSN(nn.Module):
    """Three stride-2 downsampling convs (64 -> 128 -> 256 -> 512 channels), three bilinear x2
    upsampling stages back to 64 channels with skip connections, two more convs and a 1-channel
    head; every conv but the first and the last is spectrally normalised; LeakyReLU(0.2).

    Args:
        num_in_ch: input channels.
        num_feat: channels of the first stage (Real-ESRGAN: 64).
        skip_connection: add the encoder features to the decoder's (Real-ESRGAN: True).
    """

    def __init__(
        self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True
    ) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ConfigError(
                f"the U-Net discriminator needs HR sides that are multiples of 8, got "
                f"{x.shape[-2]}x{x.shape[-1]}; set data.patch_size to a multiple of 8"
            )

        def act(t: Tensor) -> Tensor:
            return F.leaky_relu(t, 0.2, inplace=True)

        def up(t: Tensor) -> Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)
