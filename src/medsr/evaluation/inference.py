"""Applying a trained network to images: the :class:`Upscaler` (networks come from
``evaluation.networks``).

Shared by ``medsr.evaluate`` and ``medsr.predict``. The Upscaler runs a network on one image
of any size and kind: tiles (``medsr.ops.tiling``) with an out-of-memory fallback, x8
self-ensemble (and its spread), back-projection onto the input (``evaluation.consistency``),
bf16 autocast on GPUs, grayscale through an RGB network and back, RGBA with the
alpha channel upscaled by bicubic interpolation.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from medsr.errors import ConfigError, DataError
from medsr.evaluation.consistency import BackProjection, finish_window, projected_radius
from medsr.models.interpolation import Interpolation
from medsr.ops import imresize
from medsr.ops.ensemble import self_ensemble_spread
from medsr.ops.quantize import levels, to_integer
from medsr.ops.tiling import Sink, receptive_radius, tiled_forward_with_fallback

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "32", "bf16", "16")


def parse_tta(value: object) -> bool:
    """``tta=x8`` -> True; null / none / false -> False."""
    if value in (None, False, "none", "null", ""):
        return False
    if str(value).lower() == "x8":
        return True
    raise ConfigError(
        f"tta={value!r} is not valid; use tta=x8 (geometric self-ensemble) or leave it unset"
    )


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = float32).

    ``auto``: bf16 on GPUs that support it, fp16 on older GPUs, float32 on CPU (bf16 on CPU is
    far slower than float32).
    """
    precision = str(precision)
    if precision not in PRECISIONS:
        raise ConfigError(
            f"precision={precision!r} is not valid; use one of {', '.join(PRECISIONS)}"
        )
    if precision == "32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "16":
        return torch.float16
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def input_channels(net: nn.Module) -> int | None:
    """Channels the network expects (None: any, as interpolation)."""
    if isinstance(net, Interpolation):
        return None
    net_kwargs = (getattr(net, "medsr_spec", None) or {}).get("net") or {}
    return int(net_kwargs.get("num_in_ch", net_kwargs.get("in_chans", 3)))  # in_chans: SwinIR


