"""LightningModules: training logic around the pure ``medsr.models`` networks."""

from medsr.lit.esrgan_module import ESRGANModule
from medsr.lit.sr_module import SRModule

__all__ = ["ESRGANModule", "SRModule"]
