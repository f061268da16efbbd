"""Each DataModule end to end: setup, loaders, ``on_after_batch_transfer``, a short Trainer run,
and the bad inputs users hit (missing folders, corrupt or too small images, wrong settings)."""

from __future__ import annotations

import csv
import logging
import shutil
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import torch
from hydra.utils import instantiate
from PIL import Image

import medsr
from helpers import compose_config, cpu_trainer
from medsr.data import BenchmarkDataModule, DF2KDataModule, FolderDataModule, MessidorDataModule
from medsr.data.degrade import train_batch
from medsr.data.fov import load_mask, mask_iou
from medsr.data.image_io import UnreadableImageError, list_images, read_image, write_image
from medsr.data.patches import LR_MARGIN
from medsr.errors import ConfigError, DataError

CONF = Path(medsr.__file__).parent / "conf"
FAST = {
    "num_workers": 0,
    "patch_size": 32,
    "batch_size": 4,
    "patches_per_image": 4,
    "buffer_size": 8,
}


def compose_data(*overrides: str):
    return compose_config("train", *overrides).data


def first(loader):
    return next(iter(loader))


def as_training(dm, training: bool = True):
    dm.trainer = SimpleNamespace(training=training)
    return dm


def eval_batches(dm, stage="val"):
    loaders = dm.val_dataloader() if stage == "val" else dm.test_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]
    return [[dm.on_after_batch_transfer(b, i) for b in loader] for i, loader in enumerate(loaders)]


# -- fixtures built from real images ---------------------------------------------------------
@pytest.fixture(scope="module")
def df2k_root(tmp_path_factory, shared_data) -> Path:
    root = tmp_path_factory.mktemp("DF2K")
    src = list_images(shared_data / "train" / "BSDS500_test")
    layout = {
        "DIV2K_train_HR": ["0001", "0002", "0003"],
        "Flickr2K_HR": ["000001", "000002"],
        "DIV2K_valid_HR": ["0801", "0802"],
    }
    k = 0
    for folder, names in layout.items():
        (root / folder).mkdir()
        for name in names:
            Image.open(src[k]).save(root / folder / f"{name}.png")
            k += 1
    return root


@pytest.fixture(scope="module")
def messidor_root(tmp_path_factory, shared_data) -> Path:
    """16 DRIVE images in the MESSIDOR-2 layout, as .png, .JPG and .tif, with DRIVE's masks."""
    root = tmp_path_factory.mktemp("MESSIDOR-2")
    (root / "IMAGES").mkdir()
    (root / "mask").mkdir()
    drive = shared_data / "fundus" / "DRIVE" / "train"
    for i, path in enumerate(sorted((drive / "images").glob("*.png"))[:16]):
        stem = f"IM{i:04d}"
        image = read_image(path)
        if i % 3 == 0:
            write_image(root / "IMAGES" / f"{stem}.png", image)
        elif i % 3 == 1:
            Image.fromarray(image).save(root / "IMAGES" / f"{stem}.JPG", quality=95)
        else:
            tifffile.imwrite(root / "IMAGES" / f"{stem}.tif", image)
        shutil.copy(drive / "mask" / f"{path.stem}_mask.png", root / "mask" / f"{stem}_mask.png")
    return root


MESSIDOR_SPLIT = {"n_train": 10, "n_val": 2, "n_test": 4}


@pytest.mark.parametrize("name", ["samples", "folder", "df2k", "messidor", "benchmark"])
def test_every_data_config_instantiates_with_the_top_level_scale(name):
    cfg = compose_data(
        f"data={name}",
        "scale=3",
        "data.patch_size=96",
        "data.batch_size=8",
        "data.num_workers=1",
        "data.skip_bad=true",
    )
    dm = instantiate(cfg)  # no file is touched before setup
    assert type(dm).__name__ == cfg._target_.rsplit(".", 1)[1]
    assert (dm.scale, dm.patch_size, dm.batch_size, dm.num_workers, dm.skip_bad) == (
        3,
        96,
        8,
        1,
        True,
    )
    assert cfg.tag  # used in run names


