"""Splits of a dataset into train / val / test: seeded held-out slices, patient-level (group) splits,
split files, and the check that validation and test share no image.

A patient's images (MESSIDOR-2: the two eyes of one examination) must stay on one side of a split,
or the test set shares patients with the training set. ``groups`` maps each image to its group;
whole groups are assigned, test first, so the test set depends only on the groups, ``n_test`` and
the seed. Without groups every image is its own group, which gives the per-image split of 0.1.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medsr.data.image_io import IMAGE_EXTENSIONS
from medsr.errors import DataError, warn_files
from medsr.files import atomic_path

SPLITS = ("train", "val", "test")
Split = dict[str, list[Path]]


# -- held-out slices -------------------------------------------------------------------------
def holdout(
    records: list, n: int, seed: int | Sequence[int], key: str = "data.n_val"
) -> tuple[list, list]:
    """Split off ``n`` records chosen with ``seed`` (both parts keep the sorted order); ``key``
    names the setting in the error."""
    if n <= 0:
        return records, []
    if n >= len(records):
        raise DataError(
            f"cannot hold out {n} of {len(records)} images ({key}={n}) and still train; "
            f"lower {key} or add images."
        )
    picked = set(np.random.default_rng(seed).choice(len(records), n, replace=False).tolist())
    return [r for i, r in enumerate(records) if i not in picked], [
        r for i, r in enumerate(records) if i in picked
    ]


# -- group splits ----------------------------------------------------------------------------
def _take(order: list[int], sizes: Sequence[int], target: int) -> tuple[list[int], list[int]]:
    """Groups from ``order`` (in order) whose images add up to ``target``, as closely as whole
    groups allow (never further from it than one group), and the groups left, in order."""
    chosen, rest, count = [], [], 0
    for g in order:
        if count + sizes[g] <= target:
            chosen.append(g)
            count += sizes[g]
        else:
            rest.append(g)
    if count < target and rest:
        closest = min(rest, key=lambda g: abs(count + sizes[g] - target))
        if abs(count + sizes[closest] - target) < target - count:
            chosen.append(closest)
            rest.remove(closest)
    return chosen, rest


def group_split(
    images: list[Path],
    groups: dict[Path, str],
    n_train: int | None,
    n_val: int,
    n_test: int,
    seed: int,
) -> Split:
    """Whole groups to test, then validation, then training, in a seeded order of the groups.

    Args:
        images: the images, sorted.
        groups: each image's group (images absent are groups of their own).
        n_train: training images (None = every image not in val/test).
        n_val, n_test: validation and test images.
        seed: ``data.split_seed``.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        members[groups.get(image, f"\0{i}")].append(i)
    units = list(members.values())  # in order of first image: depends on the names only
    sizes = [len(u) for u in units]
    order = np.random.default_rng(seed).permutation(len(units)).tolist()
    test, order = _take(order, sizes, n_test)
    val, order = _take(order, sizes, n_val)
    train = order if n_train is None else _take(order, sizes, n_train)[0]
    return {
        name: [images[i] for i in sorted(i for g in part for i in units[g])]
        for name, part in zip(SPLITS, (train, val, test), strict=True)
    }


