"""What a resumed run needs beyond Lightning's checkpoint: the global RNG states (augmentation
draws on the device, DataLoader worker seeds) and, where the dataset can say it, the position
of the training data stream."""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.data import sized_len
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
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }  # fmt: skip
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _is_stateful(obj: object) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))


class ResumeState(Callback):
    """Saves and restores the global RNG states and the training data stream's position.

    RNG: the states at the moment of saving are restored when training starts again, after the
    DataLoader iterator that the resumed run creates on start-up (its seed draw would otherwise
    shift every later draw), so the augmentation draws after resuming are those of an
    uninterrupted run. At an epoch boundary Lightning creates the next epoch's iterator after
    that point in both runs alike.

    Data stream: with ``data.num_workers=0``, a training dataset with ``state_dict()`` /
    ``load_state_dict()`` (the ``torch.distributed.checkpoint.stateful.Stateful`` protocol) is
    saved and restored, so that the resumed run draws the same patches. Lightning fetches one batch
    ahead from loaders without a length, so for those the state saved with the checkpoint of step
    ``g`` is the one recorded after step ``g - 1`` (when exactly ``g`` batches had been drawn).
    The dataset's ``__iter__`` must continue an interrupted epoch with its remaining batches
    (Lightning counts the epoch's batches on). Loaders with workers can be made
    resumable the same way with ``torchdata``'s ``StatefulDataLoader`` (Lightning saves it by itself).
    Workers that are not persistent start afresh every epoch from seeds drawn from the restored
    RNG, so a checkpoint written at the end of an epoch resumes their stream exactly too.
    Otherwise the resumed run draws other patches and a warning says so.
    """

    def __init__(self) -> None:
        self._snapshots: dict[int, Any] = {}
        self._rng_on_start: dict[str, Any] | None = None

    # -- the training dataset ------------------------------------------------------------------
    @staticmethod
    def _stateful_dataset(loader: Any) -> Any | None:
        if loader is None or getattr(loader, "num_workers", 0) != 0:
            return None
        dataset = getattr(loader, "dataset", None)
        return dataset if _is_stateful(dataset) else None

    def _snapshot(self, trainer: Trainer) -> None:
        loader = trainer.train_dataloader
        dataset = self._stateful_dataset(loader)
        if dataset is None or sized_len(loader) is not None:
            return  # sized loaders are not fetched ahead: the state at saving time is the one
        # Tagged with global_step g: the state after g + 1 batches (one fetched ahead).
        self._snapshots = {g: s for g, s in self._snapshots.items() if g >= trainer.global_step - 1}
        self._snapshots[trainer.global_step] = dataset.state_dict()

    def _data_state(self, trainer: Trainer) -> Any | None:
        loader = trainer.train_dataloader
        dataset = self._stateful_dataset(loader)
        if dataset is None:
            return None
        if sized_len(loader) is not None:
            return dataset.state_dict()
        return self._snapshots.get(trainer.global_step - 1)

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._rng_on_start is not None:
            set_rng_state(self._rng_on_start)
            self._rng_on_start = None
        self._snapshots = {}
        self._snapshot(trainer)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        self._snapshot(trainer)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        state = {
            "rng": rng_state(),
            "epoch_end": bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch),
        }
        data = self._data_state(trainer)
        if data is not None:
            state["data"] = data
        checkpoint[CHECKPOINT_KEY] = state

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            rank_zero_warn("the checkpoint holds no RNG or data-stream state (not written by medsr.train): "
                           "the resumed run draws other patches and augmentations than an uninterrupted run")  # fmt: skip
            return
        self._rng_on_start = state["rng"]  # applied in on_train_start
        self._restore_data(trainer, state.get("data"), state["epoch_end"])

    def _restore_data(self, trainer: Trainer, data: Any, epoch_end: bool) -> None:
        datamodule = trainer.datamodule
        loader = datamodule.train_dataloader() if datamodule is not None else None
        dataset = self._stateful_dataset(loader)
        if data is not None and dataset is not None:
            dataset.load_state_dict(data)
            # Lightning checks the loader, not its dataset: its mid-epoch warning does not apply.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
            return
        workers = getattr(loader, "num_workers", 0)
        if epoch_end and workers and not getattr(loader, "persistent_workers", False):
            return  # fresh workers per epoch: their stream follows from the restored RNG
        why = (
            f"data.num_workers={workers} (its workers' state is not visible to the checkpoint)"
            if workers else f"{type(getattr(loader, 'dataset', None)).__name__} has no state_dict/load_state_dict"
            if dataset is None else "the checkpoint holds no data-stream state"
        )  # fmt: skip
        rank_zero_warn(
            f"resuming without the training data stream's position ({why}): the model, optimisers, "
            "schedulers, EMA, step and RNG are restored, but the run draws other patches from here on "
            "than an uninterrupted run would"
        )