# -- samples and folders ---------------------------------------------------------------------
def test_samples_config_gives_correct_batches():
    cfg = compose_data(
        "data=samples", "scale=2", "data.num_workers=0", "data.patch_size=48", "data.batch_size=4"
    )
    dm = as_training(instantiate(cfg))
    dm.setup("fit")
    batch = first(dm.train_dataloader())
    # Workers ship the patch with a margin of LR_MARGIN LR pixels (exact LR, see test_protocol_lr).
    side = 48 + 2 * LR_MARGIN * 2
    assert batch["hr"].shape == (4, 3, side, side) and batch["hr"].dtype == torch.uint8
    out = dm.on_after_batch_transfer(batch, 0)
    assert out["lr"].shape == (4, 3, 24, 24) and out["hr"].shape == (4, 3, 48, 48)
    assert out["lr"].dtype == out["hr"].dtype == torch.float32
    assert 0 <= float(out["lr"].min()) and float(out["hr"].max()) <= 1
    assert dm.eval_set_names == ["samples"] and dm.protocol.startswith(
        "LR: MATLAB-bicubic imresize"
    )
    (val,) = eval_batches(dm)
    shapes = {b["name"][0]: (tuple(b["hr"].shape), tuple(b["lr"].shape)) for b in val}
    assert shapes == {
        "chelsea": ((1, 3, 300, 450), (1, 3, 150, 225)),
        "microaneurysms": ((1, 1, 102, 102), (1, 1, 51, 51)),  # grayscale stays one channel
        "retina": ((1, 3, 1410, 1410), (1, 3, 705, 705)),  # mod-cropped from 1411
    }
    assert all(b["dataset"] == ["samples"] for b in val)


def test_augmentation_only_in_training_and_evaluation_is_deterministic():
    dm = FolderDataModule(
        train_dirs=[medsr.conf.resolvers.samples_dir("train")],
        val_dirs=[medsr.conf.resolvers.samples_dir("val")],
        scale=4,
        **{**FAST, "batch_size": 16},
    )
    dm.setup("fit")
    batch = first(dm.train_dataloader())
    plain = batch["hr"].float() / 255
    as_training(dm, False)
    assert torch.equal(dm.on_after_batch_transfer({"hr": batch["hr"]}, 0)["hr"], plain)
    as_training(dm, True)
    augmented = dm.on_after_batch_transfer({"hr": batch["hr"]}, 0)["hr"]
    assert not torch.equal(augmented, plain)  # 16 patches all drawing the identity: p = 8^-16
    # Pixels moved, not changed: each patch holds the same multiset of values.
    assert torch.equal(augmented.flatten(1).sort().values, plain.flatten(1).sort().values)
    first_pass, second_pass = eval_batches(dm)[0], eval_batches(dm)[0]
    assert all(torch.equal(a["lr"], b["lr"]) for a, b in zip(first_pass, second_pass, strict=True))


