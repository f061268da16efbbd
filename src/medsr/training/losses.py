"""Losses in BasicSR's config vocabulary (``pixel_opt``, ``perceptual_opt``, ``gan_opt``)."""

from __future__ import annotations

import inspect
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medsr.errors import ConfigError
from medsr.models.vgg import VGG19FeatureExtractor

_PIXEL_LOSSES = {"L1Loss": nn.L1Loss, "MSELoss": nn.MSELoss}


def build_pixel_loss(opt: dict | None) -> tuple[nn.Module, float]:
    """``{"type": "L1Loss", "loss_weight": 1.0}`` -> (criterion, weight)."""
    opt = dict(opt or {"type": "L1Loss", "loss_weight": 1.0})
    kind = opt.pop("type", "L1Loss")
    weight = float(opt.pop("loss_weight", 1.0))
    if kind not in _PIXEL_LOSSES:
        raise ConfigError(
            f"model.lit.pixel_opt.type={kind!r} is not supported; use one of {sorted(_PIXEL_LOSSES)}"
        )
    return _PIXEL_LOSSES[kind](**opt), weight


_FEATURE_CRITERIA = {"l1": F.l1_loss, "l2": F.mse_loss}


class PerceptualLoss(nn.Module):
    """Distance between VGG19 features of SR and HR (Johnson et al., ECCV 2016), taken before
    the ReLU as ESRGAN proposes (Wang et al., ECCVW 2018, sec. 3.3): sharper, brightness-true.

    Args:
        layer_weights: ``{"conv5_4": 1.0}``: feature layers (before activation) and weights.
        perceptual_weight: weight of the summed layer losses.
        criterion: ``"l1"`` or ``"l2"`` (mean squared error) between feature maps.
        vgg_weights: torchvision ``vgg19-dcbb9e9d.pth``; None = the torch hub cache location.
        use_input_norm: normalise [0, 1] inputs with the ImageNet mean and std (VGG's training).
        range_norm: map inputs from [-1, 1] to [0, 1] first.
        vgg_type: only ``"vgg19"`` (accepted for BasicSR config compatibility).
        style_weight: only 0 (BasicSR key; the Gram-matrix style loss is not implemented).
        random_init_for_tests: random VGG weights, no file needed. Tests only: the loss is then
            meaningless, so no training config sets it.
    """

    def __init__(
        self,
        layer_weights: dict[str, float] | None = None,
        perceptual_weight: float = 1.0,
        criterion: str = "l1",
        vgg_weights: str | None = None,
        use_input_norm: bool = True,
        range_norm: bool = False,
        vgg_type: str = "vgg19",
        style_weight: float = 0.0,
        random_init_for_tests: bool = False,
    ) -> None:
        super().__init__()
        if random_init_for_tests:
            warnings.warn(
                "the perceptual loss uses a randomly initialised VGG19 (random_init_for_tests=True): "
                "for tests only, its values mean nothing",
                stacklevel=2,
            )
        if vgg_type != "vgg19":
            raise ConfigError(
                f"model.lit.perceptual_opt.vgg_type={vgg_type!r} is not supported; use vgg19"
            )
        if style_weight:
            raise ConfigError(
                "model.lit.perceptual_opt.style_weight must be 0: the style loss is not implemented"
            )
        if criterion not in _FEATURE_CRITERIA:
            raise ConfigError(
                f"model.lit.perceptual_opt.criterion={criterion!r} is not supported; use one of {sorted(_FEATURE_CRITERIA)}"
            )
        self.layer_weights = dict(layer_weights or {"conv5_4": 1.0})
        self.perceptual_weight = float(perceptual_weight)
        self.criterion = _FEATURE_CRITERIA[criterion]
        self.vgg = VGG19FeatureExtractor(
            layer_names=tuple(self.layer_weights),
            weights_path=vgg_weights,
            use_input_norm=use_input_norm,
            range_norm=range_norm,
            requires_grad=False,
            random_init=random_init_for_tests,
        )
        # VGG19's feature layers (conv, ReLU, max-pool) act the same in both modes; train mode
        # spares every run Lightning's "modules in eval mode" warning.
        self.vgg.train()

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        sr_feats = self.vgg(sr)
        with torch.no_grad():
            hr_feats = self.vgg(hr)
        # Distances in float32: under autocast the features may be bf16/fp16.
        loss = sum(
            w * self.criterion(sr_feats[k].float(), hr_feats[k].float())
            for k, w in self.layer_weights.items()
        )
        return self.perceptual_weight * loss


