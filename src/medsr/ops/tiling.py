"""Tiled inference: upscale an image of any size with memory bounded by the tile, not the image.

The image stays in host memory; windows of ``tile`` LR pixels go to the device one at a time;
neighbouring windows share at least ``overlap`` LR pixels (SwinIR's ``--tile``/``--tile_overlap``
meaning). The output is assembled one row of windows at a time, so the host holds one strip of
float output plus the caller's output array, never a float copy of the whole result.

Stitching: when the network's receptive field fits in half of the shared band
(``2 * receptive_radius <= overlap``) every output pixel is taken from a window in which all
of its inputs are real image pixels, with a hard cut in the middle of the band, so the result
equals the untiled one up to float rounding. Otherwise (or when the radius is unknown, or the
network sees the whole image, as RCAN's channel attention does) the windows are cross-faded
linearly over the central half of the band, which leaves no visible seam while giving no weight
to the pixels nearest each window's edge, where its border effects are largest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from medsr.errors import ConfigError, MedsrError

log = logging.getLogger(__name__)

Window = tuple[int, int]  # start, stop (LR pixels)
Sink = Callable[[int, Tensor], None]  # (first HR row, (C, rows, W_hr) float32 on the host)

# Share of the shared band the cross-fade spans, centred: a window gets no weight within
# (1 - FADE_FRACTION) / 2 of the band from its own edge, where border effects are largest.
FADE_FRACTION = 0.5
_INTERP_RADIUS = {"nearest": 1, "bilinear": 1, "bicubic": 2}  # LR pixels each kernel reads


def axis_windows(length: int, tile: int, overlap: int, align: int = 1) -> list[Window]:
    """Equal windows of at most ``tile`` covering ``[0, length)``, neighbours sharing >= ``overlap``.

    Args:
        length: image size along the axis (LR pixels).
        tile: largest window; 0 or ``tile >= length`` gives one window over the whole axis.
        overlap: least number of pixels two neighbouring windows share.
        align: windows start on multiples of it counted from 0 and stop on multiples of it
            counted from ``length`` (a network's ``tile_align``, e.g. SwinIR's attention window:
            its grid is anchored at the input's origin, and at the far edge once the x8
            self-ensemble flips it); they then differ in size by less than ``2 * align`` and
            never exceed ``tile``.

    The fewest windows that satisfy the constraints are used, shrunk to the smallest equal
    size and spread evenly, so no compute is spent on a nearly empty last window.
    """
    if tile <= 0 or length <= tile:
        return [(0, length)]
    inner = tile - 2 * (align - 1)  # room to move each end onto its grid
    if not 0 <= overlap < inner:
        extra = f" once windows end on multiples of {align}" if align > 1 else ""
        raise ConfigError(
            f"tile_overlap={overlap} must be at least 0 and less than tile={tile}{extra}; "
            f"use tile >= {overlap + 2 * align - 1}"
        )
    if align > 1:
        moved = [
            (a // align * align, length - (length - b) // align * align)
            for a, b in axis_windows(length, inner, overlap)
        ]
        keep: list[Window] = []  # drop windows that moving put inside a neighbour
        for w in moved:  # starts and stops stay in order, so only equal ends nest
            while keep and keep[-1][0] >= w[0]:
                keep.pop()
            if not keep or w[1] > keep[-1][1]:
                keep.append(w)
        return keep
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (n - 1) * overlap) / n))
    starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
    return [(s, s + size) for s in starts]


def _axis_weights(windows: list[Window], scale: int, exact: bool) -> list[Tensor]:
    """Per-window 1-D output weights along one axis, normalised to sum to 1 at every pixel."""
    weights = []
    for i, (start, stop) in enumerate(windows):
        w = torch.ones((stop - start) * scale, dtype=torch.float64)
        if i > 0:  # shared band with the previous window: [start, prev_stop)
            _fade(w, windows[i - 1][1] - start, scale, exact, rising=True)
        if i + 1 < len(windows):  # shared band with the next window: [next_start, stop)
            _fade(w, stop - windows[i + 1][0], scale, exact, rising=False)
        weights.append(w)
    # Bands of one window can overlap when tile < 2 * overlap; normalising keeps a partition of 1.
    total = torch.zeros(windows[-1][1] * scale, dtype=torch.float64)
    for (start, _), w in zip(windows, weights, strict=True):
        total[start * scale : start * scale + len(w)] += w
    return [
        (w / total[start * scale : start * scale + len(w)]).float()
        for (start, _), w in zip(windows, weights, strict=True)
    ]


def _fade(w: Tensor, band: int, scale: int, exact: bool, rising: bool) -> None:
    """Scale the weight of one window across a shared band of ``band`` LR pixels, in place."""
    n = band * scale
    if exact:  # hard cut in the middle of the band, on the LR grid
        ramp = (torch.arange(n) >= (band // 2) * scale).double()
    else:  # linear cross-fade over the central FADE_FRACTION of the band (pixel centres)
        pos = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        ramp = ((pos - 0.5) / FADE_FRACTION + 0.5).clamp(0, 1)
    if rising:
        w[:n] *= ramp
    else:  # the complement of the next window's rising weight
        w[len(w) - n :] *= 1 - ramp


def receptive_radius(net: nn.Module, channels: int = 3, probe: int = 16) -> float:
    """How far (LR pixels) an output pixel of ``net`` can see; ``inf`` for global context.

    Sums ``dilation * (kernel - 1) / 2`` over every ``Conv2d`` (scaled to the LR grid by the
    resolution it runs at) and the support of interpolation modules (``mode`` attribute),
    measured by one forward pass on a ``probe`` x ``probe`` input. A convolution applied to a
    1x1 map (after global pooling, as in channel attention) or an adaptive pooling layer means
    the output depends on the whole input: ``inf``. A ``receptive_radius`` attribute on the
    network overrides the measurement.

    Args:
        net: the LR -> SR network.
        channels: input channels of the probe.
        probe: probe side in LR pixels.
    """
    if getattr(net, "receptive_radius", None) is not None:
        return float(net.receptive_radius)
    total = 0.0
    global_context = False

    def hook(module: nn.Module, inputs: tuple, output) -> None:
        nonlocal total, global_context
        x = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
        if x is None or x.dim() != 4:
            return
        rel = x.shape[-2] / probe  # resolution of this layer relative to the LR input
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            global_context = True
        elif isinstance(module, nn.Conv2d):
            if x.shape[-2] == 1 and x.shape[-1] == 1:
                global_context = True
            k, d = module.kernel_size[0], module.dilation[0]
            total += d * (k - 1) / 2 / rel
        elif getattr(module, "mode", None) in _INTERP_RADIUS:
            total += _INTERP_RADIUS[module.mode] / rel

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        with torch.no_grad():
            net(torch.zeros(1, channels, probe, probe, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    return math.inf if global_context else float(math.ceil(total))


def tiled_forward(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int,
    overlap: int,
    *,
    radius: float = math.inf,
    align: int = 1,
    device: torch.device | str | None = None,
    sink: Sink | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Tensor | None:
    """Apply ``fn`` (LR window -> x``scale`` output) to ``x`` window by window and stitch.

    Args:
        fn: maps a (1, C, h, w) window on ``device`` (``x``'s dtype) to (1, C', s*h, s*w).
        x: (1, C, H, W) host tensor, any dtype (uint8/uint16 keep the host copy small).
        scale: upscaling factor of ``fn``.
        tile: window side in LR pixels; 0 runs the whole image at once.
        overlap: LR pixels shared by neighbouring windows.
        radius: receptive radius of ``fn`` (see :func:`receptive_radius`); decides between the
            exact hard cut (``2 * radius <= overlap``) and the cross-fade.
        align: window starts are multiples of it (see :func:`axis_windows`).
        device: where ``fn`` runs (default: ``x``'s device).
        sink: receives finished output rows as ``sink(first_row, (C', rows, s*W) float32)``;
            without it the whole output is returned as a (1, C', s*H, s*W) float32 tensor.
        on_tile: progress callback ``on_tile(done, total)``.

    Returns:
        The output tensor when ``sink`` is None, else None.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"tiled_forward expects one image (1, C, H, W), got {tuple(x.shape)}")
    device = torch.device(device) if device is not None else x.device
    h, w = x.shape[-2:]
    rows, cols = axis_windows(h, tile, overlap, align), axis_windows(w, tile, overlap, align)
    exact = 2 * radius <= overlap
    wy, wx = _axis_weights(rows, scale, exact), _axis_weights(cols, scale, exact)
    wx = [v.to(device) for v in wx]
    total, done = len(rows) * len(cols), 0
    out: Tensor | None = None
    if sink is None:

        def sink(first: int, block: Tensor) -> None:  # noqa: E306
            nonlocal out
            if out is None:
                out = torch.empty(1, block.shape[0], h * scale, w * scale)
            out[0, :, first : first + block.shape[1]] = block

    carry: Tensor | None = None
    for j, (y0, y1) in enumerate(rows):
        strip: Tensor | None = None
        wyj = wy[j].to(device)[:, None]
        for i, (x0, x1) in enumerate(cols):
            window = x[..., y0:y1, x0:x1].to(device, non_blocking=True)
            pred = fn(window)[0].float()
            if pred.shape[-2:] != ((y1 - y0) * scale, (x1 - x0) * scale):
                raise ValueError(
                    f"fn returned {tuple(pred.shape[-2:])} for a {y1 - y0}x{x1 - x0} window at x{scale}"
                )
            pred = (pred * wyj * wx[i]).cpu()
            if strip is None:
                strip = torch.zeros(pred.shape[0], (y1 - y0) * scale, w * scale)
            strip[:, :, x0 * scale : x1 * scale] += pred
            done += 1
            if on_tile is not None:
                on_tile(done, total)
        if carry is not None:
            strip[:, : carry.shape[1]] += carry
        final = (rows[j + 1][0] - y0) * scale if j + 1 < len(rows) else strip.shape[1]
        sink(y0 * scale, strip[:, :final])
        carry = strip[:, final:].clone() if j + 1 < len(rows) else None
    return out


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA/MPS OOM, or a CPU allocation failure."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    msg = str(err)
    return isinstance(err, RuntimeError) and (
        "out of memory" in msg or "can't allocate memory" in msg
    )


def tiled_forward_with_fallback(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int,
    overlap: int,
    **kwargs,
) -> tuple[Tensor | None, int]:
    """:func:`tiled_forward`, halving ``tile`` and starting over after each out-of-memory error.

    Rows already handed to ``sink`` are simply written again. Returns ``(result, tile used)``.
    Gives up with a :class:`MedsrError` once a halved tile would no longer exceed
    ``2 * overlap``.
    """
    h, w = x.shape[-2:]
    while True:
        try:
            return tiled_forward(fn, x, scale, tile, overlap, **kwargs), tile
        except Exception as err:  # noqa: BLE001 (re-raised unless it is an OOM)
            if not is_out_of_memory(err):
                raise
            current = tile if 0 < tile < max(h, w) else max(h, w)
            smaller = current // 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if smaller <= 2 * overlap:
                raise MedsrError(
                    f"out of memory even with tile={current} and tile_overlap={overlap}; "
                    "lower tile_overlap, use a smaller model, or run on device=cpu"
                ) from None
            log.warning(
                "out of memory with tile=%s; retrying with tile=%d", tile or "whole image", smaller
            )
            tile = smaller