def test_folder_with_every_image_kind(tmp_path, caplog):
    rng = np.random.default_rng(0)
    train = tmp_path / "train"
    write_image(train / "rgb16.png", rng.integers(0, 65536, (40, 48, 3), dtype=np.uint16))
    write_image(train / "gray.png", rng.integers(0, 256, (40, 40, 1), dtype=np.uint8))
    write_image(train / "gray16.tif", rng.integers(0, 65536, (36, 44, 1), dtype=np.uint16))
    write_image(train / "rgba.png", rng.integers(0, 256, (40, 40, 4), dtype=np.uint8))
    pal = Image.fromarray(rng.integers(0, 4, (40, 40), dtype=np.uint8), mode="P")
    pal.putpalette(list(range(12)) + [0] * 756)
    pal.save(train / "palette.png")
    val16 = rng.integers(0, 65536, (22, 30, 3), dtype=np.uint16)
    write_image(tmp_path / "val" / "deep.png", val16)
    write_image(tmp_path / "val" / "gray.png", rng.integers(0, 256, (20, 20, 1), dtype=np.uint8))
    dm = as_training(
        FolderDataModule(train_dirs=[str(train)], val_dirs=[str(tmp_path / "val")], scale=2, **FAST)
    )
    with caplog.at_level(logging.INFO, logger="medsr.data"):
        dm.setup("fit")
    assert "1 training image(s) have an alpha channel" in caplog.text
    assert "2 training image(s) are 16-bit" in caplog.text
    for batch in dm.train_dataloader():
        assert batch["hr"].shape == (4, 3, 40, 40) and batch["hr"].dtype == torch.uint8
        assert train_batch(batch, 2, False)["hr"].shape == (4, 3, 32, 32)
    (val,) = eval_batches(dm)
    deep, gray = val
    assert deep["hr"].shape == (1, 3, 22, 30) and gray["hr"].shape == (1, 1, 20, 20)
    expected = torch.from_numpy(val16.astype(np.float32) / 65535).permute(2, 0, 1)[None]
    torch.testing.assert_close(deep["hr"], expected)  # full 16-bit precision in evaluation


def test_folder_holds_out_validation_images_when_no_val_dirs(tmp_path, samples_dir):
    dm = FolderDataModule(train_dirs=[str(samples_dir / "train")], n_val=2, scale=2, **FAST)
    dm.setup("fit")
    held = {r.name for r in dm.eval_sets("val")[0].records}
    trained = {r.name for r in dm._train_set.records}
    assert len(held) == 2 and len(trained) == 6 and not held & trained


