"""VGG19 features for the perceptual loss (Simonyan & Zisserman, ICLR 2015; used by SRGAN/ESRGAN).

Layer indices and state-dict keys are torchvision's ``vgg19().features`` (``features.34`` is
``conv5_4``), so torchvision's ImageNet file ``vgg19-dcbb9e9d.pth`` loads as it is; torchvision
itself is not needed, and nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from medsr.errors import ConfigError, WeightsError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_DOCS = "https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision cfg "E": conv channels per block, each block closed by a 2x2 max pool.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def _layer_names() -> list[str]:
    names = []
    for b, convs in enumerate(_BLOCKS, start=1):
        for c in range(1, len(convs) + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return names


VGG19_LAYER_NAMES: tuple[str, ...] = tuple(_layer_names())
# "conv1_1" -> 0, "relu1_1" -> 1, ..., "conv5_4" -> 34, "relu5_4" -> 35, "pool5" -> 36.
VGG19_LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(VGG19_LAYER_NAMES)}


def default_vgg19_path() -> Path:
    """torchvision's cache location: ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` (no download)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


class VGG19FeatureExtractor(nn.Module):
    """Features of chosen VGG19 layers, for perceptual losses.

    Only the layers up to the deepest requested one are built. ReLUs are not in-place, so a
    ``convX_Y`` output is the pre-activation value (ESRGAN's "before activation" features) even
    when a deeper layer is also requested.

    Args:
        layer_names: layers to return, named ``conv5_4``, ``relu5_4``, ``pool5``, ... (see
            :data:`VGG19_LAYER_INDEX`).
        weights_path: torchvision's ``vgg19-dcbb9e9d.pth``; None looks in the torch hub cache
            (``$TORCH_HOME/hub/checkpoints``).
        use_input_norm: normalise the [0, 1] input with the ImageNet mean and std.
        range_norm: map a [-1, 1] input to [0, 1] first.
        requires_grad: train the VGG weights too (normally frozen).
        random_init: skip loading weights (tests only: the features are then meaningless).

    Forward returns ``{layer_name: features}``.
    """

    def __init__(
        self,
        layer_names: Sequence[str] = ("conv5_4",),
        weights_path: str | os.PathLike | None = None,
        use_input_norm: bool = True,
        range_norm: bool = False,
        requires_grad: bool = False,
        random_init: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(layer_names, str):
            layer_names = (layer_names,)
        unknown = [n for n in layer_names if n not in VGG19_LAYER_INDEX]
        if unknown or not layer_names:
            raise ConfigError(
                f"unknown VGG19 layer(s) {unknown or '(none given)'}; valid: conv1_1 ... conv5_4, relu1_1 ... "
                f"relu5_4, pool1 ... pool5"
            )
        self.layer_names = tuple(layer_names)
        last = max(VGG19_LAYER_INDEX[n] for n in self.layer_names)
        self.features = _build_features(last + 1)
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if not random_init:
            self._load(weights_path)
        if not requires_grad:  # no BN or dropout: train/eval modes compute the same features
            for p in self.parameters():
                p.requires_grad_(False)

    def _load(self, weights_path: str | os.PathLike | None) -> None:
        from medsr.models.weights.files import read_state_dict

        path = Path(weights_path) if weights_path else default_vgg19_path()
        if not path.is_file():
            source = (
                "the path you gave"
                if weights_path
                else "the torch hub cache ($TORCH_HOME/hub/checkpoints)"
            )
            raise WeightsError(
                f"VGG19 weights not found: {path} ({source}). The perceptual loss needs torchvision's ImageNet "
                f"VGG19 file {VGG19_FILE} (548 MB). Download it from {VGG19_URL} (listed on {VGG19_DOCS}) "
                f"into {default_vgg19_path().parent}, or set model.lit.perceptual_opt.vgg_weights=<file>."
            )
        state, _, _ = read_state_dict(path)
        expected = self.features.state_dict()
        wanted = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        wanted = {k: v for k, v in wanted.items() if k in expected}  # deeper layers are not built
        missing = [k for k in expected if k not in wanted]
        conflicts = [
            f"features.{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}"
            for k, v in wanted.items()
            if v.shape != expected[k].shape
        ]
        if missing or conflicts:
            raise WeightsError(
                f"{path}: not torchvision's VGG19 ({VGG19_FILE}): missing {['features.' + k for k in missing][:6]}, "
                f"shape conflicts {conflicts[:6]}. Use {VGG19_URL}."
            )
        self.features.load_state_dict(wanted)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: dict[str, Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            name = VGG19_LAYER_NAMES[i]
            if name in self.layer_names:
                out[name] = x
        return out


def _build_features(n_layers: int) -> nn.Sequential:
    """The first ``n_layers`` modules of torchvision's ``vgg19().features`` (same indices)."""
    layers: list[nn.Module] = []
    c_in = 3
    for convs in _BLOCKS:
        for c_out in convs:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = c_out
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers[:n_layers])
