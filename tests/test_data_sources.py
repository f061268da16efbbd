"""Dataset listings: the DF2K layouts and report, the MESSIDOR-2 split, the benchmark layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsr.data.image_io import list_images
from medsr.data.sources import benchmark_sets, df2k_listing, messidor_images_dir
from medsr.data.splits import read_split, seeded_split, write_split
from medsr.errors import DataError


def _pngs(sources: list[Path], folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for src, name in zip(sources, names, strict=True):
        Image.open(src).save(folder / name)


@pytest.fixture(scope="module")
def bsds(shared_data) -> list[Path]:
    return list_images(shared_data / "train" / "BSDS500_test")[:7]


def test_df2k_layout_and_report(tmp_path, bsds):
    _pngs(bsds[:3], tmp_path / "DIV2K_train_HR", ["0001.png", "0002.png", "0003.png"])
    _pngs(
        bsds[3:5], tmp_path / "Flickr2K" / "Flickr2K_HR", ["000001.png", "000002.png"]
    )  # tar layout
    _pngs(bsds[5:7], tmp_path / "DIV2K_valid_HR", ["0801.png", "0802.png"])
    listing = df2k_listing(tmp_path, n_val=1)
    names = ["0001", "0002", "0003", "000001", "000002"]
    assert len(listing.val) == 1 and [r.name for r in listing.train + listing.val] != names
    assert sorted(r.name for r in listing.train + listing.val) == sorted(names)
    # Test on all of DIV2K_valid_HR; validation on a held-out training image, never a test one.
    assert [r.name for r in listing.test] == ["0801", "0802"]
    assert (listing.val_name, listing.test_name) == ("DF2K_heldout", "DIV2K_valid")
    report = listing.report
    assert "DIV2K_train_HR 3 images (the official set has 800)" in report
    assert "Flickr2K_HR 2 images (the official set has 2650)" in report
    assert "test on DIV2K_valid_HR (2 images)" in report
    assert "validation on 1 other held-out training images (seed 0)" in report
    assert "training on 4 images" in report


def test_df2k_without_validation_folder_holds_out_a_seeded_slice(tmp_path, bsds):
    _pngs(bsds[:5], tmp_path / "Flickr2K_HR", [f"{i:06d}.png" for i in range(1, 6)])
    a = df2k_listing(tmp_path, n_val=2, seed=0, n_test=1)
    b = df2k_listing(tmp_path, n_val=2, seed=0, n_test=1)
    assert [r.name for r in a.val] == [r.name for r in b.val] and len(a.val) == 2
    parts = [{r.name for r in part} for part in (a.train, a.val, a.test)]
    assert [len(p) for p in parts] == [2, 2, 1] and len(set.union(*parts)) == 5  # disjoint
    assert (a.val_name, a.test_name) == ("DF2K_heldout", "DF2K_heldout_test")
    assert "DIV2K_valid_HR absent: test on 1 held-out training images" in a.report
    # The test slice is drawn first: the number of validation images never moves it.
    assert df2k_listing(tmp_path, n_val=1, seed=0, n_test=1).test == a.test
    others = {tuple(r.name for r in df2k_listing(tmp_path, 2, s, n_test=1).val) for s in range(6)}
    assert len(others) > 1  # the seed matters


def test_df2k_missing_folders_name_the_key_and_download_pages(tmp_path):
    with pytest.raises(DataError) as err:
        df2k_listing(tmp_path / "nowhere", n_val=10)
    assert (
        "data.root=" in str(err.value)
        and "DIV2K" in str(err.value)
        and "https://" in str(err.value)
    )
    with pytest.raises(DataError, match="no DF2K training folder"):
        df2k_listing(tmp_path, n_val=10)


# -- MESSIDOR-2 ------------------------------------------------------------------------------
def _names(paths):
    return [p.name for p in paths]


def test_messidor_split_is_deterministic_disjoint_and_stable(tmp_path):
    images = [tmp_path / f"IM{i:04d}.png" for i in range(50)]
    a, how = seeded_split(images, tmp_path, n_train=30, n_val=5, n_test=10, seed=0)
    b, _ = seeded_split(images, tmp_path, n_train=30, n_val=5, n_test=10, seed=0)
    assert a == b and "split_seed=0" in how
    assert [len(a[k]) for k in ("train", "val", "test")] == [30, 5, 10]
    assert len(set(a["train"]) | set(a["val"]) | set(a["test"])) == 45
    for part in a.values():
        assert part == sorted(part)
    c, _ = seeded_split(images, tmp_path, n_train=None, n_val=5, n_test=10, seed=0)
    assert (
        c["test"] == a["test"] and c["val"] == a["val"] and len(c["train"]) == 35
    )  # n_train never moves test
    d, _ = seeded_split(images, tmp_path, n_train=30, n_val=5, n_test=10, seed=1)
    assert d["test"] != a["test"]
    with pytest.raises(DataError, match="data.n_train"):
        seeded_split(images, tmp_path, n_train=1000, n_val=10, n_test=100, seed=0)


def test_split_csv_round_trip_and_user_csv_errors(tmp_path):
    images_dir = tmp_path / "IMAGES"
    images_dir.mkdir()
    images = []
    for i in range(12):
        p = images_dir / f"{i:02d}.JPG"
        p.write_bytes(b"x")
        images.append(p)
    split, _ = seeded_split(images, images_dir, 6, 2, 4, seed=3)
    csv_path = tmp_path / "run" / "messidor_split.csv"
    write_split(csv_path, split, images_dir)
    lines = csv_path.read_text().splitlines()
    _, image, group = lines[1].split(",")
    assert lines[0] == "split,image,group" and group == image[:2]  # no groups: each its own
    assert read_split(csv_path, images_dir)[0] == split
    bad = tmp_path / "bad.csv"
    bad.write_text("split,image\ntrain,00.JPG\nval,01.JPG\ntest,missing.png\n")
    with pytest.raises(DataError, match="missing.png"):
        read_split(bad, images_dir)
    bad.write_text("file\n00.JPG\n")
    with pytest.raises(DataError, match="split,image"):
        read_split(bad, images_dir)
    bad.write_text("split,image\nholdout,00.JPG\n")
    with pytest.raises(DataError, match="unknown split"):
        read_split(bad, images_dir)
    # Validation on the test images is refused: no split may select on them.
    bad.write_text("split,image\ntrain,00.JPG\ntest,01.JPG\n")
    with pytest.raises(DataError, match="no val image"):
        read_split(bad, images_dir)


def test_messidor_images_folder_any_case(tmp_path):
    (tmp_path / "Images").mkdir()
    assert messidor_images_dir(tmp_path) == tmp_path / "Images"
    with pytest.raises(DataError, match="messidor2"):
        messidor_images_dir(tmp_path / "nope")


# -- benchmark sets --------------------------------------------------------------------------
def test_benchmark_sets_found_in_literature_order(shared_data):
    sets = benchmark_sets(shared_data / "benchmark", None, scale=4)
    assert [s.name for s in sets] == ["Set5", "Set14", "B100", "BSDS200", "Urban100"]
    assert [len(s.records) for s in sets] == [5, 14, 100, 200, 20]
    assert all("imresize" in s.protocol and all(r.lr_path is None for r in s.records) for s in sets)


def test_benchmark_layout_with_lr_files(tmp_path, shared_data):
    root = tmp_path / "benchmark"
    shutil.copytree(shared_data / "benchmark" / "Set5", root / "Set5")
    lr_dir = root / "Set5" / "LR_bicubic" / "X2"
    lr_dir.mkdir(parents=True)
    for p in sorted((root / "Set5" / "HR").glob("*.png")):
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(lr_dir / f"{p.stem}x2.png")
    (sets,) = benchmark_sets(root, ["Set5"], scale=2)
    assert sets.protocol == "LR: files from LR_bicubic/X2"
    assert all(r.lr_path == lr_dir / f"{r.name}x2.png" for r in sets.records)
    (x4,) = benchmark_sets(root, ["Set5"], scale=4)  # no X4 folder: LR made by imresize
    assert "imresize" in x4.protocol and all(r.lr_path is None for r in x4.records)
    (lr_dir / "babyx2.png").unlink()
    with pytest.raises(DataError, match="no LR file for .*baby.png"):
        benchmark_sets(root, ["Set5"], scale=2)
    with pytest.raises(DataError, match=r"set\(s\) Set14 not found.*found: Set5"):
        benchmark_sets(root, ["Set5", "Set14"], scale=2)
