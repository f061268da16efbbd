"""Real-ESRGAN's U-Net discriminator with spectral norm: official key layout, shapes, SN."""

from __future__ import annotations

import pytest
import torch

from medsr.errors import ConfigError
from medsr.models.discriminator_unet import UNetDiscriminatorSN

# RealESRGAN_x4plus_netD.pth (BasicSR UNetDiscriminatorSN, num_feat 64): name -> shape.
# torch's spectral_norm stores weight_orig, u (out channels) and v (in * kh * kw).
_SN = {
    "conv1": (128, 64, 4, 4),
    "conv2": (256, 128, 4, 4),
    "conv3": (512, 256, 4, 4),
    "conv4": (256, 512, 3, 3),
    "conv5": (128, 256, 3, 3),
    "conv6": (64, 128, 3, 3),
    "conv7": (64, 64, 3, 3),
    "conv8": (64, 64, 3, 3),
}
OFFICIAL = {
    "conv0.weight": (64, 3, 3, 3),
    "conv0.bias": (64,),
    "conv9.weight": (1, 64, 3, 3),
    "conv9.bias": (1,),
}
for _name, _shape in _SN.items():
    OFFICIAL[f"{_name}.weight_orig"] = _shape
    OFFICIAL[f"{_name}.weight_u"] = (_shape[0],)
    OFFICIAL[f"{_name}.weight_v"] = (_shape[1] * _shape[2] * _shape[3],)


def test_state_dict_has_the_official_keys_and_shapes():
    sd = UNetDiscriminatorSN(3, 64).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == OFFICIAL


def test_a_basicsr_file_loads_strictly(tmp_path):
    src = UNetDiscriminatorSN(3, 64)
    path = tmp_path / "netD.pth"
    torch.save({"params": src.state_dict()}, path)
    dst = UNetDiscriminatorSN(3, 64)
    dst.load_state_dict(torch.load(path, weights_only=True)["params"], strict=True)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(dst.eval()(x), src.eval()(x))


def test_per_pixel_logits_and_spectral_norm():
    net = UNetDiscriminatorSN(1, 8)
    out = net(torch.rand(2, 1, 48, 40))
    assert out.shape == (2, 1, 48, 40)
    net.train()
    for _ in range(30):  # power iterations converge to the top singular value
        net(torch.rand(1, 1, 16, 16))
    w = net.conv2.weight.detach().flatten(1)  # the normalised weight of the last forward
    assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1.0) < 0.02
    with pytest.raises(ConfigError, match="multiples of 8"):
        net(torch.rand(1, 1, 36, 36))
