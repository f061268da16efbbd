"""Dataset listings: which files make the training and evaluation sets of each supported layout.

Every listing is sorted by relative path, so a split or a held-out slice depends only on the file
names and the seed, never on the file system's order.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsr.data.fov import find_mask_file
from medsr.data.image_io import list_images
from medsr.errors import ConfigError, DataError

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
FLICKR2K_URL = "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar"
MESSIDOR2_URL = "https://www.adcis.net/en/third-party/messidor2/"
# How LR is made when no LR files come with a set (medsr.data.degrade.bicubic_lr).
IMRESIZE_PROTOCOL = "LR: MATLAB-bicubic imresize of mod-cropped HR, 8-bit"
BENCHMARK_URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar (EDSR benchmark package)"
# Benchmark sets in the order of the SR literature's tables; other folders follow, sorted.
BENCHMARK_ORDER = ("Set5", "Set14", "B100", "BSDS100", "BSDS200", "Urban100", "Manga109")


@dataclass(frozen=True)
class ImageRecord:
    """One image: its file, a name for reports, and optional companion files."""

    path: Path
    name: str
    mask_path: Path | None = None
    lr_path: Path | None = None


@dataclass
class EvalSet:
    """A named evaluation set: whole images, optionally with LR files and FOV masks."""

    name: str
    records: list[ImageRecord]
    fov: bool = False
    protocol: str = ""


def records_from(
    paths: list[Path], root: Path | None = None, mask_dir: Path | None = None
) -> list[ImageRecord]:
    """Records named by their path relative to ``root`` (without suffix), masks from ``mask_dir``."""
    records = [
        ImageRecord(p, p.relative_to(root).with_suffix("").as_posix() if root else p.stem)
        for p in paths
    ]
    return attach_masks(records, mask_dir) if mask_dir is not None else records


def attach_masks(records: list[ImageRecord], mask_dir: Path) -> list[ImageRecord]:
    """Each record with its mask from ``mask_dir`` (``<stem>_mask.*`` or ``<stem>.*``); all must exist."""
    out = []
    for r in records:
        mask = find_mask_file(mask_dir, r.path.stem)
        if mask is None:
            raise DataError(
                f"no mask for {r.path} in {mask_dir} (looked for {r.path.stem}_mask.* and {r.path.stem}.*); "
                "add it, or set data.mask_dir=null to compute the field of view from the image."
            )
        out.append(ImageRecord(r.path, r.name, mask, r.lr_path))
    return out


def folder_records(dirs: list[str | Path], key: str, recursive: bool = False) -> list[ImageRecord]:
    """Images of one or more folders, in the order of ``dirs``, each folder sorted."""
    if not dirs:
        raise ConfigError(
            f"{key} is empty; give at least one image folder, e.g. {key}=[path/to/images]."
        )
    records = []
    for d in dirs:
        d = Path(os.path.expanduser(str(d)))
        records += records_from(list_images(d, recursive, key=key), d)
    return records


def holdout(
    records: list[ImageRecord], n: int, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Split off ``n`` records chosen with ``seed`` (both parts keep the sorted order)."""
    if n <= 0:
        return records, []
    if n >= len(records):
        raise DataError(
            f"cannot hold out {n} of {len(records)} images for validation and still train; "
            "lower data.n_val or add images."
        )
    picked = set(np.random.default_rng(seed).choice(len(records), n, replace=False).tolist())
    return [r for i, r in enumerate(records) if i not in picked], [
        r for i, r in enumerate(records) if i in picked
    ]


# -- DF2K ------------------------------------------------------------------------------------
def _first_dir(root: Path, *candidates: str) -> Path | None:
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return None


@dataclass
class DF2KListing:
    """What ``df2k_listing`` found: training and validation records, and a report."""

    train: list[ImageRecord]
    val: list[ImageRecord]
    test: list[ImageRecord]
    val_name: str
    report: str


