"""Patient-level splits and disjoint validation/test (docs/protocol.md, "split"): whole groups on
one side, test drawn first, counts as close as whole groups allow, groups files in both layouts,
and a tiny MESSIDOR-2 run on real fundus images arranged as examination pairs."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import FAST_TRAIN, TINY_EDSR, run_module
from medsr.data import FolderDataModule, MessidorDataModule
from medsr.data.datamodules.messidor import PER_IMAGE_WARNING
from medsr.data.splits import (
    SPLITS,
    crossing_groups,
    read_groups,
    read_split,
    seeded_split,
    write_split,
)
from medsr.errors import DataError

FAST = {"num_workers": 0, "patch_size": 32, "batch_size": 2, "patches_per_image": 2}


def pairs_of(images: list[Path], singles: int = 0) -> dict[Path, str]:
    """Examinations of two eyes (consecutive images), the last ``singles`` images alone."""
    paired = images[: len(images) - singles]
    return {p: f"exam{i // 2}" for i, p in enumerate(paired)}


def test_whole_groups_go_to_one_side_deterministically(tmp_path):
    images = [tmp_path / f"IM{i:03d}.png" for i in range(41)]
    groups = pairs_of(images, singles=1)  # 20 pairs and one image without a partner
    a, how = seeded_split(images, tmp_path, None, 4, 10, seed=0, groups=groups)
    assert not crossing_groups(a, groups) and "patient-level" in how
    assert [len(a[k]) for k in SPLITS] == [27, 4, 10]
    assert a == seeded_split(images, tmp_path, None, 4, 10, seed=0, groups=groups)[0]
    for n_train, n_val in ((6, 4), (20, 2), (None, 8)):  # test first: it never moves
        other, _ = seeded_split(images, tmp_path, n_train, n_val, 10, seed=0, groups=groups)
        assert other["test"] == a["test"] and not crossing_groups(other, groups)
    assert (
        seeded_split(images, tmp_path, None, 4, 10, seed=1, groups=groups)[0]["test"] != a["test"]
    )


def test_counts_are_as_close_as_whole_groups_allow_and_said(tmp_path):
    images = [tmp_path / f"IM{i:03d}.png" for i in range(20)]
    groups = pairs_of(images)  # only pairs: odd counts cannot be met
    split, how = seeded_split(images, tmp_path, 7, 3, 5, seed=0, groups=groups)
    sizes = [len(split[k]) for k in SPLITS]
    assert all(abs(n - want) == 1 for n, want in zip(sizes, (7, 3, 5), strict=True))
    assert all(n % 2 == 0 for n in sizes) and not crossing_groups(split, groups)
    assert f"test {sizes[2]} for 5" in how and f"train {sizes[0]} for 7" in how


def test_without_groups_the_split_is_the_per_image_split_of_0_1(tmp_path):
    images = [tmp_path / f"IM{i:03d}.png" for i in range(30)]
    split, how = seeded_split(images, tmp_path, 12, 3, 6, seed=4)
    order = np.random.default_rng(4).permutation(30)  # 0.1's rule: test, val, then train
    want = [order[9:21], order[6:9], order[:6]]
    assert [split[k] for k in SPLITS] == [[images[i] for i in sorted(w)] for w in want]
    assert "patient-level" not in how


@pytest.mark.parametrize("layout", ["messidor-2.csv", "image,group"])
def test_groups_file_layouts(tmp_path, layout):
    images_dir = tmp_path / "IMAGES"
    images = [images_dir / f"20051020_{i:05d}_0100_PP.png" for i in range(6)]
    if layout == "messidor-2.csv":  # the distribution's list: one examination per row
        rows = ["left;right"] + [f"{images[i].name};{images[i + 1].name}" for i in (0, 2, 4)]
    else:
        rows = ["image,group"] + [f"{p.name},patient{i // 2}" for i, p in enumerate(images)]
    path = tmp_path / "groups.csv"
    path.write_text("\n".join(rows) + "\n")
    groups = read_groups(path, images, images_dir)
    assert len(groups) == 6 and len(set(groups.values())) == 3
    assert all(groups[images[i]] == groups[images[i + 1]] for i in (0, 2, 4))


def test_groups_file_errors_and_warnings(tmp_path):
    images_dir = tmp_path / "IMAGES"
    images = [images_dir / f"IM{i}.png" for i in range(4)]
    path = tmp_path / "groups.csv"
    with pytest.raises(DataError, match="does not exist"):
        read_groups(path, images, images_dir)
    path.write_text("IM0.png;IM1.png\nIM1.png;IM2.png\n")
    with pytest.raises(DataError, match="IM1.png is in two groups"):
        read_groups(path, images, images_dir)
    path.write_text("a.png;b.png\n")
    with pytest.raises(DataError, match="names none of the 4 images"):
        read_groups(path, images, images_dir)
    path.write_text("IM0.png;IM1.png\nIM9.png;IM3.png\n")
    with pytest.warns(UserWarning) as caught:
        groups = read_groups(path, images, images_dir)
    text = " ".join(str(w.message) for w in caught)
    assert "IM9.png" in text and "(1 file(s))" in text  # named and counted, then ignored
    assert "each is a group of its own" in text and "IM2.png" in text
    assert groups[images[0]] == groups[images[1]] and groups[images[3]] == "IM9"


def test_split_file_with_a_crossing_group_is_refused(tmp_path):
    images_dir = tmp_path / "IMAGES"
    images_dir.mkdir()
    images = []
    for i in range(6):
        images.append(images_dir / f"IM{i}.png")
        images[-1].write_bytes(bytes([i]))
    split = {"train": images[:2], "val": images[2:4], "test": images[4:]}
    good = {p: f"g{i // 2}" for i, p in enumerate(images)}
    write_split(tmp_path / "ok.csv", split, images_dir, good)
    assert read_split(tmp_path / "ok.csv", images_dir) == (split, good)
    bad = {**good, images[2]: "g0"}  # IM2 with IM0/IM1's patient: val and train
    write_split(tmp_path / "bad.csv", split, images_dir, bad)
    with pytest.raises(DataError, match=r"1 group\(s\) span two sides.*g0 \(train/val\)"):
        read_split(tmp_path / "bad.csv", images_dir)


def test_validation_and_test_sharing_an_image_is_an_error_naming_it(tmp_path, samples_dir):
    val, test = tmp_path / "val", tmp_path / "test"
    val.mkdir()
    test.mkdir()
    shutil.copy(samples_dir / "val" / "chelsea.png", val / "cat.png")
    shutil.copy(samples_dir / "val" / "chelsea.png", test / "renamed.png")  # same content
    shutil.copy(samples_dir / "val" / "microaneurysms.png", test / "other.png")
    dm = FolderDataModule(
        train_dirs=[str(samples_dir / "train")],
        val_dirs=[str(val)],
        test_dirs=[str(test)],
        scale=2,
        **FAST,
    )
    with pytest.raises(DataError, match=r"1 validation image\(s\) are also test images") as err:
        dm.setup("fit")
    assert str(val / "cat.png") in str(err.value) and str(test / "renamed.png") in str(err.value)
    (test / "renamed.png").unlink()
    dm = FolderDataModule(
        train_dirs=[str(samples_dir / "train")],
        val_dirs=[str(val)],
        test_dirs=[str(test)],
        scale=2,
        **FAST,
    )
    dm.setup("test")  # disjoint now: no error


@pytest.fixture(scope="module")
def fundus_pairs(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """12 DRIVE fundus images as MESSIDOR-2: 6 examinations of two eyes, and messidor-2.csv."""
    root = tmp_path_factory.mktemp("MESSIDOR-2")
    (root / "IMAGES").mkdir()
    sources = sorted((shared_data / "fundus" / "DRIVE" / "train" / "images").glob("*.png"))[:12]
    rows = ["left;right"]
    for exam in range(6):
        names = [f"2005{exam:04d}_{eye}_PP.png" for eye in ("OD", "OG")]
        for name, src in zip(names, sources[2 * exam : 2 * exam + 2], strict=True):
            shutil.copy(src, root / "IMAGES" / name)
        rows.append(";".join(names))
    (root / "messidor-2.csv").write_text("\n".join(rows) + "\n")
    return root, root / "messidor-2.csv"


def test_messidor_warns_once_without_a_groups_file(fundus_pairs):
    root, groups_file = fundus_pairs
    split = {"n_train": None, "n_val": 2, "n_test": 4}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = MessidorDataModule(root=str(root), scale=2, **split, **FAST)
        dm.setup("fit")
        dm.setup("test")
    assert [str(w.message) for w in caught].count(PER_IMAGE_WARNING) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = MessidorDataModule(
            root=str(root), groups_file=str(groups_file), scale=2, **split, **FAST
        )
        dm.setup("fit")
    assert PER_IMAGE_WARNING not in [str(w.message) for w in caught]
    assert "patient-level" in dm.report and "2 val / 4 test" in dm.report


def test_tiny_messidor_run_keeps_each_patient_on_one_side(fundus_pairs, tmp_path):
    root, groups_file = fundus_pairs
    run = run_module(
        "medsr.train",
        *TINY_EDSR,
        *FAST_TRAIN,
        "data=messidor",
        "scale=2",
        f"data.root={root}",
        f"data.groups_file={groups_file}",
        "data.n_train=null",
        "data.n_val=2",
        "data.n_test=4",
        "comparison_figure=false",
        run_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "per image" not in run.stdout + run.stderr  # no per-image warning
    rows = list(csv.DictReader(open(tmp_path / "messidor_split.csv")))
    assert {tuple(r) for r in rows} == {("split", "image", "group")}
    sides: dict[str, set[str]] = {}
    for r in rows:
        sides.setdefault(r["group"], set()).add(r["split"])
    assert len(sides) == 6 and all(len(s) == 1 for s in sides.values())
    members = {g: sorted(r["image"] for r in rows if r["group"] == g) for g in sides}
    assert all(len(m) == 2 and m[0][:8] == m[1][:8] for m in members.values())  # both eyes
    assert [sum(r["split"] == k for r in rows) for k in SPLITS] == [6, 2, 4]
    # The exported weights say which checkpoint they hold (checkpoint.select, default best).
    exported = torch.load(next(tmp_path.glob("*.pth")), weights_only=True)
    assert exported["medsr_checkpoint"]["select"] == "best"
