"""Torch datasets: random HR patches for training (several per decode), whole images for evaluation.

Workers only decode and crop, and ship ``uint8``; the float work happens on the device
(``medsr.data.degrade``). Where and how patches are cut: ``medsr.data.patches``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from medsr.data.cache import ImageCache
from medsr.data.convert import as_uint8, chw_tensor, drop_alpha
from medsr.data.decode import (
    NO_FOV,
    FovOptions,
    load_training_image,
    read_record,
    skippable,
    too_small,
)
from medsr.data.fov import fov_mask, load_mask
from medsr.data.image_io import UnreadableImageError, read_image
from medsr.data.patches import PatchGeometry, crop_with_margin, draw_positioned, patch_position
from medsr.data.sources import EvalSet, ImageRecord
from medsr.errors import DataError


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PatchDataset(IterableDataset):
    """Batches of random HR patches, ``{"hr": (B, 3, P', P') uint8, "margin": m, "pos": (B, 3)}``:
    use ``DataLoader(batch_size=None)``.

    With ``margin`` m > 0 each patch is cut with m LR pixels (m * scale HR pixels) around it,
    P' = P + 2 m s, at a position on the scale's grid, so that the device step
    (``medsr.data.degrade.train_batch``) makes exactly the whole image's LR of the patch;
    ``pos`` holds (image index, y, x) of each patch's top-left corner (without the margin) in its
    image.

    Each decoded image gives ``patches_per_image`` patches into a shuffle buffer of
    ``buffer_size`` patches from which batches are drawn at random, so one ~0.1 s PNG decode
    feeds many training samples while a batch still mixes many images. With a ``cache`` (uint8
    memory map) an image costs nothing to "decode": every patch comes from a fresh image and is
    cropped straight into the batch. Workers assemble whole batches (no per-sample collation).
    A batch is stored pixel-interleaved (channels_last strides: each patch row is one memcpy
    from the HWC image, 7x faster than a CHW copy) and exposed with the (B, 3, P, P) shape.

    Images are visited in a fresh permutation per round, sharded across DataLoader workers and
    DDP ranks (the same permutation everywhere, disjoint shards). An epoch is about
    ``len(records) * patches_per_image`` patches, split evenly over ranks and workers and rounded
    up to whole batches so every rank runs the same number of steps.

    Args:
        records: training images.
        patch_size: HR patch side P.
        batch_size: patches per batch B.
        num_workers: the DataLoader's worker count (for ``__len__``).
        patches_per_image: patches per decode.
        buffer_size: shuffle-buffer capacity in patches.
        fov: field-of-view options (fundus data).
        skip_bad: skip unreadable / too small images with a warning instead of raising.
        cache: an ``ImageCache`` holding exactly ``records``, in order, or ``None``.
        scale: the patch positions' grid (the upscaling factor).
        margin: LR pixels cut around each patch for the degradation (``patches.LR_MARGIN``).
        channels: channels of a patch (3; 1 for grey medical slices).
        dtype: the patches' array type (uint8; uint16/int16 stored values for medical slices).
    """

    def __init__(
        self,
        records: list[ImageRecord],
        patch_size: int,
        batch_size: int,
        num_workers: int = 0,
        patches_per_image: int = 32,
        buffer_size: int = 512,
        fov: FovOptions = NO_FOV,
        skip_bad: bool = False,
        cache: ImageCache | None = None,
        scale: int = 1,
        margin: int = 0,
        channels: int = 3,
        dtype: np.dtype | type = np.uint8,
    ) -> None:
        super().__init__()
        if not records:
            raise DataError("no training image left to train on.")
        if cache is not None and [str(r.path) for r in records] != cache.paths:
            raise ValueError("the cache must hold exactly the training records, in order")
        self.records = list(records)
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.patches_per_image = max(1, int(patches_per_image))
        self.buffer_size = max(0, int(buffer_size))
        self.fov = fov
        self.skip_bad = skip_bad
        self.cache = cache
        self.geometry = PatchGeometry(patch_size, int(scale), int(margin))
        self.channels, self.dtype = int(channels), np.dtype(dtype)
        self._state: _WorkerState | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_state"] = None  # generators and memory maps are rebuilt in each worker
        return state

    def _batches_per_worker(self, workers: int, world: int) -> int:
        per_rank = math.ceil(len(self.records) * self.patches_per_image / world)
        return max(1, math.ceil(per_rank / workers / self.batch_size))

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        workers = max(1, self.num_workers)
        return self._batches_per_worker(workers, _dist_rank_world()[1]) * workers

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        wid, workers = (info.id, info.num_workers) if info else (0, 1)
        rank, world = _dist_rank_world()
        key = (wid, workers, rank, world)
        if info is None or self._state is None or self._state.key != key:
            # DataLoader gives every worker of this iterator the same base seed (+ worker id);
            # in the main process, draw one from torch's generator (seeded by seed_everything)
            # every epoch, as fresh workers do: a run resumed at an epoch end (RNG restored by
            # ResumeState) then draws the same patches as an uninterrupted one.
            base = info.seed - info.id if info else int(torch.randint(0, 2**62, ()).item())
            self._state = _WorkerState(self, key, base, rank * workers + wid, world * workers)
        state = self._state
        side = self.geometry.shipped
        shape = (self.batch_size, side, side, self.channels)
        for _ in range(self._batches_per_worker(workers, world)):
            hwc = torch.from_numpy(np.empty(shape, dtype=self.dtype))
            if info is not None:
                # Crop straight into the shared memory the DataLoader ships batches in: it would
                # otherwise copy every batch there (and fault in a private buffer first).
                hwc.share_memory_()
            pos = torch.empty((self.batch_size, 3), dtype=torch.int64)
            state.fill(hwc.numpy(), pos.numpy())
            yield {"hr": hwc.permute(0, 3, 1, 2), "margin": self.geometry.margin, "pos": pos}


class _WorkerState:
    """Per-process iteration state: image order, patch RNG, shuffle buffer, bad-file bookkeeping."""

    def __init__(self, ds: PatchDataset, key: tuple, base: int, shard: int, shards: int) -> None:
        self.ds, self.key = ds, key
        base &= 2**63 - 1
        self.order = self._order(np.random.default_rng([base, 0]), len(ds.records), shard, shards)
        self.rng = np.random.default_rng([base, 1, shard])
        self.buffer: list[tuple[np.ndarray, int, int, int]] = []
        self.bad: set[int] = set()
        self.capacity = max(ds.buffer_size, ds.patches_per_image)

    @staticmethod
    def _order(rng: np.random.Generator, n: int, shard: int, shards: int) -> Iterator[int]:
        """Endless image indices: per round one permutation shared by all shards, this shard's part."""
        rounds = math.ceil(shards / n)  # more workers than images: repeat images within a round
        while True:
            perm = np.concatenate([rng.permutation(n) for _ in range(rounds)])
            yield from perm[shard::shards].tolist()

    def fill(self, out: np.ndarray, pos: np.ndarray) -> None:
        """Write ``B`` patches into ``out`` ``(B, P', P', 3)`` and their positions into ``pos``."""
        ds, geo, rng = self.ds, self.ds.geometry, self.rng
        where = []
        if ds.cache is not None:
            for k in range(out.shape[0]):
                i, image, mask = self._next_image()
                y, x = patch_position(
                    mask, geo.extent(image.shape), geo.size, rng, ds.fov, geo.scale
                )
                out[k] = crop_with_margin(image, y, x, geo)
                where.append((i, y, x))
            pos[:] = where
            return
        buf = self.buffer
        for k in range(out.shape[0]):
            while len(buf) < self.capacity:
                i, image, mask = self._next_image()
                drawn = draw_positioned(image, mask, geo, ds.patches_per_image, rng, ds.fov)
                buf += [(patch, i, y, x) for patch, y, x in drawn]
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            out[k], *corner = buf.pop()
            where.append(corner)
        pos[:] = where

    def _next_image(self) -> tuple[int, np.ndarray, np.ndarray | None]:
        ds = self.ds
        while len(self.bad) < len(ds.records):
            i = next(self.order)
            if i in self.bad:
                continue
            try:
                return (i, *self._image(i))
            except DataError as e:
                if not ds.skip_bad:
                    raise
                self.bad.add(i)
                warnings.warn(
                    f"skipping {ds.records[i].path}: {e} ({len(self.bad)} skipped by this worker)",
                    stacklevel=2,
                )
        raise DataError(
            "every training image was skipped as unreadable or too small; see the warnings above."
        )

    def _image(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        ds = self.ds
        if ds.cache is not None:
            image, mask = ds.cache.image(i), ds.cache.mask(i)
        else:
            image, mask = load_training_image(ds.records[i], ds.fov)
        if min(image.shape[:2]) < ds.patch_size:
            raise too_small(ds.records[i].path, image.shape[:2], ds.patch_size)
        return image, mask


class EvalDataset(Dataset):
    """Whole images of one evaluation set, mod-cropped to the scale, native channels and bit depth.

    Items: ``{"hr": (C, H, W) uint8/uint16, "name": str, "dataset": str, "path": str}`` plus ``"lr"``
    (``(C, H/s, W/s)``) when the set ships LR files and ``"mask"`` (bool ``(1, H, W)``) for
    fundus sets. C = 1 for single-channel images, 3 otherwise (alpha dropped).

    Args:
        eval_set: the set's records and options.
        scale: upscaling factor.
        fov_threshold: ``fov_mask`` threshold (None = automatic).
    """

    def __init__(self, eval_set: EvalSet, scale: int, fov_threshold: float | None = None) -> None:
        self.set = eval_set
        self.scale = scale
        self.fov_threshold = fov_threshold

    def __len__(self) -> int:
        return len(self.set.records)

    def __getitem__(self, index: int) -> dict:
        record = self.set.records[index]
        s = self.scale
        try:
            image = drop_alpha(read_record(record))
        except UnreadableImageError as err:
            raise skippable(err) from None
        h, w = image.shape[:2]
        if h < s or w < s:
            raise DataError(
                f"image {record.path} ({w}x{h}) is smaller than the scale {s}; remove it."
            )
        hr = image[: h - h % s, : w - w % s]
        item = {
            "hr": chw_tensor(hr),
            "name": record.name,
            "dataset": self.set.name,
            "path": str(record.path),  # named in errors about this image
        }
        if record.lr_path is not None:
            item["lr"] = chw_tensor(self._lr(record, hr))
        if self.set.fov:
            if record.mask_path is not None:
                mask = load_mask(record.mask_path, (h, w))[: hr.shape[0], : hr.shape[1]]
            else:
                mask = fov_mask(hr, self.fov_threshold)
            item["mask"] = torch.from_numpy(np.require(mask, requirements=["C", "W"]))[None]
        return item

    def _lr(self, record: ImageRecord, hr: np.ndarray) -> np.ndarray:
        lr = drop_alpha(read_image(record.lr_path))
        want = (hr.shape[0] // self.scale, hr.shape[1] // self.scale)
        if lr.shape[:2] != want:
            raise DataError(
                f"LR file {record.lr_path} is {lr.shape[1]}x{lr.shape[0]} but {record.path} mod-cropped to "
                f"x{self.scale} needs {want[1]}x{want[0]}; use the LR files made for this HR set and scale, "
                "or remove the LR_bicubic folder to make LR with MATLAB-bicubic imresize."
            )
        if lr.dtype != hr.dtype:
            lr = as_uint8(lr) if hr.dtype == np.uint8 else lr.astype(np.uint16) * 257
        c = hr.shape[-1]
        if lr.shape[-1] != c:
            # Gray HR with an RGB LR file (R = G = B), or the reverse.
            lr = lr[..., :1] if c == 1 else np.repeat(lr[..., :1], 3, axis=-1)
        return lr
