"""What the DataModules' device step needs: the generator of each batch and the protocol words.

Training batch ``k`` of rank ``r`` in a run seeded ``s`` uses ``step_generator(s, k, r)``, with
``k`` Lightning's count of training batches (restored on resume, distinct per micro-batch under
gradient accumulation), so a resumed run augments and degrades as the uninterrupted one.
Evaluation image ``<set>/<name>`` uses ``image_generator(seed, "<set>/<name>")`` with
``degradation.seed`` (0 when null): the same LR for every method, run and machine order.
"""

from __future__ import annotations

import torch

from medsr.data.degradations.base import Degradation, image_generator, step_generator


def train_generator(trainer, seed: int, fallback_step: int) -> torch.Generator:
    """The generator of the training batch being moved to the device; without a Lightning
    Trainer (direct calls) the caller's own count ``fallback_step`` numbers the batches."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    if loop is None:
        return step_generator(seed, fallback_step)
    # Lightning moves batch k to the device before counting it as ready: ready == k here.
    return step_generator(seed, loop.batch_progress.total.ready, trainer.global_rank)


def eval_seed(degradation: Degradation) -> int:
    return 0 if degradation.seed is None else int(degradation.seed)


def eval_generator(degradation: Degradation, batch: dict) -> torch.Generator | None:
    """The evaluation image's own generator (None for deterministic degradations)."""
    if not degradation.random:
        return None
    key = f"{batch['dataset'][0]}/{batch['name'][0]}"
    return image_generator(eval_seed(degradation), key)


def lr_protocol(degradation: Degradation) -> str | None:
    """How a realistic degradation made the evaluation LR, in words (None: bicubic, the sets'
    own words apply)."""
    if not degradation.random:
        return None
    return (
        f"LR: medsr {degradation.name} degradation, seed {eval_seed(degradation)}, of mod-cropped "
        "HR (not the sets' LR files), rounded to the HR bit depth"
    )