def seeded_split(
    images: list[Path],
    images_dir: Path,
    n_train: int | None,
    n_val: int,
    n_test: int,
    seed: int,
    groups: dict[Path, str] | None = None,
) -> tuple[Split, str]:
    """A deterministic train/val/test split with whole groups on one side.

    The test images are drawn first, then validation, then training, so changing ``n_train``
    (or ``n_val``) never changes the test set. ``n_train=None`` trains on the rest.

    Returns:
        ``({"train": [...], "val": [...], "test": [...]}, how)``; ``how`` states the counts
        reached when whole groups could not meet the requested ones.
    """
    total = len(images)
    need = n_val + n_test + (n_train or 0)
    if n_val < 0 or n_test < 1 or (n_train is not None and n_train < 1) or need > total:
        raise DataError(
            f"cannot split {total} images of {images_dir} into n_train={n_train}, n_val={n_val}, "
            f"n_test={n_test}; set data.n_train / data.n_val / data.n_test (n_train=null uses the rest)."
        )
    split = group_split(images, groups or {}, n_train, n_val, n_test, seed)
    if not split["train"] or not split["test"]:
        raise DataError(
            f"the groups of {images_dir} leave no {'training' if not split['train'] else 'test'} "
            f"image for n_train={n_train}, n_val={n_val}, n_test={n_test}; lower the other counts."
        )
    how = f"seeded split (data.split_seed={seed})"
    if groups:
        n_groups = len(set(groups.get(p, str(p)) for p in images))
        how = f"patient-level {how}, whole groups of {n_groups} on one side"
        asked = {"train": n_train, "val": n_val, "test": n_test}
        off = [
            f"{k} {len(split[k])} for {v}"
            for k, v in asked.items()
            if v not in (None, len(split[k]))
        ]
        if off:
            how += f" (whole groups reach {', '.join(off)} asked)"
    return split, how


# -- groups files ----------------------------------------------------------------------------
def _looks_like_image(cell: str) -> bool:
    return Path(cell.strip()).suffix.lower() in IMAGE_EXTENSIONS


def read_groups(path: Path, images: list[Path], images_dir: Path) -> dict[Path, str]:
    """Each image's group from a groups CSV (``,`` or ``;`` separated).

    Two layouts: a header ``image,group`` (image relative to ``images_dir``), or one group per
    row listing its images (MESSIDOR-2's ``messidor-2.csv``: one examination per row, the left
    and the right eye; a header row without image names is skipped). Images are matched by their
    path relative to ``images_dir``, else by file name, ignoring case.

    Raises:
        DataError: unreadable file, an image in two groups, or no image of the listing named.
    """
    if not path.is_file():
        raise DataError(
            f"data.groups_file={path} does not exist; give the CSV of image groups (for MESSIDOR-2 "
            "the messidor-2.csv of the distribution), or data.groups_file=null for a per-image split."
        )
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    delimiter = ";" if lines and lines[0].count(";") > lines[0].count(",") else ","
    rows = [[c.strip() for c in row] for row in csv.reader(lines, delimiter=delimiter)]
    rows = [r for r in rows if any(r)]
    header = [c.lower() for c in rows[0]] if rows else []
    pairs: list[tuple[str, str]] = []
    if {"image", "group"} <= set(header):
        i, g = header.index("image"), header.index("group")
        pairs = [(r[i], r[g]) for r in rows[1:] if len(r) > max(i, g) and r[i]]
    else:
        body = rows[1:] if rows and not any(_looks_like_image(c) for c in rows[0]) else rows
        for row in body:
            names = [c for c in row if c]
            pairs += [(name, Path(names[0]).stem) for name in names]
    if not pairs:
        raise DataError(
            f"data.groups_file={path} lists no image: give rows 'image,group', or one group per row "
            "listing its images (as messidor-2.csv: left;right)."
        )
    by_path = {p.relative_to(images_dir).as_posix().lower(): p for p in images}
    by_name: dict[str, list[Path]] = defaultdict(list)
    for p in images:
        by_name[p.name.lower()].append(p)
    groups: dict[Path, str] = {}
    unknown = []
    for name, group in pairs:
        key = name.replace("\\", "/").lower()
        image = by_path.get(key) or next(iter(by_name.get(Path(key).name, [])[:1]), None)
        if image is None:
            unknown.append(name)
            continue
        if groups.get(image, group) != group:
            raise DataError(
                f"data.groups_file={path}: {name} is in two groups ({groups[image]} and {group}); "
                "each image belongs to one patient."
            )
        groups[image] = group
    if not groups:
        raise DataError(
            f"data.groups_file={path} names none of the {len(images)} images in {images_dir} "
            f"(e.g. {pairs[0][0]}); image names are relative to that folder."
        )
    warn_files(f"{path} lists images not in {images_dir}; they are ignored", unknown)
    alone = [p for p in images if p not in groups]
    warn_files(f"images without a group in {path}; each is a group of its own", alone)
    return groups


