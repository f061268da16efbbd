"""Weights files: formats and containers (``files``), official key layouts (``keymaps``),
strict loading (``load``), writing and exporting (``export``), network interpolation (``blend``)."""

from medsr.models.weights.export import export_discriminator, export_generator, save_weights
from medsr.models.weights.load import load_pretrained, read_spec

__all__ = [
    "export_discriminator",
    "export_generator",
    "load_pretrained",
    "read_spec",
    "save_weights",
]
