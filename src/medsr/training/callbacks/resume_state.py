"""What a resumed run needs beyond Lightning's checkpoint: the global RNG states (augmentation
draws on the device, the seeds of each epoch's data stream)."""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "medsr_resume"


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) global generator states, as plain types and tensors
    (checkpoints load with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeState(Callback):
    """Saves and restores the global RNG states, so that a run resumed at an epoch end continues
    exactly as an uninterrupted run would.

    The states at the moment of saving are restored when training starts again, after the
    DataLoader iterator that the resumed run creates on start-up (its seed draw would otherwise
    shift every later draw), so the augmentation draws after resuming are those of an
    uninterrupted run. The training data stream is not saved (a shuffle buffer holds hundreds of
    patches per worker): it starts afresh every epoch from seeds drawn from the torch RNG (workers
    that are not persistent, or ``data.num_workers=0``), so a checkpoint written at the end of an
    epoch resumes the patch stream exactly as well. A resume from the middle of an epoch, or with
    persistent workers, restores the model, optimisers, schedulers, EMA, step and RNG but draws
    other patches from there on; a warning says so.
    """

    def __init__(self) -> None:
        self._rng_on_start: dict[str, Any] | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._rng_on_start is not None:
            set_rng_state(self._rng_on_start)
            self._rng_on_start = None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        epoch_end = bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        checkpoint[CHECKPOINT_KEY] = {"rng": rng_state(), "epoch_end": epoch_end}

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            rank_zero_warn(
                "the checkpoint holds no RNG state (not written by medsr.train): the resumed run "
                "draws other patches and augmentations than an uninterrupted run"
            )
            return
        self._rng_on_start = state["rng"]  # applied in on_train_start
        datamodule = trainer.datamodule
        loader = datamodule.train_dataloader() if datamodule is not None else None
        persistent = getattr(loader, "num_workers", 0) > 0 and getattr(
            loader, "persistent_workers", False
        )
        if state["epoch_end"] and not persistent:
            # The next epoch's stream follows from the restored RNG: nothing else to warn about.
            warnings.filterwarnings(
                "ignore", message="You're resuming from a checkpoint that ended before"
            )
            return
        why = "with persistent workers" if persistent else "from the middle of an epoch"
        rank_zero_warn(
            f"resuming {why}: the model, optimisers, schedulers, EMA, step and RNG are restored, but "
            "the run draws other patches from here on than an uninterrupted run would"
        )