class Upscaler:
    """Run ``net`` on one image of any size, channel count and bit depth.

    Args:
        net: LR -> SR network on [0, 1] tensors.
        scale: its upscaling factor.
        device: where the network runs (the image stays on the host).
        precision: ``auto`` (bf16 on GPU, float32 on CPU), ``32``, ``bf16`` or ``16``.
        tta: x8 geometric self-ensemble.
        tile: tile side in LR pixels (0 = whole image; halved on out-of-memory errors).
        tile_overlap: LR pixels shared by neighbouring tiles.
        projection: back-project each output (each tile) onto its input (``consistency=project``).
        spread: with ``tta``, the 8 outputs' spread (levels) as one more output channel; whole
            images return it in ``last_spread`` (1, 1, sH, sW) instead.
    """

    def __init__(
        self,
        net: nn.Module,
        scale: int,
        device: torch.device | str = "cpu",
        precision: str = "auto",
        tta: bool = False,
        tile: int = 0,
        tile_overlap: int = 32,
        projection: BackProjection | None = None,
        spread: bool = False,
    ) -> None:
        if tile < 0 or tile_overlap < 0:
            raise ConfigError(
                f"tile={tile} and tile_overlap={tile_overlap} must be >= 0 (tile=0: whole image)"
            )
        if tile and tile_overlap >= tile:
            raise ConfigError(f"tile_overlap={tile_overlap} must be less than tile={tile}")
        self.device = torch.device(device)
        # NHWC convolutions are faster on CPUs (oneDNN) and on GPU tensor cores alike.
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in net.modules())
        fmt = torch.channels_last if self.channels_last else torch.preserve_format
        self.net = net.to(self.device, memory_format=fmt).eval()
        self.scale = scale
        self.amp = autocast_dtype(precision, self.device)
        self.tta = tta
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.in_channels = input_channels(net)
        self.radius = receptive_radius(self.net, channels=self.in_channels or 3)
        self.projection, self.spread = projection, spread and tta
        self.stitch_radius = projected_radius(self.radius, projection)  # = radius without one
        # Tiles start and end on the network's grid (SwinIR: its attention windows).
        self.align = int(getattr(self.net, "tile_align", 1))
        if tile and tile_overlap >= tile - 2 * (self.align - 1):
            raise ConfigError(
                f"tile={tile} leaves no room for tile_overlap={tile_overlap} once tiles start and "
                f"end on the network's {self.align}-pixel grid; use tile >= "
                f"{tile_overlap + 2 * self.align - 1}"
            )
        self.tile_used = tile  # after out-of-memory fallbacks
        self.last_spread: Tensor | None = None

    def _run_net(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def _colour(self, x: Tensor) -> Tensor:
        """The network on 1- or 3-channel [0, 1] input, adapting the channel count."""
        c, need = x.shape[1], self.in_channels
        if need is None or c == need:
            return self._run_net(x)
        if c == 1 and need == 3:  # grey through an RGB network, averaged back to one channel
            return self._run_net(x.expand(-1, 3, -1, -1)).float().mean(dim=1, keepdim=True)
        if c == 3 and need == 1:  # RGB through a grey network, channel by channel
            return torch.cat([self._run_net(x[:, i : i + 1]) for i in range(3)], dim=1)
        raise ConfigError(
            f"the network takes {need}-channel images; cannot apply it to {c} channels"
        )

    def window_fn(self, max_value: float, bits: int = 8) -> Callable[[Tensor], Tensor]:
        """(1, C, h, w) window of integer levels (or floats in [0, 1] if ``max_value`` is 1)
        -> (1, C, s*h, s*w) float32 on [0, 1], unclamped (+ the spread channel, see ``spread``)."""

        def run(window: Tensor) -> Tensor:
            x = window.float()
            if max_value != 1:
                x = x / max_value
            colour, alpha = (x[:, :3], x[:, 3:]) if x.shape[1] == 4 else (x, None)
            amp = (
                torch.autocast(self.device.type, dtype=self.amp)
                if self.amp
                else contextlib.nullcontext()
            )
            with torch.inference_mode(), amp:
                if self.tta:
                    out, std = self_ensemble_spread(self._colour, colour, spread=self.spread)
                else:
                    out, std = self._colour(colour), None
            with torch.inference_mode():
                alpha = None if alpha is None else imresize(alpha, self.scale)  # a mask: bicubic
                return finish_window(out, colour, self.scale, self.projection, bits, alpha, std)

        return run

    def __call__(
        self,
        x: Tensor,
        max_value: float = 1.0,
        sink: Sink | None = None,
        on_tile: Callable[[int, int], None] | None = None,
        bits: int | None = None,
    ) -> Tensor | None:
        """Upscale one (1, C, H, W) host tensor (floats in [0, 1], or integer levels up to
        ``max_value``). Returns the float32 (1, C, sH, sW) output, or None when ``sink``
        receives it row block by row block (see ``medsr.ops.tiling.tiled_forward``).
        ``bits``: the source depth (default from ``max_value``), unit of tolerance and spread."""
        bits = bits or (16 if max_value > 255 else 8)
        out, self.tile_used = tiled_forward_with_fallback(
            self.window_fn(max_value, bits),
            x,
            self.scale,
            self.tile,
            self.tile_overlap,
            radius=self.stitch_radius,
            align=self.align,
            device=self.device,
            sink=sink,
            on_tile=on_tile,
        )
        if self.spread and out is not None:
            out, self.last_spread = out[:, :-1], out[:, -1:]
        return out


def upscale_array(
    upscaler: Upscaler,
    image: np.ndarray,
    on_tile: Callable[[int, int], None] | None = None,
    out: np.ndarray | None = None,
    spread: np.ndarray | None = None,
    bits: int | None = None,
) -> np.ndarray:
    """(H, W, C) uint8/uint16 array -> (sH, sW, C) array of the same dtype.

    The input is read tile by tile from the array itself (no float copy of the image) and the
    output is written into its final integer array row block by row block.

    Args:
        upscaler: the network and its tiling settings.
        image: the input image.
        on_tile: progress callback ``on_tile(done, total)``.
        out: optional preallocated (sH, sW, C) array of the image's dtype to write into.
        spread: (sH, sW) float32 array for the spread of an Upscaler with ``spread`` on.
        bits: the levels the values use (None: 8 for uint8, 16 for uint16; 12 for 12-bit
            scanner data): the network sees ``value / (2**bits - 1)``, the output is rounded
            to the same levels.
    """
    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 3:
        raise DataError(
            f"expected an (H, W, C) uint8/uint16 image, got {image.dtype} {image.shape}"
        )
    h, w, c = image.shape
    s = upscaler.scale
    bits = bits or (8 if image.dtype == np.uint8 else 16)
    max_value = levels(bits)
    if out is None:
        out = np.empty((h * s, w * s, c), dtype=image.dtype)
    elif out.shape != (h * s, w * s, c) or out.dtype != image.dtype:
        raise ValueError(
            f"out must be a {(h * s, w * s, c)} {image.dtype} array, got {out.shape} {out.dtype}"
        )

    def sink(first: int, block: torch.Tensor) -> None:
        rows = slice(first, first + block.shape[1])
        out[rows] = to_integer(block[:c], bits).permute(1, 2, 0).numpy()
        if spread is not None and upscaler.spread:
            spread[rows] = block[c].numpy()

    with warnings.catch_warnings():  # decoded arrays may be read-only; the view is only read
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(image).permute(2, 0, 1)[None]  # a view: no copy of the image
    upscaler(x, max_value=max_value, sink=sink, on_tile=on_tile)
    return out
