"""Exponential moving average of the generator's weights (BasicSR's ``net_g_ema``, ``ema_decay``)."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from medsr.errors import ConfigError
from medsr.models.weights.export import EMA_CHECKPOINT_KEY, NET_PREFIX
from medsr.models.weights.partial import load_init


class EMAWeights(WeightAveraging):
    """Lightning's ``WeightAveraging`` with an EMA of ``pl_module.net`` only (not the discriminator
    or the frozen VGG), updated after every optimiser step: ``ema = decay * ema + (1 - decay) * w``.

    Validation runs on the average (swapped in and out), training ends with the average in the
    network, and checkpoints are written so that every reader of weights gets the average:
    ``state_dict["net.*"]`` holds the EMA weights (``medsr.evaluate``, ``medsr.predict``,
    ``model.init_from`` and the best-checkpoint test all read these) while
    ``checkpoint["medsr_ema"]["net"]`` keeps the raw weights that a resumed run trains on.

    Args:
        decay: EMA decay per step (BasicSR: 0.999).
        device: where the average lives (None = the network's device; "cpu" saves GPU memory).
        init_from: a weights file whose ``params_ema`` the average starts from (a fine-tune
            continuing a run with EMA, as BasicSR loads ``net_g_ema``); None = the network's
            weights at the start.
        init_strict: load ``init_from`` strictly, else every tensor that matches.
    """

    def __init__(
        self,
        decay: float = 0.999,
        device: torch.device | str | None = None,
        init_from: str | None = None,
        init_strict: bool = True,
    ) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ConfigError(
                f"model.ema_decay={decay} must be between 0 and 1 (BasicSR uses 0.999), or null for no EMA"
            )
        super().__init__(
            device=device, use_buffers=True, multi_avg_fn=get_ema_multi_avg_fn(float(decay))
        )
        self.decay = float(decay)
        self.init_from, self.init_strict = init_from, init_strict
        self._pending: dict[str, Any] | None = None

    @staticmethod
    def _net(pl_module: LightningModule) -> nn.Module:
        return pl_module.net

    @property
    def average(self) -> nn.Module | None:
        """The averaged network (None before fit starts)."""
        return self._average_model.module if self._average_model is not None else None

    # The average is built once the strategy has moved the network to its device: building it
    # in setup() (as the base class does) would keep it on the CPU while training on a GPU.
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._average_model = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        net = self._net(pl_module)
        device = self._device or next(net.parameters()).device
        self._average_model = AveragedModel(
            net, device=device, use_buffers=self._use_buffers, **self._kwargs
        )
        if self._pending is not None:
            self._average_model.load_state_dict(self._pending)
            self._pending = None
        elif self.init_from is not None:
            load_init(self._average_model.module, self.init_from, self.init_strict, "params_ema")
            self._average_model.n_averaged.fill_(1)  # an average already: no copy at step 1

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        # global_step counts optimiser steps (iterations for ESRGAN): skipped steps are not averaged.
        if trainer.global_step > self._latest_update_step and self.should_update(
            step_idx=trainer.global_step - 1
        ):
            self._average_model.update_parameters(self._net(pl_module))
            self._latest_update_step = trainer.global_step

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Per-step averaging only."""

    def _pairs(self, pl_module: LightningModule):
        net = self._net(pl_module)
        ours = itertools.chain(
            self._average_model.module.parameters(), self._average_model.module.buffers()
        )
        return zip(ours, itertools.chain(net.parameters(), net.buffers()), strict=True)

    def _swap_models(self, pl_module: LightningModule) -> None:
        for average, current in self._pairs(pl_module):
            tmp = average.data.clone()
            average.data.copy_(current.data)
            current.data.copy_(tmp)

    def _copy_average_to_current(self, pl_module: LightningModule) -> None:
        for average, current in self._pairs(pl_module):
            current.data.copy_(average.data)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is None:
            return  # outside fit: the network already holds the average (copied at train end)
        state = checkpoint["state_dict"]
        raw = {k[len(NET_PREFIX) :]: v for k, v in state.items() if k.startswith(NET_PREFIX)}
        averaged = self._average_model.state_dict()
        for key, value in averaged.items():
            if key.startswith("module."):
                state[NET_PREFIX + key[len("module.") :]] = value.detach().clone()
        checkpoint[EMA_CHECKPOINT_KEY] = {
            "decay": self.decay,
            "net": raw,
            "n_averaged": averaged["n_averaged"].detach().clone(),
        }

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return  # evaluation: state_dict (the average) is what was loaded, as wanted
        state = checkpoint["state_dict"]
        averaged = {
            "module." + k[len(NET_PREFIX) :]: v
            for k, v in state.items()
            if k.startswith(NET_PREFIX)
        }
        ema = checkpoint.get(EMA_CHECKPOINT_KEY)
        if ema is None:
            # A checkpoint of a run without EMA: the average starts from its weights.
            averaged["n_averaged"] = torch.tensor(0, dtype=torch.long)
        else:
            averaged["n_averaged"] = ema["n_averaged"]
            # Lightning loaded the average into the network; training continues from the raw weights.
            self._net(pl_module).load_state_dict(ema["net"])
        self._pending = averaged