def df2k_listing(root: Path, n_val: int | None, seed: int = 0) -> DF2KListing:
    """DIV2K + Flickr2K training images and the validation images, with a report of what was found.

    Layout (either training folder may be absent)::

        <root>/DIV2K_train_HR/0001.png ... 0800.png
        <root>/Flickr2K_HR/000001.png ... 002650.png   (or <root>/Flickr2K/Flickr2K_HR/)
        <root>/DIV2K_valid_HR/0801.png ... 0900.png    (validation; else a held-out slice)

    Args:
        root: the DF2K folder (``data.root``).
        n_val: validation images: the first ``n_val`` of DIV2K_valid_HR (``None`` = all; the
            test set is always all of them), or without it a seeded held-out slice of the
            training images (``None`` = 10), used for validation and test.
        seed: seed of the held-out slice.
    """
    hint = f"Download DIV2K from {DIV2K_URL} and Flickr2K from {FLICKR2K_URL}."
    if not root.is_dir():
        raise DataError(
            f"DF2K folder {root} does not exist. Set data.root=<folder holding DIV2K_train_HR/ and/or "
            f"Flickr2K_HR/>. {hint}"
        )
    parts = {
        "DIV2K_train_HR": (_first_dir(root, "DIV2K_train_HR", "DIV2K/DIV2K_train_HR"), 800),
        "Flickr2K_HR": (_first_dir(root, "Flickr2K_HR", "Flickr2K/Flickr2K_HR"), 2650),
    }
    train, found = [], []
    for label, (folder, official) in parts.items():
        if folder is None:
            found.append(f"{label} absent")
            continue
        files = list_images(folder, key="data.root", hint=hint)
        note = "" if len(files) == official else f" (the official set has {official})"
        found.append(f"{label} {len(files)} images{note}")
        train += records_from(files, folder)
    if not train:
        raise DataError(
            f"no DF2K training folder in {root}: expected DIV2K_train_HR/ and/or Flickr2K_HR/. "
            f"Set data.root=<DF2K folder>. {hint}"
        )
    valid = _first_dir(root, "DIV2K_valid_HR", "DIV2K/DIV2K_valid_HR")
    if valid is not None:
        test = records_from(list_images(valid, key="data.root", hint=hint), valid)
        val = test if n_val is None else test[:n_val]
        name = "DIV2K_valid"
        found.append(
            f"validation on DIV2K_valid_HR ({len(val)} of {len(test)} images; test on all)"
        )
    else:
        train, val = holdout(train, 10 if n_val is None else n_val, seed)
        test, name = val, "DF2K_heldout"
        found.append(
            f"DIV2K_valid_HR absent: {len(val)} training images held out for validation and test (seed {seed})"
        )
    report = f"df2k in {root}: " + "; ".join(found) + f"; training on {len(train)} images"
    return DF2KListing(train, val, test, name, report)


# -- MESSIDOR-2 ------------------------------------------------------------------------------
SPLITS = ("train", "val", "test")


def messidor_images_dir(root: Path) -> Path:
    """``<root>/IMAGES`` (any case), or ``root`` itself when it holds the images directly."""
    hint = f"MESSIDOR-2 is distributed at {MESSIDOR2_URL} (unzip IMAGES.zip into the folder)."
    if not root.is_dir():
        raise DataError(
            f"MESSIDOR-2 folder {root} does not exist. Set data.root=<folder holding IMAGES/>. {hint}"
        )
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() == "images":
            return child
    return root


def messidor_split(
    images: list[Path],
    images_dir: Path,
    n_train: int | None,
    n_val: int,
    n_test: int,
    seed: int,
    split_file: Path | None,
) -> tuple[dict[str, list[Path]], str]:
    """A deterministic train/val/test split, or the one in ``split_file`` when it exists.

    The test images are drawn first, then validation, then training, so changing ``n_train``
    never changes the test set. ``n_train=None`` trains on every image not in val/test.

    Returns:
        ``({"train": [...], "val": [...], "test": [...]}, how)``.
    """
    if split_file is not None and split_file.is_file():
        return read_split(split_file, images_dir), f"split read from {split_file}"
    total = len(images)
    need = n_val + n_test + (n_train or 0)
    if n_val < 0 or n_test < 1 or (n_train is not None and n_train < 1) or need > total:
        raise DataError(
            f"cannot split {total} images of {images_dir} into n_train={n_train}, n_val={n_val}, "
            f"n_test={n_test}; set data.n_train / data.n_val / data.n_test (n_train=null uses the rest)."
        )
    order = np.random.default_rng(seed).permutation(total)
    test, val = order[:n_test], order[n_test : n_test + n_val]
    rest = order[n_test + n_val :]
    train = rest if n_train is None else rest[:n_train]
    split = {
        name: [images[i] for i in sorted(idx.tolist())]
        for name, idx in zip(SPLITS, (train, val, test), strict=True)
    }
    return split, f"seeded split (data.split_seed={seed})"


