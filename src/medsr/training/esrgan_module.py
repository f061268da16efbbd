"""ESRGAN training (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
Networks", ECCVW 2018): BasicSR's ESRGANModel as an SRModule with a second optimizer."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from medsr.errors import ConfigError, MedsrError
from medsr.models.discriminator import VGGStyleDiscriminator
from medsr.models.discriminator_unet import UNetDiscriminatorSN
from medsr.training.losses import build_gan_loss, build_perceptual_loss
from medsr.training.sr_module import SRModule

log = logging.getLogger(__name__)

_DISCRIMINATORS = {
    "VGGStyleDiscriminator": VGGStyleDiscriminator,
    "UNetDiscriminatorSN": UNetDiscriminatorSN,  # Real-ESRGAN
}
# The frozen VGG19 is read from its own file; keeping it out of checkpoints saves ~80 MB each.
_VGG_PREFIX = "perceptual_loss."


class ESRGANModule(SRModule):
    """Generator ``net`` against a discriminator: L_G = pixel + perceptual + relativistic GAN.

    Manual optimisation, one iteration = one G step then one D step (BasicSR order), and
    ``trainer.global_step`` counts iterations (the D step is not counted). Validation, metrics
    and ``forward`` are SRModule's. A non-finite loss skips that optimizer's step with a
    warning (``train/nonfinite_skips`` counts them); ``max_nonfinite_steps`` in a row stop
    training with a MedsrError.

    Args:
        net, scale, optimizer, scheduler, pixel_opt, crop_border, model_spec, channels_last,
        eval_float32: as :class:`SRModule`; ``scheduler`` is applied to both optimizers (BasicSR).
        network_d: discriminator, BasicSR style: ``{"type": "VGGStyleDiscriminator", "num_feat": 64, ...}``
            or ``{"type": "UNetDiscriminatorSN", "skip_connection": true, ...}`` (Real-ESRGAN's,
            per-pixel logits, any patch size; ``input_size`` is then not used).
        perceptual_opt: :class:`medsr.training.losses.PerceptualLoss` settings (``layer_weights``, ``vgg_weights``, ...).
        gan_opt: :class:`medsr.training.losses.RelativisticGANLoss` settings (``gan_type``, ``loss_weight``).
        optimizer_d: keyword arguments overriding ``optimizer``'s for the discriminator ({} = same).
        init_from: the file the generator was initialised from (``medsr.train`` loads it); None
            warns at fit start, since ESRGAN starts from a PSNR-oriented RRDBNet.
        max_nonfinite_steps: consecutive iterations with a non-finite loss before training stops.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        scale: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        pixel_opt: dict | None = None,
        crop_border: int | None = None,
        model_spec: dict | None = None,
        channels_last: bool = False,
        network_d: dict | None = None,
        perceptual_opt: dict | None = None,
        gan_opt: dict | None = None,
        optimizer_d: dict | None = None,
        init_from: str | None = None,
        max_nonfinite_steps: int = 10,
        eval_float32: bool = True,
    ) -> None:
        super().__init__(
            net,
            scale,
            optimizer,
            scheduler,
            pixel_opt,
            crop_border,
            model_spec,
            channels_last,
            eval_float32,
        )
        self.automatic_optimization = False
        d_opt = dict(network_d or {})
        d_type = d_opt.pop("type", "VGGStyleDiscriminator")
        if d_type not in _DISCRIMINATORS:
            raise ConfigError(
                f"model.lit.network_d.type={d_type!r} is not supported; use one of {sorted(_DISCRIMINATORS)}"
            )
        if d_type == "UNetDiscriminatorSN":
            d_opt.pop("input_size", None)  # only the VGG-style head is tied to the patch size
        self.net_d = _DISCRIMINATORS[d_type](**d_opt)
        if channels_last:
            self.net_d = self.net_d.to(memory_format=torch.channels_last)
        self.perceptual_loss = build_perceptual_loss(perceptual_opt)
        self.gan_loss = build_gan_loss(gan_opt)
        self.optimizer_d_kwargs = dict(optimizer_d or {})
        self.init_from = init_from
        self.max_nonfinite_steps = max_nonfinite_steps
        self.nonfinite_skips = 0
        self._nonfinite_run = 0

    def _d(self, x: Tensor) -> Tensor:
        return self.net_d(x).float()  # logits in float32 for the relativistic differences

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        lr, hr = batch["lr"], batch["hr"]

        with self.toggled_optimizer(opt_g):  # D's parameters get no gradients here
            sr = self(lr)
            l_g_pix = self.pixel_weight * self.pixel_loss(sr.float(), hr)
            l_g_percep = self.perceptual_loss(sr, hr)
            with torch.no_grad():  # the standard (non-relativistic) loss needs no D(HR) here
                real_g = self._d(hr) if self.gan_loss.relativistic else None
            fake_g = self._d(sr)
            l_g_gan = self.gan_loss.generator_loss(real_g, fake_g)
            l_g = l_g_pix + l_g_percep + l_g_gan
            opt_g.zero_grad()
            self.manual_backward(l_g)
            g_ok = self._finite(l_g, "generator")
            if g_ok:
                opt_g.step()
        if not g_ok:
            return  # the SR batch is unusable: the whole iteration is skipped and not counted

        # D's real and fake terms are back-propagated one after the other (x0.5 each for RaGAN, BasicSR):
        # no graph holds two D passes, which avoids DDP's in-place buffer errors. fake_g equals
        # D(sr) under the same, not yet updated, D weights, so it stands in for a third pass.
        with self.toggled_optimizer(opt_d):
            opt_d.zero_grad()
            real_d = self._d(hr)
            w = self.gan_loss.d_weight
            l_d_real = w * self.gan_loss.relative(real_d, fake_g.detach(), more_real=True)
            self.manual_backward(l_d_real)
            fake_d = self._d(sr.detach())
            l_d_fake = w * self.gan_loss.relative(fake_d, real_d.detach(), more_real=False)
            self.manual_backward(l_d_fake)
            if self._finite(l_d_real + l_d_fake, "discriminator"):
                self._nonfinite_run = 0
                # Through the precision plugin (AMP scaler) but not LightningOptimizer.step, which
                # would advance global_step a second time per iteration.
                self.trainer.strategy.optimizer_step(opt_d.optimizer, closure=_no_closure)
        for scheduler in self.lr_schedulers() or []:
            scheduler.step()

        losses = {
            "l_g_pix": l_g_pix,
            "l_g_percep": l_g_percep,
            "l_g_gan": l_g_gan,
            "l_d_real": l_d_real,
            "l_d_fake": l_d_fake,
        }
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()})
        self.log("train/d_real_mean", real_d.detach().mean())
        self.log("train/d_fake_mean", fake_d.detach().mean())
        self.log("train/nonfinite_skips", float(self.nonfinite_skips))

    def _finite(self, loss: Tensor, name: str) -> bool:
        """The skip decision (one host sync), agreed by all ranks so DDP replicas stay equal."""
        ok = self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True)
        if ok:
            return True
        self.nonfinite_skips += 1
        self._nonfinite_run += 1
        log.warning(
            "step %d: non-finite %s loss (%s); its optimizer step was skipped (%d skipped so far)",
            self.global_step,
            name,
            loss.item(),
            self.nonfinite_skips,
        )
        if self._nonfinite_run >= self.max_nonfinite_steps:
            raise MedsrError(
                f"training stopped at step {self.global_step}: {self._nonfinite_run} iterations in a row had a "
                f"non-finite loss. Resume from an earlier checkpoint (ckpt_path=) with a lower learning rate "
                f"(model.lit.optimizer.lr), use trainer.precision=bf16-mixed or 32-true instead of 16-mixed, or "
                f"raise model.lit.max_nonfinite_steps to tolerate more"
            )
        return False

    def configure_optimizers(self):
        opt_g = self.optimizer_factory(self.net.parameters())
        opt_d = self.optimizer_factory(self.net_d.parameters(), **self.optimizer_d_kwargs)
        if self.scheduler_factory is None:
            return [opt_g, opt_d]
        # Stepped by hand every iteration; the names label LearningRateMonitor's columns.
        schedulers = [
            {"scheduler": self.scheduler_factory(o), "name": f"train/lr_{n}"}
            for o, n in ((opt_g, "g"), (opt_d, "d"))
        ]
        return [opt_g, opt_d], schedulers

    def on_fit_start(self) -> None:
        if self.init_from is None and self.trainer.ckpt_path is None:
            rank_zero_warn(
                "ESRGAN is training its generator from scratch; ESRGAN starts from a PSNR-oriented RRDBNet: "
                "set model.init_from=<medsr checkpoint or RRDB_PSNR_x4.pth>"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["nonfinite_skips"] = self.nonfinite_skips
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(_VGG_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.nonfinite_skips = int(checkpoint.get("nonfinite_skips", 0))
        vgg = self.perceptual_loss.state_dict(prefix=_VGG_PREFIX)
        checkpoint["state_dict"].update(
            {k: v for k, v in vgg.items() if k not in checkpoint["state_dict"]}
        )


def _no_closure() -> None:
    return None
