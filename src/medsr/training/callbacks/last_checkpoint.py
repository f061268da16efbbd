"""``checkpoints/last.ckpt``, the file ``resume=auto`` continues from."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """Writes ``<dirpath>/last.ckpt`` after every validation, whether the score improved or not, and
    when training ends (also when no validation ran, e.g. ``max_steps < val_check_interval``).

    Lightning 2.6's ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only together
    with a new best checkpoint, so a run whose PSNR stalls (or a GAN's) would resume far back.

    Args:
        dirpath: the checkpoint folder.
        every_n_train_steps: also every ``n`` steps (more resume points than validations).
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            every_n_train_steps=every_n_train_steps,
        )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
        ending = (
            trainer.should_stop
            or (max_steps is not None and max_steps >= 0 and trainer.global_step >= max_steps)
            or (
                max_epochs is not None
                and max_epochs >= 0
                and trainer.current_epoch + 1 >= max_epochs
            )
        )
        # Before EMAWeights.on_train_end puts the average into the network: the raw weights are saved.
        if ending and not self._should_skip_saving_checkpoint(trainer):
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))