def write_split(path: Path, split: dict[str, list[Path]], images_dir: Path) -> None:
    """CSV with columns ``split,image`` (image relative to the images folder), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "image"])
        for name in SPLITS:
            for p in split[name]:
                w.writerow([name, p.relative_to(images_dir).as_posix()])
    os.replace(tmp, path)


def read_split(path: Path, images_dir: Path) -> dict[str, list[Path]]:
    """Read a ``split,image`` CSV; every listed file must exist (paths relative to ``images_dir``)."""
    split: dict[str, list[Path]] = {name: [] for name in SPLITS}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"split", "image"} <= set(reader.fieldnames):
            raise DataError(
                f"split file {path} needs the header 'split,image' (split = train, val or test)."
            )
        for row in reader:
            name = row["split"].strip().lower()
            if name not in split:
                raise DataError(
                    f"split file {path}: unknown split {row['split']!r} (use train, val or test)."
                )
            split[name].append(images_dir / row["image"].strip())
    missing = [p for ps in split.values() for p in ps if not p.is_file()]
    if missing:
        names = ", ".join(str(p) for p in missing[:5])
        raise DataError(
            f"split file {path} lists {len(missing)} missing image(s) (e.g. {names}); paths are relative "
            f"to {images_dir}. Fix data.root or the file."
        )
    if not split["train"] and not split["test"]:
        raise DataError(f"split file {path} lists no train and no test image.")
    if not split["val"]:
        split["val"] = split["test"]
    return {
        k: sorted(v, key=lambda p: p.relative_to(images_dir).as_posix()) for k, v in split.items()
    }


# -- benchmark sets --------------------------------------------------------------------------
def benchmark_sets(
    root: Path, sets: list[str] | None, scale: int, fov_sets: list[str] = ()
) -> list[EvalSet]:
    """Evaluation sets ``<root>/<Set>/HR/*`` with LR from ``<root>/<Set>/LR_bicubic/X<s>/`` when present.

    Args:
        root: the benchmark folder (``data.root``).
        sets: set names (folders under ``root``); ``None`` = every folder holding ``HR/``, the
            literature's sets first (Set5, Set14, B100, BSDS200, Urban100, Manga109).
        scale: selects ``LR_bicubic/X<scale>``.
        fov_sets: names of fundus sets: evaluated inside the field of view too (``<Set>/mask/``
            when present, else computed).
    """
    hint = f"Expected <root>/<Set>/HR/*.png; the EDSR benchmark package is at {BENCHMARK_URL}."
    if not root.is_dir():
        raise DataError(f"benchmark folder {root} does not exist. Set data.root=<folder>. {hint}")
    if sets is None:
        found = [d.name for d in root.iterdir() if (d / "HR").is_dir()]
        if not found:
            raise DataError(f"no benchmark set (a folder with HR/ inside) in {root}. {hint}")
        rank = {n: i for i, n in enumerate(BENCHMARK_ORDER)}
        sets = sorted(found, key=lambda n: (rank.get(n, len(rank)), n))
    missing = [str(n) for n in sets if not (root / str(n)).is_dir()]
    if missing:
        have = sorted(d.name for d in root.iterdir() if d.is_dir())
        raise DataError(
            f"benchmark set(s) {', '.join(missing)} not found in {root} (found: {', '.join(have) or 'nothing'}). "
            f"Fix data.sets or data.root. {hint}"
        )
    out = []
    for name in sets:
        set_dir = root / str(name)
        hr_dir = set_dir / "HR" if (set_dir / "HR").is_dir() else set_dir
        files = list_images(hr_dir, key="data.root", hint=hint)
        fov = str(name) in set(map(str, fov_sets))
        mask_dir = set_dir / "mask" if fov and (set_dir / "mask").is_dir() else None
        records = records_from(files, hr_dir, mask_dir)
        lr_dir = set_dir / "LR_bicubic" / f"X{scale}"
        if lr_dir.is_dir():
            records = [_with_lr(r, lr_dir, scale) for r in records]
            protocol = f"LR: files from LR_bicubic/X{scale}"
        else:
            protocol = IMRESIZE_PROTOCOL
        out.append(EvalSet(str(name), records, fov=fov, protocol=protocol))
    return out


def _with_lr(record: ImageRecord, lr_dir: Path, scale: int) -> ImageRecord:
    stem = Path(record.name).name
    sub = Path(record.name).parent
    for candidate in (f"{stem}x{scale}", stem):
        for p in sorted((lr_dir / sub).glob(f"{candidate}.*")):
            return ImageRecord(record.path, record.name, record.mask_path, p)
    raise DataError(
        f"{lr_dir} has no LR file for {record.path} (looked for {stem}x{scale}.* and {stem}.*). "
        f"Complete the folder, or remove {lr_dir} to make LR with MATLAB-bicubic imresize."
    )
