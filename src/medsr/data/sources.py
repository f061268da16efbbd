"""Dataset listings: which files make the training and evaluation sets of each supported layout.

Every listing is sorted by relative path, so a split or a held-out slice depends only on the file
names and the seed, never on the file system's order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medsr.data.fov import find_mask_file
from medsr.data.image_io import list_images
from medsr.data.splits import holdout
from medsr.errors import ConfigError, DataError

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
FLICKR2K_URL = "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar"
MESSIDOR2_URL = "https://www.adcis.net/en/third-party/messidor2/"


def imresize_protocol(degradation: object = None, bits: int | str = 8) -> str:
    """The protocol words of LR made by ``bicubic_lr`` under ``degradation`` (a bicubic one may
    use MATLAB's uint8 intermediate: ``degradation.matlab_uint8``), rounded to ``bits``."""
    uint8 = getattr(degradation, "matlab_uint8", False) and str(bits) == "8"
    how = " with MATLAB's uint8 intermediate" if uint8 else ""
    return f"LR: MATLAB-bicubic imresize of mod-cropped HR{how}, {bits}-bit"


IMRESIZE_PROTOCOL = imresize_protocol()
IMRESIZE_UINT8_PROTOCOL = imresize_protocol(type("MatlabUint8", (), {"matlab_uint8": True}))
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
                "add it, or set data.mask_dir=computed to compute the field of view from the images."
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


# -- DF2K ------------------------------------------------------------------------------------
def _first_dir(root: Path, *candidates: str) -> Path | None:
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return None


@dataclass
class DF2KListing:
    """What ``df2k_listing`` found: training, validation and test records, and a report."""

    train: list[ImageRecord]
    val: list[ImageRecord]
    test: list[ImageRecord]
    val_name: str
    report: str
    test_name: str = "DIV2K_valid"


def df2k_listing(root: Path, n_val: int | None, seed: int = 0, n_test: int = 10) -> DF2KListing:
    """DIV2K + Flickr2K training images, validation and test images, with a report of what was found.

    Validation never uses a test image: it holds out ``n_val`` training images (seeded); the
    test set is DIV2K_valid_HR, or without it a second held-out slice, drawn first.

    Layout (either training folder may be absent)::

        <root>/DIV2K_train_HR/0001.png ... 0800.png
        <root>/Flickr2K_HR/000001.png ... 002650.png   (or <root>/Flickr2K/Flickr2K_HR/)
        <root>/DIV2K_valid_HR/0801.png ... 0900.png    (test; else a held-out slice)

    Args:
        root: the DF2K folder (``data.root``).
        n_val: training images held out for validation (``None`` = 10).
        seed: seed of the held-out slices (``data.split_seed``).
        n_test: test images held out when DIV2K_valid_HR is absent.
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
        test_name, where = "DIV2K_valid", f"test on DIV2K_valid_HR ({len(test)} images)"
    else:
        train, test = holdout(train, n_test, seed, "data.n_test")
        test_name = "DF2K_heldout_test"
        where = f"DIV2K_valid_HR absent: test on {len(test)} held-out training images"
    train, val = holdout(train, 10 if n_val is None else n_val, (seed, 1))
    found.append(f"{where}; validation on {len(val)} other held-out training images (seed {seed})")
    report = f"df2k in {root}: " + "; ".join(found) + f"; training on {len(train)} images"
    return DF2KListing(train, val, test, "DF2K_heldout", report, test_name)


# -- MESSIDOR-2 ------------------------------------------------------------------------------
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


# -- benchmark sets --------------------------------------------------------------------------
def benchmark_sets(
    root: Path,
    sets: list[str] | None,
    scale: int,
    fov_sets: list[str] = (),
    mask_files: bool = True,
) -> list[EvalSet]:
    """Evaluation sets ``<root>/<Set>/HR/*`` with LR from ``<root>/<Set>/LR_bicubic/X<s>/`` when present.

    Args:
        root: the benchmark folder (``data.root``).
        sets: set names (folders under ``root``); ``None`` = every folder holding ``HR/``, the
            literature's sets first (Set5, Set14, B100, BSDS200, Urban100, Manga109).
        scale: selects ``LR_bicubic/X<scale>``.
        fov_sets: names of fundus sets: evaluated inside the field of view too (``<Set>/mask/``
            when present and ``mask_files``, else computed).
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
        mask_dir = set_dir / "mask" if fov and mask_files and (set_dir / "mask").is_dir() else None
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
