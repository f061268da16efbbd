"""Image operations on batched tensors, on any device.

- :func:`imresize`: MATLAB-exact bicubic resize (the benchmark degradation).
- :func:`quantize`: the rounding rule at the data boundary (8 bits, or any bit depth).
- :func:`mod_crop`, :func:`check_scale`: the size rules.
- :func:`rgb_to_y`: MATLAB ``rgb2ycbcr`` luma for Y-channel metrics.
- :func:`tiled_forward`, :func:`receptive_radius`: seam-free tile-by-tile inference.
- :func:`self_ensemble`: x8 geometric self-ensemble.
"""

from medsr.ops.color import rgb_to_y
from medsr.ops.ensemble import self_ensemble
from medsr.ops.imresize import imresize, mod_crop
from medsr.ops.quantize import quantize
from medsr.ops.scales import SUPPORTED_SCALES, check_scale
from medsr.ops.tiling import receptive_radius, tiled_forward

__all__ = [
    "SUPPORTED_SCALES",
    "check_scale",
    "imresize",
    "mod_crop",
    "quantize",
    "receptive_radius",
    "rgb_to_y",
    "self_ensemble",
    "tiled_forward",
]