def crossing_groups(split: Split, groups: dict[Path, str]) -> dict[str, set[str]]:
    """Groups found on more than one side of ``split``, with the sides."""
    sides: dict[str, set[str]] = defaultdict(set)
    for name, paths in split.items():
        for p in paths:
            if p in groups:
                sides[groups[p]].add(name)
    return {g: s for g, s in sides.items() if len(s) > 1}


# -- split files -----------------------------------------------------------------------------
def write_split(
    path: Path, split: Split, images_dir: Path, groups: dict[Path, str] | None = None
) -> None:
    """CSV ``split,image,group`` (image relative to the images folder; an image without a group
    is its own), written atomically."""
    groups = groups or {}
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "image", "group"])
        for name in SPLITS:
            for p in split[name]:
                rel = p.relative_to(images_dir).as_posix()
                w.writerow([name, rel, groups.get(p, Path(rel).stem)])


def read_split(path: Path, images_dir: Path) -> tuple[Split, dict[Path, str]]:
    """Read a ``split,image[,group]`` CSV; every listed file must exist (paths relative to
    ``images_dir``), no group may span two sides, and validation and test must not be empty.

    Returns:
        (the split, each image's group: empty without a ``group`` column).
    """
    split: Split = {name: [] for name in SPLITS}
    groups: dict[Path, str] = {}
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
            image = images_dir / row["image"].strip()
            split[name].append(image)
            if (row.get("group") or "").strip():
                groups[image] = row["group"].strip()
    missing = [p for ps in split.values() for p in ps if not p.is_file()]
    if missing:
        names = ", ".join(str(p) for p in missing[:5])
        raise DataError(
            f"split file {path} lists {len(missing)} missing image(s) (e.g. {names}); paths are relative "
            f"to {images_dir}. Fix data.root or the file."
        )
    for name in SPLITS:
        if not split[name]:
            raise DataError(
                f"split file {path} lists no {name} image; give train, val and test rows (validation "
                "must not use the test images: selecting on them would bias the test scores)."
            )
    check_no_crossing(split, groups, str(path))
    key = {p: p.relative_to(images_dir).as_posix() for ps in split.values() for p in ps}
    return {k: sorted(v, key=key.__getitem__) for k, v in split.items()}, groups


def check_no_crossing(split: Split, groups: dict[Path, str], source: str) -> None:
    """DataError naming the groups that span two sides of ``split``."""
    crossing = crossing_groups(split, groups)
    if crossing:
        shown = "; ".join(f"{g} ({'/'.join(sorted(s))})" for g, s in list(crossing.items())[:5])
        raise DataError(
            f"{source}: {len(crossing)} group(s) span two sides of the split, e.g. {shown}; a "
            "patient's images must all be on one side. Fix the split file or delete it to draw a "
            "new split."
        )


# -- validation vs test ----------------------------------------------------------------------
def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identical_files(a: Sequence[Path], b: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Pairs (file of ``a``, file of ``b``) with the same content. Only files whose sizes match a
    file on the other side are hashed."""
    sizes_b: dict[int, list[Path]] = defaultdict(list)
    for p in b:
        sizes_b[p.stat().st_size].append(p)
    candidates = [(p, sizes_b[p.stat().st_size]) for p in a if p.stat().st_size in sizes_b]
    digests: dict[Path, str] = {}

    def digest(p: Path) -> str:
        if p not in digests:
            digests[p] = _digest(p)
        return digests[p]

    return [(p, q) for p, qs in candidates for q in qs if digest(p) == digest(q)]


def check_disjoint(val: Sequence[Path], test: Sequence[Path]) -> None:
    """DataError naming the validation images that are also test images (same content)."""
    same = identical_files(val, test)
    if same:
        shown = "; ".join(f"{a} = {b}" for a, b in same[:5])
        raise DataError(
            f"{len(same)} validation image(s) are also test images (same content): {shown}. "
            "Validation and test must be disjoint; remove the duplicates or fix the split."
        )