# -- DF2K ------------------------------------------------------------------------------------
def test_df2k_datamodule(df2k_root, caplog):
    cfg = compose_data(
        "data=df2k",
        "scale=4",
        f"data.root={df2k_root}",
        "data.num_workers=0",
        "data.patch_size=64",
        "data.batch_size=4",
        "data.n_val=1",
    )
    assert cfg.patch_size == 64 and cfg.tag == "DF2K"
    dm = as_training(instantiate(cfg))
    with caplog.at_level(logging.INFO, logger="medsr.data"):
        dm.setup("fit")
    assert "DIV2K_train_HR 3 images" in caplog.text and "training on 4 images" in caplog.text
    out = dm.on_after_batch_transfer(first(dm.train_dataloader()), 0)
    assert out["lr"].shape == (4, 3, 16, 16) and out["hr"].shape == (4, 3, 64, 64)
    assert dm.eval_set_names == ["DF2K_heldout"]  # validation: a held-out training image
    (val,) = eval_batches(dm)
    trained = {r.name for r in dm._train_set.records}
    assert len(val) == 1 and val[0]["name"][0] not in trained | {"0801", "0802"}
    dm.setup("test")
    (test,) = eval_batches(dm, "test")
    assert dm.eval_set_names == ["DIV2K_valid"]
    assert [b["name"][0] for b in test] == ["0801", "0802"]
    for b in test:
        h, w = b["hr"].shape[-2:]
        assert h % 4 == 0 and w % 4 == 0 and b["lr"].shape[-2:] == (h // 4, w // 4)


# -- MESSIDOR-2 ------------------------------------------------------------------------------
def test_messidor_split_written_reused_and_deterministic(messidor_root, tmp_path):
    split_file = tmp_path / "run" / "messidor_split.csv"
    dm = MessidorDataModule(
        root=str(messidor_root), split_file=str(split_file), scale=2, **MESSIDOR_SPLIT, **FAST
    )
    dm.setup("fit")
    rows = list(csv.DictReader(split_file.read_text().splitlines()))
    assert [sum(r["split"] == k for r in rows) for k in ("train", "val", "test")] == [10, 2, 4]
    assert {Path(r["image"]).suffix for r in rows} == {".png", ".JPG", ".tif"}
    other = MessidorDataModule(root=str(messidor_root), scale=2, **MESSIDOR_SPLIT, **FAST)
    other.setup("fit")  # no Hydra run folder, no file: the same seeded split
    assert [r.name for r in other._train_set.records] == [r.name for r in dm._train_set.records]
    reused = MessidorDataModule(
        root=str(messidor_root), split_file=str(split_file), split_seed=7, n_test=1, scale=2, **FAST
    )
    reused.setup("test")
    assert [r.name for r in reused.eval_sets("test")[0].records] == [
        r["image"].rsplit(".", 1)[0] for r in rows if r["split"] == "test"
    ]


@pytest.mark.parametrize("mask_source", ["folder", "computed"])
def test_messidor_eval_masks(messidor_root, tmp_path, mask_source):
    root = messidor_root
    if mask_source == "computed":
        root = tmp_path / "m2"
        shutil.copytree(messidor_root / "IMAGES", root / "IMAGES")
    dm = MessidorDataModule(root=str(root), scale=4, **MESSIDOR_SPLIT, **FAST)
    dm.setup("test")
    assert dm.eval_set_names == ["MESSIDOR2"]
    (test,) = eval_batches(dm, "test")
    assert len(test) == 4
    for b in test:
        mask = b["mask"]
        assert mask.dtype == torch.bool and mask.shape == (1, 1, *b["hr"].shape[-2:])
        truth = load_mask(messidor_root / "mask" / f"{b['name'][0]}_mask.png")[
            : mask.shape[2], : mask.shape[3]
        ]
        iou = mask_iou(mask[0, 0].numpy(), truth)
        assert iou == 1.0 if mask_source == "folder" else iou >= 0.95


def test_messidor_training_patches_stay_inside_the_fov(messidor_root):
    def dark_fraction(fov: bool) -> float:
        dm = MessidorDataModule(
            root=str(messidor_root),
            scale=2,
            fov=fov,
            fov_min_fraction=1.0,
            **MESSIDOR_SPLIT,
            **{**FAST, "patch_size": 64, "batch_size": 16, "patches_per_image": 16},
        )
        dm.setup("fit")
        torch.manual_seed(0)
        hr = torch.cat([train_batch(b, 2, False)["hr"] for b in dm.train_dataloader()])
        return float((hr.max(dim=1).values < 12 / 255).float().mean())  # the black surround

    assert dark_fraction(fov=True) == 0.0
    assert dark_fraction(fov=False) > 0.05


# -- benchmark -------------------------------------------------------------------------------
def test_benchmark_datamodule_one_loader_per_set(shared_data):
    cfg = compose_data(
        "data=benchmark",
        "scale=3",
        f"data.root={shared_data / 'benchmark'}",
        "data.sets=[Set5,Set14]",
        "data.num_workers=0",
    )
    dm = instantiate(cfg)
    dm.setup("test")
    assert dm.eval_set_names == ["Set5", "Set14"]
    assert dm.protocol == "LR: MATLAB-bicubic imresize of mod-cropped HR, 8-bit"
    set5, set14 = eval_batches(dm, "test")
    assert len(set5) == 5 and len(set14) == 14
    by_name = {b["name"][0]: b for b in set14}
    assert by_name["bridge"]["hr"].shape[1] == 1  # single-channel PNG
    assert by_name["man"]["hr"].shape[1] == 3  # RGB with R = G = B stays RGB
    assert by_name["comic"]["hr"].shape[-2:] == (360, 249)  # 361x250 mod-cropped to 3
    assert all(b["dataset"] == ["Set14"] for b in set14)
    with pytest.raises(ConfigError, match="evaluation sets only"):
        dm.setup("fit")


def test_benchmark_uses_lr_files_when_shipped(shared_data, tmp_path):
    root = tmp_path / "benchmark"
    shutil.copytree(shared_data / "benchmark" / "Set5", root / "Set5")
    (root / "Set5" / "LR_bicubic" / "X2").mkdir(parents=True)
    for p in list_images(root / "Set5" / "HR"):
        im = Image.open(p)
        w, h = im.size
        # Pillow's bicubic differs from MATLAB's: the batch must carry these exact pixels.
        im.crop((0, 0, w - w % 2, h - h % 2)).resize((w // 2, h // 2), Image.BICUBIC).save(
            root / "Set5" / "LR_bicubic" / "X2" / f"{p.stem}x2.png"
        )
    dm = BenchmarkDataModule(root=str(root), scale=2, num_workers=0)
    dm.setup("test")
    assert dm.protocol == "LR: files from LR_bicubic/X2"
    for b in eval_batches(dm, "test")[0]:
        file_lr = read_image(root / "Set5" / "LR_bicubic" / "X2" / f"{b['name'][0]}x2.png")
        expected = torch.from_numpy(file_lr.copy()).permute(2, 0, 1)[None].float() / 255
        torch.testing.assert_close(b["lr"], expected, rtol=0, atol=0)
    # Wrong-size LR files are named, with the fix.
    (root / "Set5" / "LR_bicubic" / "X2" / "babyx2.png").unlink()
    write_image(root / "Set5" / "LR_bicubic" / "X2" / "babyx2.png", np.zeros((10, 10, 3), np.uint8))
    dm = BenchmarkDataModule(root=str(root), scale=2, num_workers=0)
    dm.setup("test")
    with pytest.raises(DataError, match=r"babyx2.png is 10x10 .* needs 256x256"):
        eval_batches(dm, "test")


# -- short training runs ---------------------------------------------------------------------
def _fit(dm, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from medsr.models import build_model
    from medsr.training import SRModule
    from medsr.training.callbacks import DataWaitMonitor

    module = SRModule(
        build_model("edsr", dm.scale, num_feat=4, num_block=1),
        dm.scale,
        optimizer=partial(torch.optim.Adam, lr=1e-4),
    )
    trainer = cpu_trainer(
        2,
        val_every=2,
        limit_val_batches=1,
        log_every_n_steps=1,
        enable_checkpointing=False,
        logger=CSVLogger(tmp_path),
        callbacks=[DataWaitMonitor()],
    )
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2
    rows = list(
        csv.DictReader((Path(trainer.logger.log_dir) / "metrics.csv").read_text().splitlines())
    )
    return {k for row in rows for k, v in row.items() if v}


@pytest.mark.parametrize("kind", ["folder", "df2k", "messidor"])
def test_short_training_run(kind, tmp_path, df2k_root, messidor_root, samples_dir):
    if kind == "folder":
        dm = FolderDataModule(train_dirs=[str(samples_dir / "train")], n_val=1, scale=2, **FAST)
    elif kind == "df2k":
        dm = DF2KDataModule(root=str(df2k_root), n_val=1, scale=4, **FAST)
    else:
        dm = MessidorDataModule(root=str(messidor_root), scale=2, **MESSIDOR_SPLIT, **FAST)
    logged = _fit(dm, tmp_path)
    name = dm.eval_set_names[0]
    assert {"train/l_pix", "perf/data_wait_frac", f"val/{name}/psnr_y"} <= logged
    if kind == "messidor":
        assert f"val/{name}/psnr_y_fov" in logged


# -- bad inputs ------------------------------------------------------------------------------
def test_bad_settings_fail_clearly(tmp_path):
    # Checked in setup, not in the constructor: Hydra would wrap a constructor error in its own.
    cfg = compose_data("data=samples", "scale=5")
    with pytest.raises(ConfigError, match="scale=5 is not supported"):
        instantiate(cfg).setup("fit")
    cfg = compose_data("data=samples", "scale=2", "data.patch_size=97")
    with pytest.raises(
        ConfigError, match="data.patch_size=97 must be a positive multiple of scale=2"
    ):
        instantiate(cfg).setup("fit")
    with pytest.raises(ConfigError, match="fov_min_fraction=1.5"):
        FolderDataModule(train_dirs=["x"], scale=2, fov_min_fraction=1.5).prepare_data()
    dm = FolderDataModule(train_dirs=[str(tmp_path / "missing")], scale=2, **FAST)
    with pytest.raises(DataError, match=r"missing does not exist\. Set data\.train_dirs=<folder>"):
        dm.setup("fit")
    dm = DF2KDataModule(root=str(tmp_path / "nowhere"), scale=2, **FAST)
    with pytest.raises(DataError, match="data.root=.*https://data.vision.ee.ethz.ch/cvl/DIV2K/"):
        dm.setup("fit")
    dm = MessidorDataModule(root=str(tmp_path / "nowhere"), scale=2, **FAST)
    with pytest.raises(DataError, match="MESSIDOR-2 folder .*nowhere does not exist.*adcis"):
        dm.setup("fit")


def test_bad_images_stop_or_are_skipped_with_a_warning(tmp_path, samples_dir):
    train = tmp_path / "train"
    shutil.copytree(samples_dir / "train", train)
    (train / "junk.png").write_bytes(b"not an image")
    write_image(train / "small.png", np.zeros((20, 20, 3), np.uint8))
    dm = FolderDataModule(train_dirs=[str(train)], n_val=1, scale=2, **FAST)
    with pytest.raises(UnreadableImageError, match="junk.png.*data.skip_bad=true"):
        dm.setup("fit")
    (train / "junk.png").unlink()
    dm = FolderDataModule(train_dirs=[str(train)], n_val=1, scale=2, **FAST)
    with pytest.raises(DataError, match="small.png is 20x20, smaller than the 32x32 HR patch"):
        dm.setup("fit")
    (train / "junk.png").write_bytes(b"not an image")
    dm = FolderDataModule(train_dirs=[str(train)], n_val=1, scale=2, skip_bad=True, **FAST)
    with pytest.warns(UserWarning) as record:
        dm.setup("fit")
    messages = "\n".join(str(w.message) for w in record)
    assert (
        "skipping unreadable training images (data.skip_bad=true) (1 file(s))" in messages
        and "junk.png" in messages
    )
    assert (
        "smaller than the 32px patch (data.skip_bad=true) (1 file(s))" in messages
        and "small.png" in messages
    )
    assert len(dm._train_set.records) == 7  # 8 samples + 2 bad - 1 held out - 2 skipped


def test_corrupt_evaluation_image_skipped_with_skip_bad(tmp_path, samples_dir):
    val = tmp_path / "val"
    shutil.copytree(samples_dir / "val", val)
    good = (val / "chelsea.png").read_bytes()
    (val / "cut.png").write_bytes(good[: len(good) // 3])
    dm = FolderDataModule(
        train_dirs=[str(samples_dir / "train")], val_dirs=[str(val)], scale=2, skip_bad=True, **FAST
    )
    with pytest.warns(
        UserWarning, match=r"skipping unreadable images of evaluation set folder \(1 file"
    ):
        dm.setup("validate")
    assert [b["name"][0] for b in eval_batches(dm)[0]] == ["chelsea", "microaneurysms", "retina"]
    strict = FolderDataModule(
        train_dirs=[str(samples_dir / "train")], val_dirs=[str(val)], scale=2, **FAST
    )
    strict.setup("validate")
    with pytest.raises(UnreadableImageError, match="cut.png"):
        eval_batches(strict)


def test_cache_is_built_once_and_reused_by_the_next_run(tmp_path, samples_dir, monkeypatch):
    from medsr.data.cache import ImageCache

    def dm():
        return FolderDataModule(
            train_dirs=[str(samples_dir / "train")],
            n_val=1,
            scale=2,
            cache=True,
            cache_dir=str(tmp_path),
            **FAST,
        )

    first_run = dm()
    first_run.prepare_data()
    first_run.setup("fit")
    (folder,) = tmp_path.glob("*-*")
    assert first_run._train_set.cache.folder == folder and len(first_run._train_set.cache) == 7
    for batch in first_run.train_dataloader():
        assert batch["hr"].shape == (4, 3, 40, 40)  # 32 + 2 x 2 LR pixels of margin at x2

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(ImageCache, "_build", staticmethod(no_rebuild))
    second_run = dm()
    second_run.prepare_data()
    second_run.setup("fit")
    assert second_run._train_set.cache.folder == folder
