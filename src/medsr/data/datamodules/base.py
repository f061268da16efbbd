"""The shared DataModule machinery: training patches, evaluation sets, loaders, the device step.

Workers ship uint8 HR patches (training) or whole uint8/uint16 images (evaluation);
``on_after_batch_transfer`` makes the float LR/HR pair on the device (``medsr.data.degrade``).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader

from medsr.data.cache import ImageCache
from medsr.data.datasets import EvalDataset, PatchDataset
from medsr.data.decode import FovOptions, mask_setting, read_record
from medsr.data.degradations import BicubicDegradation, Degradation
from medsr.data.degradations.steps import eval_generator, lr_protocol, train_generator
from medsr.data.degrade import eval_batch, train_batch
from medsr.data.image_io import read_image
from medsr.data.medical import StoredRange
from medsr.data.patches import LR_MARGIN
from medsr.data.sources import EvalSet, ImageRecord, imresize_protocol
from medsr.data.splits import check_disjoint
from medsr.data.train_checks import check_training_images
from medsr.errors import ConfigError, DataError, warn_files
from medsr.ops.scales import check_scale

SIDES = ("val", "test")

# PatchDataset.__len__ is exact (disjoint shards, equal batch counts per worker and rank).
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


def _auto_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class SRData:
    """Shared machinery: training patches, evaluation sets, loaders and the device-side step.

    Subclasses list the files (``_list_train``, ``_list_eval``).

    Args:
        scale: upscaling factor (2, 3 or 4).
        patch_size: HR training patch side (a multiple of ``scale``); LR patches are P/s.
        batch_size: training batch size (per device); evaluation uses 1 (whole images).
        num_workers: DataLoader workers (None = one per CPU core, at most 8).
        patches_per_image: random patches per decoded image.
        buffer_size: shuffle buffer (patches) mixing images within a batch.
        cache: decode the training images once into a uint8 memory map reused by later runs.
        cache_dir: where caches live (None = ``$MEDSR_CACHE`` or ``~/.cache/medsr/data``).
        skip_bad: skip unreadable or too small images with a warning naming them, instead of
            stopping with an error.
        pin_memory: pinned host memory for faster copies (None = when CUDA is available).
        persistent_workers: keep training workers alive between epochs.
        prefetch_factor: batches prefetched per worker.
        fov: fundus data: patches inside the field of view, FOV masks for evaluation.
        mask_dir: FOV masks (``<stem>_mask.*``); None = the set's mask/ or computed; ``computed``.
        fov_min_fraction: least fraction of a training patch inside the FOV (else redrawn).
        fov_threshold: ``fov_mask`` threshold (fraction of full scale; None = automatic).
        split_seed: seed of held-out slices and splits (independent of the training seed, so the
            evaluation images stay the same across training seeds).
        tag: short dataset name used in run names.
        degradation: how LR is made (``medsr.data.degradations``; None = MATLAB bicubic).
        train_seed: seed of the per-batch generators of augmentation and degradation.
        exact_lr: bicubic training LR = the whole image's LR at the patch (patches cut with a
            margin, ``medsr.data.patches``); False = ``imresize`` of the bare patch.
    """

    separate_test = False  # test listed apart from validation: setup checks they share no file

    def __init__(
        self,
        scale: int,
        patch_size: int = 192,
        batch_size: int = 16,
        num_workers: int | None = None,
        patches_per_image: int = 32,
        buffer_size: int = 512,
        cache: bool = False,
        cache_dir: str | None = None,
        skip_bad: bool = False,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        prefetch_factor: int = 4,
        fov: bool = False,
        mask_dir: str | None = None,
        fov_min_fraction: float = 0.5,
        fov_threshold: float | None = None,
        split_seed: int = 0,
        tag: str | None = None,
        degradation: Degradation | None = None,
        train_seed: int = 0,
        exact_lr: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.num_workers = _auto_workers() if num_workers is None else int(num_workers)
        self.patches_per_image = patches_per_image
        self.buffer_size = buffer_size
        self.cache = cache
        self.cache_dir = cache_dir
        self.skip_bad = skip_bad
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.fov = FovOptions(bool(fov), float(fov_min_fraction), fov_threshold)
        self.compute_masks, self.mask_dir = mask_setting(mask_dir)
        self.split_seed = split_seed
        self.tag = tag
        self.degradation = degradation if degradation is not None else BicubicDegradation()
        self.train_seed = int(train_seed)
        self._direct_steps = 0  # numbers training batches outside a Lightning Trainer
        self.exact_lr = bool(exact_lr)
        self.eval_set_names: list[str] = []
        self.set_protocols: dict[str, str] = {}
        self.report = ""
        self._train_records: list[ImageRecord] | None = None
        self._train_set: PatchDataset | None = None
        self._eval_sets: dict[str, list[EvalSet]] = {}
        # What training patches hold (medical data: 1 channel, uint16/int16 stored values), and
        # the stored range the device step normalises by (None: uint8 / 255, uint16 / 65535).
        self.patch_channels, self.patch_dtype = 3, np.dtype(np.uint8)
        self.stored: StoredRange | None = None

    # -- settings --------------------------------------------------------------------------
    def _validate(self) -> None:
        """Check the settings. Called from the Lightning hooks, not the constructor: Hydra wraps
        constructor errors in its own exception, which would hide this message."""
        scale, p = self.scale, self.patch_size
        check_scale(scale)
        if not isinstance(p, int) or p < scale or p % scale:
            raise ConfigError(
                f"data.patch_size={p} must be a positive multiple of scale={scale} "
                f"(e.g. data.patch_size={48 * scale})."
            )
        if self.batch_size < 1 or self.patches_per_image < 1 or self.num_workers < 0:
            raise ConfigError(
                "data.batch_size and data.patches_per_image must be >= 1 and data.num_workers >= 0 "
                f"(got {self.batch_size}, {self.patches_per_image}, {self.num_workers})."
            )
        if not 0.0 <= self.fov.min_fraction <= 1.0:
            raise ConfigError(
                f"data.fov_min_fraction={self.fov.min_fraction} must be between 0 and 1."
            )

    # -- what subclasses provide -----------------------------------------------------------
    def _list_train(self) -> list[ImageRecord]:
        raise NotImplementedError

    def _list_eval(self, stage: str) -> list[EvalSet]:
        """Evaluation sets for ``stage`` in {"val", "test"}."""
        raise NotImplementedError

    # -- the DataModule hooks (Lightning calls them in training) ------------------------------
    def prepare_data(self) -> None:
        """Build the training cache once (Lightning runs this on one process per node)."""
        self._validate()
        if self.cache:
            self._open_cache()

    def setup(self, stage: str | None = None) -> None:
        self._validate()
        if stage in ("fit", None) and self._train_set is None:
            records = self._checked_train_records()
            cache = self._open_cache() if self.cache else None
            if cache is not None:
                kept = set(cache.paths)
                records = [r for r in records if str(r.path) in kept]
            self._train_set = PatchDataset(
                records,
                self.patch_size,
                self.batch_size,
                self.num_workers,
                self.patches_per_image,
                self.buffer_size,
                self.fov,
                self.skip_bad,
                cache,
                scale=self.scale,
                margin=LR_MARGIN if self.exact_lr else 0,
                channels=self.patch_channels,
                dtype=self.patch_dtype,
            )
        eval_stage = "test" if stage == "test" else "val"
        if stage != "predict":
            if self.separate_test:  # no checkpoint may be selected on a test image
                check_disjoint(
                    *([r.path for s in self._list_eval(k) for r in s.records] for k in SIDES)
                )
            sets = self.eval_sets(eval_stage)
            self.eval_set_names = [s.name for s in sets]
            lr_words = lr_protocol(self.degradation)
            bicubic = imresize_protocol(self.degradation)
            self.set_protocols = {s.name: lr_words or s.protocol or bicubic for s in sets}

    def train_dataloader(self) -> DataLoader:
        if self._train_set is None:
            self.setup("fit")
        workers = self.num_workers
        # The dataset yields whole batches (workers crop straight into them): no collation.
        return DataLoader(
            self._train_set,
            batch_size=None,
            **self._loader_kwargs(workers, self.persistent_workers),
        )

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._eval_loaders("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._eval_loaders("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """On the device: augment (training only) and degrade. See ``medsr.data.degrade``."""
        if not isinstance(batch, dict) or "hr" not in batch or batch["hr"].is_floating_point():
            return batch
        deg = self.degradation
        if "name" in batch:
            return eval_batch(batch, self.scale, deg, eval_generator(deg, batch), self.stored)
        trainer = getattr(self, "trainer", None)  # set by Lightning while it trains
        gen = train_generator(trainer, self.train_seed, self._direct_steps)
        self._direct_steps += 1
        augment = trainer is None or trainer.training
        return train_batch(batch, self.scale, augment, gen, deg, stored=self.stored)

    # -- protocol --------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        """How LR was made for evaluation, e.g. ``LR: files from LR_bicubic/X4``."""
        if not self.set_protocols:
            return lr_protocol(self.degradation) or imresize_protocol(self.degradation)
        distinct = sorted(set(self.set_protocols.values()))
        if len(distinct) == 1:
            return distinct[0]
        return "; ".join(
            f"{p} ({', '.join(n for n, q in self.set_protocols.items() if q == p)})"
            for p in distinct
        )

    # -- internals -------------------------------------------------------------------------
    def _loader_kwargs(self, workers: int, persistent: bool) -> dict:
        pin = torch.cuda.is_available() if self.pin_memory is None else self.pin_memory
        kwargs: dict = {"num_workers": workers, "pin_memory": pin}
        if workers > 0:
            kwargs.update(persistent_workers=persistent, prefetch_factor=self.prefetch_factor)
        return kwargs

    def eval_sets(self, stage: str) -> list[EvalSet]:  # "val" or "test", listed once
        if stage not in self._eval_sets:
            sets = self._list_eval(stage)
            if self.skip_bad:
                sets = [self._drop_unreadable(s) for s in sets]
            self._eval_sets[stage] = [s for s in sets if s.records]
            if not self._eval_sets[stage]:
                raise DataError(f"no {stage} image left to evaluate on; see the warnings above.")
        return self._eval_sets[stage]

    def _eval_loaders(self, stage: str) -> DataLoader | list[DataLoader]:
        sets = self.eval_sets(stage)
        loaders = [
            DataLoader(
                EvalDataset(s, self.scale, self.fov.threshold),
                batch_size=1,
                shuffle=False,
                **self._loader_kwargs(min(self.num_workers, 4, len(s.records)), persistent=False),
            )
            for s in sets
        ]
        return loaders[0] if len(loaders) == 1 else loaders

    def _drop_unreadable(self, eval_set: EvalSet) -> EvalSet:
        """With ``skip_bad``: decode every evaluation image (or slice) once and leave out those that
        fail."""
        good, bad = [], []
        for r in eval_set.records:
            try:
                read_record(r)
                if r.lr_path is not None:
                    read_image(r.lr_path)
                good.append(r)
            except DataError:
                bad.append(r.path)
        warn_files(f"skipping unreadable images of evaluation set {eval_set.name}", bad)
        eval_set.records = good
        return eval_set

    def _checked_train_records(self) -> list[ImageRecord]:
        if self._train_records is None:
            self._train_records = check_training_images(
                self._list_train(), self.patch_size, self.skip_bad
            )
        return self._train_records

    def _open_cache(self) -> ImageCache:
        return ImageCache.open_or_build(
            self._checked_train_records(),
            self.cache_dir,
            self.fov,
            self.skip_bad,
            workers=max(1, self.num_workers),
            tag=self.tag or type(self).__name__,
        )
