"""Pure ``nn.Module`` networks, their registry and weight files.

``build_model(name, scale, **net_kwargs)`` builds ``edsr``, ``rcan``, ``rrdbnet`` or ``swinir``;
``load_pretrained(model, path)`` fills it from any supported file (official releases included);
``save_weights(model, path)`` writes ``.safetensors`` / ``.pth``.
"""

# Architecture modules are imported by name so each registers itself (no folder scanning).
from medsr.models import edsr, interpolation, rcan, rrdbnet, swinir  # noqa: F401
from medsr.models.discriminator import VGGStyleDiscriminator
from medsr.models.discriminator_unet import UNetDiscriminatorSN
from medsr.models.edsr import EDSR
from medsr.models.rcan import RCAN
from medsr.models.registry import build_model, list_models, register_model
from medsr.models.rrdbnet import RRDBNet
from medsr.models.swinir import SwinIR
from medsr.models.vgg import VGG19FeatureExtractor
from medsr.models.weights import load_pretrained, read_spec, save_weights

__all__ = [
    "EDSR",
    "RCAN",
    "RRDBNet",
    "SwinIR",
    "UNetDiscriminatorSN",
    "VGG19FeatureExtractor",
    "VGGStyleDiscriminator",
    "build_model",
    "list_models",
    "load_pretrained",
    "read_spec",
    "register_model",
    "save_weights",
]
