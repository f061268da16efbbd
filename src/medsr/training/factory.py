"""Building a training run's parts from the composed config: network, LightningModule,
callbacks, loggers, and the strategy and compile switches."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medsr.models import build_model, load_pretrained
from medsr.training.callbacks import EMAWeights

log = logging.getLogger(__name__)


def build_network(cfg: DictConfig, init: bool = True) -> torch.nn.Module:
    """The network of ``cfg.model``, loaded from ``model.init_from`` when set and ``init``."""
    net = build_model(
        cfg.model.arch, cfg.scale, **OmegaConf.to_container(cfg.model.net, resolve=True)
    )
    if init and cfg.model.get("init_from"):
        load_pretrained(net, cfg.model.init_from)
        log.info("initialised %s from %s", cfg.model.arch, cfg.model.init_from)
    return net


def build_module(cfg: DictConfig, net: torch.nn.Module) -> pl.LightningModule:
    module_factory = instantiate(cfg.model.lit)
    return module_factory(
        net=net,
        scale=cfg.scale,
        model_spec=getattr(net, "medsr_spec", None),
        channels_last=bool(cfg.get("channels_last", False)),
    )


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); None -> []."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    decay = cfg.model.get("ema_decay")
    # EMA first: the other callbacks' end-of-training hooks see the averaged weights.
    ema = [EMAWeights(decay=decay)] if decay is not None else []
    return ema + instantiate_group(cfg.get("callbacks"))


def compile_networks(module: pl.LightningModule) -> None:
    """``torch.compile`` the generator (and discriminator) in place. Not the LightningModule: its
    training steps hold host-side logic (logging, optimiser calls) that dynamo fails on.
    ``nn.Module.compile`` leaves parameter names, so checkpoints are unchanged."""
    for name in ("net", "net_d"):
        network = getattr(module, name, None)
        if isinstance(network, torch.nn.Module):
            network.compile()


def strategy_for(cfg: DictConfig, module: pl.LightningModule) -> dict:
    """GAN modules (manual optimisation) back-propagate G and D losses separately, each reaching
    only part of the parameters: plain DDP needs ``find_unused_parameters`` for them."""
    if cfg.trainer.get("strategy") == "ddp" and not module.automatic_optimization:
        return {"strategy": "ddp_find_unused_parameters_true"}
    return {}


def chosen_checkpoint(trainer: pl.Trainer) -> str | None:
    """The first checkpoint callback's best file (the validation-PSNR one); without one (no
    validation ran) the next callback's, i.e. last.ckpt."""
    for callback in trainer.checkpoint_callbacks:
        if callback.best_model_path or callback.last_model_path:
            return callback.best_model_path or callback.last_model_path
    return None
