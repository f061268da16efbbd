"""Training patches (several per decode, shuffle buffer, sharding), the memory-map cache, the
device-side degradation and augmentation, and the data-wait monitor."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medsr.data.cache import ImageCache
from medsr.data.datasets import PatchDataset, _WorkerState
from medsr.data.decode import FovOptions, load_training_image
from medsr.data.degrade import bicubic_lr, eval_batch, random_dihedral, train_batch
from medsr.data.image_io import UnreadableImageError, write_image
from medsr.data.sources import ImageRecord, records_from
from medsr.errors import DataError
from medsr.ops import imresize, quantize
from medsr.training.callbacks.data_wait import DataWaitMonitor

P = 16


def _coded_images(folder: Path, n: int = 3, h: int = 60, w: int = 80) -> list[ImageRecord]:
    """Images whose pixels say where they come from: R = row, G = column, B = 40 * image index."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([y, x, np.full_like(y, 40 * i)], axis=-1).astype(np.uint8)
        paths.append(write_image(folder / f"{i:02d}.png", a))
    return records_from(paths)


def _assert_true_crops(hr: torch.Tensor) -> set[int]:
    """Every patch is an exact crop of its coded source image; returns the image ids seen."""
    ids = set()
    for patch in hr:
        y0, x0, b = (int(v) for v in patch[:, 0, 0])
        y, x = np.mgrid[y0 : y0 + P, x0 : x0 + P]
        expected = np.stack([y, x, np.full_like(y, b)])
        np.testing.assert_array_equal(patch.numpy(), expected)
        ids.add(b // 40)
    return ids


def _batches(ds: PatchDataset, seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [b["hr"] for b in ds]


def test_batches_are_exact_crops_from_many_images(tmp_path):
    records = _coded_images(tmp_path)
    ds = PatchDataset(records, P, batch_size=8, patches_per_image=8, buffer_size=24)
    batches = _batches(ds)
    assert len(batches) == len(ds) == 3  # 3 images * 8 patches / 8
    ids = set()
    for hr in batches:
        assert hr.shape == (8, 3, P, P) and hr.dtype == torch.uint8
        ids |= _assert_true_crops(hr)
    assert ids == {0, 1, 2}
    # One decode gives a whole batch's worth of patches: only the shuffle buffer mixes images.
    assert len(_assert_true_crops(batches[0])) > 1


def test_patches_are_deterministic_under_the_seed(tmp_path):
    records = _coded_images(tmp_path)
    ds = PatchDataset(records, P, batch_size=4, patches_per_image=4, buffer_size=8)
    a, b = _batches(ds, 0), _batches(PatchDataset(records, P, 4, 0, 4, 8), 0)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = _batches(PatchDataset(records, P, 4, 0, 4, 8), 1)
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(("n", "shards"), [(7, 3), (2, 5)])
def test_shards_split_each_round_of_images(n, shards):
    orders = [
        _WorkerState._order(np.random.default_rng([42, 0]), n, s, shards) for s in range(shards)
    ]
    rounds = -(-shards // n)
    per_round = [
        [next(o) for _ in range(len(range(s, n * rounds, shards)))] for s, o in enumerate(orders)
    ]
    seen = sorted(i for part in per_round for i in part)
    assert seen == sorted(list(range(n)) * rounds)  # every image once per round (per repeat)


def test_worker_loader_length_and_distinct_worker_streams(tmp_path):
    records = _coded_images(tmp_path, n=4)
    ds = PatchDataset(records, P, batch_size=4, num_workers=2, patches_per_image=5, buffer_size=8)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    torch.manual_seed(0)
    batches = [b["hr"] for b in loader]
    assert len(batches) == len(loader) == len(ds) == 6  # 2 workers x ceil(20 / 2 / 4)
    for hr in batches:
        _assert_true_crops(hr)
    assert not torch.equal(batches[0], batches[1])


def _truncated_png(folder: Path, name: str = "broken.png") -> Path:
    good = write_image(
        folder / "tmp.png", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    )
    bad = folder / name
    bad.write_bytes(good.read_bytes()[:400])
    good.unlink()
    return bad


def test_corrupt_file_in_a_worker_gives_the_clean_message(tmp_path):
    records = _coded_images(tmp_path / "imgs", n=1) + records_from([_truncated_png(tmp_path)])
    ds = PatchDataset(records, P, batch_size=2, num_workers=1, patches_per_image=1, buffer_size=0)
    with pytest.raises(UnreadableImageError) as err:
        for _ in DataLoader(ds, batch_size=None, num_workers=1):
            pass
    message = str(err.value)
    assert message.startswith("cannot read image") and "broken.png" in message
    assert "Traceback" not in message and "skip_bad" in message


def test_skip_bad_warns_and_keeps_training(tmp_path):
    bad = _truncated_png(tmp_path)
    records = _coded_images(tmp_path / "imgs", n=2) + records_from([bad])
    ds = PatchDataset(records, P, batch_size=4, patches_per_image=2, buffer_size=0, skip_bad=True)
    with pytest.warns(UserWarning, match=r"skipping .*broken.png.*\(1 skipped"):
        batches = _batches(ds)
    assert len(batches) == len(ds)
    for hr in batches:
        assert _assert_true_crops(hr) <= {0, 1}


def test_image_smaller_than_the_patch_is_named(tmp_path):
    small = write_image(tmp_path / "tiny.png", np.zeros((10, 40, 3), np.uint8))
    ds = PatchDataset(records_from([small]), P, batch_size=1, patches_per_image=1, buffer_size=0)
    with pytest.raises(
        DataError, match=r"tiny.png is 40x10, smaller than the 16x16 HR patch.*data.patch_size"
    ):
        _batches(ds)


# -- cache -----------------------------------------------------------------------------------
def test_cache_holds_the_decoded_images_and_is_reused(tmp_path, monkeypatch, samples_dir):
    records = records_from(
        sorted((samples_dir / "train").glob("*"))[:3]
    )  # RGB and gray, PNG and JPEG
    fov = FovOptions(True)
    cache = ImageCache.open_or_build(records, tmp_path / "cache", fov, workers=2, tag="t")
    assert cache.paths == [str(r.path) for r in records]
    for i, r in enumerate(records):
        image, mask = load_training_image(r, fov)
        np.testing.assert_array_equal(cache.image(i), image)
        np.testing.assert_array_equal(cache.mask(i), mask)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(ImageCache, "_build", staticmethod(no_rebuild))
    again = ImageCache.open_or_build(records, tmp_path / "cache", fov, tag="t")
    assert again.folder == cache.folder
    monkeypatch.undo()
    # A changed file means a new cache; so do other FOV settings.
    assert ImageCache.key(records, FovOptions(False)) != ImageCache.key(records, fov)
    work = tmp_path / "copy.png"
    work.write_bytes(records[0].path.read_bytes())
    key = ImageCache.key(records_from([work]), fov)
    st = work.stat()
    os.utime(work, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ImageCache.key(records_from([work]), fov) != key


def test_cache_patches_are_exact_crops(tmp_path):
    records = _coded_images(tmp_path / "imgs")
    cache = ImageCache.open_or_build(records, tmp_path / "cache", FovOptions(), tag="c")
    ds = PatchDataset(records, P, batch_size=16, patches_per_image=4, cache=cache)
    ids = set()
    for hr in _batches(ds):
        ids |= _assert_true_crops(hr)
    assert ids == {0, 1, 2}


def test_cache_build_skips_or_stops_on_corrupt_files(tmp_path):
    records = _coded_images(tmp_path / "imgs", n=2) + records_from([_truncated_png(tmp_path)])
    with pytest.raises(UnreadableImageError, match="broken.png"):
        ImageCache.open_or_build(records, tmp_path / "cache", FovOptions(), tag="x")
    assert not any((tmp_path / "cache").glob("x-*"))  # no half-built cache left behind
    with pytest.warns(UserWarning, match=r"skipped unreadable images \(1 file"):
        cache = ImageCache.open_or_build(
            records, tmp_path / "cache", FovOptions(), skip_bad=True, tag="x"
        )
    assert len(cache) == 2


# -- device-side degradation and augmentation ------------------------------------------------
def test_train_batch_degrades_with_matlab_bicubic():
    hr8 = torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8)
    out = train_batch({"hr": hr8}, scale=3, augment=False)
    hr = hr8.float() / 255
    torch.testing.assert_close(out["hr"], hr, rtol=0, atol=0)
    torch.testing.assert_close(out["lr"], quantize(imresize(hr, 1 / 3)), rtol=0, atol=0)
    assert out["lr"].shape == (4, 3, 8, 8)
    assert torch.equal(out["lr"] * 255, (out["lr"] * 255).round())  # 8-bit levels


def test_channels_last_worker_batches_degrade_like_contiguous_ones():
    hwc = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    view = hwc.permute(0, 3, 1, 2)  # what PatchDataset ships
    a = train_batch({"hr": view}, 2, augment=False)
    b = train_batch({"hr": view.contiguous()}, 2, augment=False)
    assert a["hr"].is_contiguous()
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])


def test_random_dihedral_draws_all_eight_transforms():
    x = torch.arange(2 * 5 * 5, dtype=torch.uint8).reshape(1, 2, 5, 5).expand(256, -1, -1, -1)
    out = random_dihedral(x, torch.Generator().manual_seed(0))
    group = []
    for t in (x[0], x[0].transpose(-1, -2)):
        for k in range(4):
            group.append(torch.rot90(t, k, dims=(-2, -1)))
    hits = [
        next(i for i, g in enumerate(group) if torch.equal(o, g)) for o in out
    ]  # each is one of the 8
    assert set(hits) == set(range(8))
    assert max(np.bincount(hits)) < 256 * 0.25  # roughly uniform
    with pytest.raises(ValueError, match="square"):
        random_dihedral(torch.zeros(1, 3, 4, 5))


def test_eval_batch_8_and_16_bit_and_lr_files():
    hr8 = torch.randint(0, 256, (1, 3, 12, 16), dtype=torch.uint8)
    mask = torch.ones(1, 1, 12, 16, dtype=torch.bool)
    out = eval_batch({"hr": hr8, "name": ["a"], "dataset": ["s"], "mask": mask}, 4)
    assert out["name"] == ["a"] and out["dataset"] == ["s"] and out["mask"] is mask
    torch.testing.assert_close(out["lr"], bicubic_lr(hr8.float() / 255, 4), rtol=0, atol=0)
    hr16 = torch.randint(0, 65536, (1, 1, 12, 16), dtype=torch.int32).to(torch.uint16)
    out16 = eval_batch({"hr": hr16, "name": ["b"], "dataset": ["s"]}, 2)
    assert out16["hr"].shape == (1, 1, 12, 16) and float(out16["hr"].max()) <= 1.0
    assert torch.equal(out16["lr"] * 65535, (out16["lr"] * 65535).round())  # 16-bit levels, not 8
    lr_file = torch.randint(0, 256, (1, 3, 3, 4), dtype=torch.uint8)
    with_file = eval_batch({"hr": hr8, "lr": lr_file, "name": ["a"], "dataset": ["s"]}, 4)
    torch.testing.assert_close(with_file["lr"], lr_file.float() / 255)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_lr_on_cpu_and_gpu():
    hr8 = torch.randint(
        0, 256, (8, 3, 96, 96), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    cpu = train_batch({"hr": hr8}, 4, augment=False)["lr"]
    gpu = train_batch({"hr": hr8.cuda()}, 4, augment=False)["lr"].cpu()
    differ = (cpu != gpu).float().mean().item()
    assert differ < 1e-4 and (cpu - gpu).abs().max() <= 1 / 255 + 1e-6  # at most a rare tie flips


# -- data-wait monitor -----------------------------------------------------------------------
def test_data_wait_fraction_is_logged_at_the_interval(monkeypatch):
    clock = iter([0.0, 1.0, 4.0, 5.0, 8.0, 9.0])  # starts/ends: step 1 s, wait 3 s
    monkeypatch.setattr("medsr.training.callbacks.data_wait.time.perf_counter", lambda: next(clock))
    logged = []
    logger = SimpleNamespace(log_metrics=lambda metrics, step: logged.append((step, metrics)))
    trainer = SimpleNamespace(
        log_every_n_steps=3, loggers=[logger], is_global_zero=True, global_step=0
    )
    monitor = DataWaitMonitor()
    monitor.on_train_epoch_start(trainer, None)
    for step in (1, 2, 3):
        monitor.on_train_batch_start(trainer, None, None, step - 1)
        trainer.global_step = step
        monitor.on_train_batch_end(trainer, None, None, None, step - 1)
    assert logged == [
        (3, {"perf/data_wait_frac": pytest.approx(6 / 9)})
    ]  # 2 waits of 3 s, 3 steps of 1 s
