"""Start a one-channel network (CT, MR, X-ray) from RGB weights: ``model.init_from_rgb=true``.

The RGB network applied to a grey image replicated to three channels, its three outputs
averaged, is the natural starting point for grey data. The one-channel network computes
exactly that (up to the zero padding at the image border) when

- the first conv's weights are the sum over its input channels (their average, times the
  three identical inputs it replaces), with the bias absorbing the difference between the
  per-channel input means and the one-channel mean (EDSR/RCAN's ``sub_mean``);
- the last conv's weights and bias are the average over its output channels, with the bias
  absorbing the output mean difference (``add_mean``).

Inputs that were pixel-unshuffled before the first conv (RRDBNet x2) are summed per channel
group. Every other tensor is copied unchanged.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from medsr.errors import ConfigError, WeightsError
from medsr.models.common import MeanShift
from medsr.models.registry import build_model
from medsr.models.weights.load import load_pretrained

FIRST, LAST = "conv_first", "conv_last"


def _means(model: nn.Module) -> tuple[Tensor | None, Tensor | None, float]:
    """(input mean, output mean, img_range) of a MeanShift network, else (None, None, 1)."""
    sub, add = getattr(model, "sub_mean", None), getattr(model, "add_mean", None)
    if isinstance(sub, MeanShift) and isinstance(add, MeanShift):
        return sub.mean.flatten().double(), add.mean.flatten().double(), sub.img_range
    return None, None, 1.0


@torch.no_grad()
def grey_state_from_rgb(rgb: nn.Module, grey: nn.Module) -> dict[str, Tensor]:
    """The state dict for ``grey`` (1 channel in and out) equivalent to ``rgb`` on grey images.

    Args:
        rgb: the 3-channel network, loaded.
        grey: the same architecture and size built with ``num_in_ch=num_out_ch=1``.

    Raises:
        WeightsError: a tensor other than the first/last conv differs in shape.
    """
    src, dst = rgb.state_dict(), grey.state_dict()
    in_rgb, out_rgb, img_range = _means(rgb)
    in_grey, out_grey, _ = _means(grey)
    state = {}
    for key, target in dst.items():
        value = src[key].double()
        if key == f"{FIRST}.weight" and value.shape != target.shape:
            groups = value.shape[1] // 3  # pixel-unshuffled positions per colour channel
            state[key] = value.view(value.shape[0], 3, groups, *value.shape[2:]).sum(1)
        elif key == f"{FIRST}.bias" and in_rgb is not None:
            per_channel = src[f"{FIRST}.weight"].double().flatten(2).sum(-1)  # (out, 3)
            state[key] = value + img_range * per_channel @ (in_grey - in_rgb)
        elif key == f"{LAST}.weight" and value.shape != target.shape:
            state[key] = value.mean(0, keepdim=True)
        elif key == f"{LAST}.bias" and value.shape != target.shape:
            shift = 0.0 if out_rgb is None else img_range * (out_rgb.mean() - out_grey)
            state[key] = value.mean(0, keepdim=True) + shift
        elif value.shape == target.shape:
            state[key] = value
        else:
            raise WeightsError(
                f"cannot map the RGB tensor {key} {tuple(value.shape)} onto the one-channel "
                f"network's {tuple(target.shape)}; only {FIRST} and {LAST} change with channels."
            )
    return {k: v.to(dst[k].dtype) for k, v in state.items()}


def init_from_rgb(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Fill a one-channel ``model`` from an RGB weights file in any format ``load_pretrained`` reads.

    The file is loaded (strictly) into an RGB twin of ``model`` (same architecture, scale and
    size, 3 channels), which is then converted by :func:`grey_state_from_rgb`.

    Args:
        model: a ``build_model`` network with ``num_in_ch=1, num_out_ch=1``.
        path: RGB weights (e.g. DF2K-trained EDSR/RCAN/RRDBNet, official releases).

    Returns:
        ``model``, loaded.
    """
    spec = getattr(model, "medsr_spec", None)
    if not isinstance(spec, dict):
        raise ConfigError(
            "model.init_from_rgb=true needs a network built by medsr.models.build_model"
        )
    net = dict(spec.get("net") or {})
    if net.get("num_in_ch", 3) != 1 or net.get("num_out_ch", 3) != 1:
        raise ConfigError(
            "model.init_from_rgb=true converts RGB weights for a one-channel network: set "
            "model.net.num_in_ch=1 model.net.num_out_ch=1 (or drop model.init_from_rgb)."
        )
    twin = build_model(spec["arch"], spec["scale"], **{**net, "num_in_ch": 3, "num_out_ch": 3})
    load_pretrained(twin, path)
    model.load_state_dict(grey_state_from_rgb(twin, model), strict=True)
    return model
