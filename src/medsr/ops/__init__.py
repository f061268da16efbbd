"""Image operations on batched tensors, on any device.

- :func:`imresize`: MATLAB-exact bicubic resize (the benchmark degradation).
- :func:`quantize`, :func:`mod_crop`: the 8-bit and size rules at the data boundary.
- :func:`rgb_to_y`: MATLAB ``rgb2ycbcr`` luma for Y-channel metrics.
- :func:`tiled_forward`, :func:`receptive_radius`: seam-free tile-by-tile inference.
- :func:`self_ensemble`: x8 geometric self-ensemble.
"""

from medsr.ops.color import rgb_to_y
from medsr.ops.ensemble import self_ensemble
from medsr.ops.imresize import imresize, mod_crop, quantize
from medsr.ops.tiling import receptive_radius, tiled_forward

__all__ = [
    "imresize",
    "mod_crop",
    "quantize",
    "receptive_radius",
    "rgb_to_y",
    "self_ensemble",
    "tiled_forward",
]
