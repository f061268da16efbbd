"""``perf/data_wait_frac``: the share of training time spent waiting for the next batch."""

from __future__ import annotations

import time

from lightning.pytorch import Callback


class DataWaitMonitor(Callback):
    """Logs the fraction of wall time between training steps (fetching the next batch, moving it
    to the device, ``on_after_batch_transfer``) over the total, at the trainer's logging interval.

    Host timestamps only (``time.perf_counter``): no device synchronisation per step. The gaps
    across validation, checkpointing and epoch boundaries are left out, so the figure is the
    steady-state share; near 0 means the GPU never starves, near 1 means the data pipeline is
    the bottleneck (add ``data.num_workers``, raise ``data.patches_per_image`` or use
    ``data.cache=true``).

    Args:
        logging_interval: steps between logs (None = the trainer's ``log_every_n_steps``).
    """

    def __init__(self, logging_interval: int | None = None) -> None:
        self.logging_interval = logging_interval
        self._last_end: float | None = None
        self._start: float | None = None
        self._wait = 0.0
        self._step = 0.0
        self.last_value: float | None = None

    def _reset_gap(self, *args, **kwargs) -> None:
        self._last_end = None

    on_train_epoch_start = _reset_gap
    on_validation_start = _reset_gap
    on_save_checkpoint = _reset_gap

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self._wait += now - self._last_end
        self._start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._start is not None:
            self._step += now - self._start
        self._last_end = now
        interval = self.logging_interval or trainer.log_every_n_steps
        if interval and trainer.global_step % interval == 0 and self._wait + self._step > 0:
            self.last_value = self._wait / (self._wait + self._step)
            self._wait = self._step = 0.0
            if trainer.is_global_zero:
                for logger in trainer.loggers:
                    logger.log_metrics(
                        {"perf/data_wait_frac": self.last_value}, step=trainer.global_step
                    )