class RelativisticGANLoss(nn.Module):
    """Relativistic average GAN loss (Jolicoeur-Martineau, ICLR 2019) as ESRGAN uses it (eq. 1-2).

    The discriminator's raw logit C(x) is judged relative to the other batch's mean: real should
    look more realistic than the average fake, ``sigma(C(real) - E[C(fake)]) -> 1``, and fake
    less than the average real, ``sigma(C(fake) - E[C(real)]) -> 0``; the generator gets the
    swapped targets. Computed in float32 with autocast off (fp16 logits lose the small
    differences the loss lives on).

    With ``relativistic=False`` it is the standard GAN loss that Real-ESRGAN uses with its U-Net
    discriminator (BasicSR ``GANLoss``): each logit against its own label, the generator's fakes
    against "real"; the discriminator's real and fake terms are then not halved (SRGANModel).

    Args:
        gan_type: ``"vanilla"`` (BCE with logits, ESRGAN) or ``"lsgan"`` (squared error).
        real_label_val: target of the "more realistic" comparison.
        fake_label_val: target of the "less realistic" comparison.
        loss_weight: weight of the generator's loss (the discriminator's is unweighted).
        relativistic: ESRGAN's relativistic average loss (True) or the standard one (False).
    """

    def __init__(
        self,
        gan_type: str = "vanilla",
        real_label_val: float = 1.0,
        fake_label_val: float = 0.0,
        loss_weight: float = 5e-3,
        relativistic: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(relativistic, bool):
            raise ConfigError(
                f"model.lit.gan_opt.relativistic={relativistic!r} must be true or false"
            )
        self.relativistic = relativistic
        # BasicSR halves each of the discriminator's two terms for the relativistic loss only.
        self.d_weight = 0.5 if relativistic else 1.0
        if gan_type not in ("vanilla", "lsgan"):
            raise ConfigError(
                f"model.lit.gan_opt.gan_type={gan_type!r} is not supported; use vanilla or lsgan"
            )
        self.gan_type = gan_type
        self.real_label_val = float(real_label_val)
        self.fake_label_val = float(fake_label_val)
        self.loss_weight = float(loss_weight)

    def relative(self, pred: Tensor, other: Tensor | None, more_real: bool) -> Tensor:
        """Criterion of ``pred - mean(other)`` (of ``pred`` when not relativistic) against the
        real (True) or fake (False) label."""
        with torch.autocast(pred.device.type, enabled=False):
            logits = pred.float() - other.float().mean() if self.relativistic else pred.float()
            target = torch.full_like(
                logits, self.real_label_val if more_real else self.fake_label_val
            )
            if self.gan_type == "vanilla":
                return F.binary_cross_entropy_with_logits(logits, target)
            return F.mse_loss(logits, target)

    def generator_loss(self, real_pred: Tensor | None, fake_pred: Tensor) -> Tensor:
        """Weighted G loss; ``real_pred`` should carry no graph (the discriminator is fixed here)
        and is not used by the standard loss."""
        if not self.relativistic:
            return self.loss_weight * self.relative(fake_pred, None, more_real=True)
        loss = self.relative(real_pred, fake_pred, more_real=False) + self.relative(
            fake_pred, real_pred, more_real=True
        )
        return self.loss_weight * 0.5 * loss


def build_perceptual_loss(opt: dict | None) -> PerceptualLoss:
    """BasicSR ``perceptual_opt`` (``type: PerceptualLoss`` optional) -> PerceptualLoss."""
    opt = dict(opt or {})
    kind = opt.pop("type", "PerceptualLoss")
    if kind != "PerceptualLoss":
        raise ConfigError(
            f"model.lit.perceptual_opt.type={kind!r} is not supported; use PerceptualLoss"
        )
    return PerceptualLoss(**_known_kwargs(PerceptualLoss, opt, "perceptual_opt"))


def build_gan_loss(opt: dict | None) -> RelativisticGANLoss:
    """BasicSR ``gan_opt`` (``type: GANLoss`` optional) -> RelativisticGANLoss."""
    opt = dict(opt or {})
    kind = opt.pop("type", "GANLoss")
    if kind not in ("GANLoss", "RelativisticGANLoss"):
        raise ConfigError(f"model.lit.gan_opt.type={kind!r} is not supported; use GANLoss")
    return RelativisticGANLoss(**_known_kwargs(RelativisticGANLoss, opt, "gan_opt"))


def _known_kwargs(cls: type, opt: dict, key: str) -> dict:
    valid = list(inspect.signature(cls).parameters)
    unknown = sorted(set(opt) - set(valid))
    if unknown:
        raise ConfigError(
            f"model.lit.{key}.{unknown[0]} is not a setting of {cls.__name__}; valid: {', '.join(valid)}"
        )
    return opt
