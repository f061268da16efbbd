"""Training progress a person can read: steps of ``trainer.max_steps`` with the rate and the
time left, as a bar on a terminal and as a log line every ``every_n_steps`` steps otherwise
(``make train > log.txt``, SLURM). Lightning's own bar counts epochs, which mean nothing in
iteration-based training (``Epoch 49/-2``); ``trainer.enable_progress_bar`` stays off."""

from __future__ import annotations

import logging
import math
import sys
import time
from datetime import timedelta

from lightning.pytorch import Callback, LightningModule, Trainer

from medsr.errors import ConfigError

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return str(timedelta(seconds=round(seconds)))


class StepProgress(Callback):
    """Step counter with rate and ETA.

    Args:
        every_n_steps: a log line every this many steps when the output is not a terminal
            (also the first step and the last); 0 = never.
        bar: a progress bar (True), log lines (False), or None: a bar when stderr is a terminal.
    """

    def __init__(self, every_n_steps: int = 100, bar: bool | None = None) -> None:
        if (
            isinstance(every_n_steps, bool)
            or not isinstance(every_n_steps, int)
            or every_n_steps < 0
        ):
            raise ConfigError(
                f"callbacks.progress.every_n_steps={every_n_steps!r} must be a whole number >= 0"
            )
        self.every_n_steps = every_n_steps
        self.bar = bar
        self._bar = None
        self._mark: tuple[int, float] = (0, 0.0)  # (step, time) of the last line
        self._last_step = 0
        self._lines = 0

    def _total(self, trainer: Trainer) -> int | None:
        return trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._last_step = trainer.global_step
        self._lines = 0
        self._mark = (trainer.global_step, time.monotonic())
        interactive = sys.stderr.isatty() if self.bar is None else self.bar
        if interactive:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self._total(trainer),
                initial=trainer.global_step,
                unit="step",
                desc="training",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def _loss(self, trainer: Trainer) -> tuple[str, float] | None:
        """(name, value) of the training loss to show: the pixel loss, else the first logged."""
        metrics = trainer.callback_metrics
        keys = [k for k in ("train/l_pix", "train/l_g_pix") if k in metrics]
        keys += [k for k in metrics if k.startswith("train/l_")]
        return (keys[0].split("/", 1)[1], float(metrics[keys[0]])) if keys else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step == self._last_step:
            return
        self._last_step = step
        loss = self._loss(trainer)
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if loss is not None:
                self._bar.set_postfix({loss[0]: f"{loss[1]:.4g}"}, refresh=False)
            return
        total = self._total(trainer)
        first = not self._lines
        if self.every_n_steps and (step % self.every_n_steps == 0 or step == total or first):
            self._line(step, total, loss)

    def _line(self, step: int, total: int | None, loss: tuple[str, float] | None) -> None:
        now = time.monotonic()
        done, since = step - self._mark[0], now - self._mark[1]
        rate = done / since if since > 0 else math.nan
        parts = [f"step {step}/{total} ({100 * step / total:.1f}%)" if total else f"step {step}"]
        if loss is not None:
            parts.append(f"{loss[0]} {loss[1]:.4g}")
        parts.append(f"{rate:.2f} steps/s")
        if total:
            parts.append(f"ETA {_duration((total - step) / rate if rate > 0 else math.inf)}")
        log.info("%s", " | ".join(parts))
        self._mark = (step, now)
        self._lines += 1

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
