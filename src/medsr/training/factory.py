"""Building a training run's parts from the composed config: network, LightningModule,
callbacks, loggers, and the strategy and compile switches."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medsr.errors import ConfigError
from medsr.models import build_model, load_pretrained
from medsr.models.weights.files import has_raw_and_average
from medsr.models.weights.grey import init_from_rgb
from medsr.models.weights.partial import load_init
from medsr.training.callbacks import EMAWeights, LastCheckpoint
from medsr.training.resume import readable_checkpoint

log = logging.getLogger(__name__)


def ema_start(cfg: DictConfig) -> str | None:
    """The file the EMA starts from (its ``params_ema``) while the network takes its ``params``, as
    BasicSR resumes: with EMA on and an ``init_from`` file that holds both; else None."""
    source = cfg.model.get("init_from")
    if cfg.model.get("ema_decay") is None or not source:
        return None
    return str(source) if has_raw_and_average(source) else None


def build_network(cfg: DictConfig, init: bool = True) -> torch.nn.Module:
    """The network of ``cfg.model``, loaded from ``model.init_from`` when set and ``init``
    (``model.init_strict=false``: every tensor whose name and shape match)."""
    net = build_model(
        cfg.model.arch, cfg.scale, **OmegaConf.to_container(cfg.model.net, resolve=True)
    )
    source = cfg.model.get("init_from") if init else None
    if source and cfg.model.get("init_from_rgb"):  # RGB weights into a one-channel network
        init_from_rgb(net, source)
        log.info("initialised %s from the RGB weights of %s", cfg.model.arch, source)
    elif source:
        raw = ema_start(cfg) is not None
        load_init(net, source, bool(cfg.model.get("init_strict", True)), "params" if raw else None)
        what = "raw weights (params; the EMA starts from params_ema)" if raw else "weights"
        log.info("initialised %s from the %s of %s", cfg.model.arch, what, source)
    return net


def build_module(cfg: DictConfig, net: torch.nn.Module, init: bool = True) -> pl.LightningModule:
    """The LightningModule; a GAN's discriminator starts from ``model.init_from_d`` when set."""
    module_factory = instantiate(cfg.model.lit)
    module = module_factory(
        net=net,
        scale=cfg.scale,
        model_spec=getattr(net, "medsr_spec", None),
        channels_last=bool(cfg.get("channels_last", False)),
    )
    source = cfg.model.get("init_from_d") if init else None
    if source:
        if not hasattr(module, "net_d"):
            raise ConfigError(
                f"model.init_from_d={source}: {cfg.model.arch} trains no discriminator; "
                "remove model.init_from_d"
            )
        load_pretrained(module.net_d, source)
        log.info("initialised the discriminator from %s", source)
    return module


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); None -> []."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def build_callbacks(cfg: DictConfig, init: bool = True) -> list[pl.Callback]:
    decay = cfg.model.get("ema_decay")
    start = ema_start(cfg) if init else None
    strict = bool(cfg.model.get("init_strict", True))
    # EMA first: the other callbacks' end-of-training hooks see the averaged weights.
    ema = (
        [EMAWeights(decay=decay, init_from=start, init_strict=strict)] if decay is not None else []
    )
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


SELECTIONS = ("last", "best")


def checkpoint_selection(cfg: DictConfig) -> str:
    """``checkpoint.select``: ``last`` (the final iteration's weights, as the references report)
    or ``best`` (the highest validation PSNR)."""
    select = str(cfg.get("checkpoint", {}).get("select", "best"))
    if select not in SELECTIONS:
        raise ConfigError(
            f"checkpoint.select={select} is not known; use checkpoint.select=last (the final "
            "weights) or checkpoint.select=best (the best validation PSNR)"
        )
    return select


def chosen_checkpoint(trainer: pl.Trainer, select: str = "best") -> str | None:
    """The checkpoint that is exported, tested after fit and fine-tuned from.

    ``last``: the file the ``LastCheckpoint`` callback wrote at the end of training. ``best``: the
    first checkpoint callback's best file (validation PSNR); without one (no validation ran) the
    next callback's, i.e. last.ckpt.
    """
    callbacks = trainer.checkpoint_callbacks
    if select == "last":
        for callback in callbacks:
            if isinstance(callback, LastCheckpoint) and callback.best_model_path:
                return callback.best_model_path
        raise ConfigError(
            "checkpoint.select=last needs callbacks.last_checkpoint (it writes checkpoints/last.ckpt "
            "at the end of training); keep it, or use checkpoint.select=best"
        )
    for callback in callbacks:
        if callback.best_model_path:
            return existing_best(callback)
        if callback.last_model_path:
            return callback.last_model_path
    return None


def existing_best(callback: pl.callbacks.ModelCheckpoint) -> str:
    """The callback's best file; when it is gone (a run killed after saving a new best and
    deleting the old one, but before last.ckpt recorded it, then resumed), the best of the
    files it wrote that are still there, by the score each one holds."""
    recorded = Path(callback.best_model_path)
    if recorded.is_file() or callback.dirpath is None:
        return str(recorded)
    sign = 1 if callback.mode == "max" else -1
    scored = []
    for path in Path(callback.dirpath).glob("*.ckpt"):
        if path.name == "last.ckpt" or not readable_checkpoint(path):
            continue
        states = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["callbacks"]
        score = next(
            (v.get("current_score") for k, v in states.items() if k == callback.state_key), None
        )
        if score is not None:
            scored.append((sign * float(score), path))
    if not scored:
        raise ConfigError(
            f"the best checkpoint {recorded} is gone and no other checkpoint of this run holds a "
            "score; use checkpoint.select=last"
        )
    chosen = max(scored)[1]
    log.warning("the best checkpoint %s is missing; using %s, the best one left", recorded, chosen)
    return str(chosen)
