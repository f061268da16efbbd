"""Medical listings: DICOM/NIfTI files -> one record per slice, patient groups, a group split.

Every frame of a multi-frame DICOM and every slice of a NIfTI volume is one image. Slices are
grouped by patient (``PatientID``; without one, a DICOM file's folder or the NIfTI file), and
whole groups go to one side of the train/val/test split: slices of one patient never appear
on both sides.
"""

from __future__ import annotations

import csv
import fnmatch
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medsr.data.dicom import dicom_info, read_dicom
from medsr.data.medical import MedicalMeta, StoredRange, list_medical, medical_stem
from medsr.data.nifti import nifti_info, read_nifti_slice
from medsr.data.sources import ImageRecord
from medsr.errors import ConfigError, DataError
from medsr.files import atomic_write

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SliceRecord(ImageRecord):
    """One 2-D image of a medical file: frame/slice ``index`` (along NIfTI ``axis``), read into
    the data set's common stored range (``bits``, ``signed``); ``size`` ``(rows, columns)`` from
    the header, so size checks read no file again."""

    index: int = 0
    axis: int = 2
    kind: str = "dicom"
    group: str = ""
    bits: int = 16
    signed: bool = False
    size: tuple[int, int] = (0, 0)

    @property
    def stored(self) -> StoredRange:
        return StoredRange(self.bits, self.signed)


def read_slice(record: SliceRecord) -> np.ndarray:
    """The slice as ``(H, W, C)`` stored values in the record's common range (values checked)."""
    if record.kind == "nifti":
        image = read_nifti_slice(record.path, record.index, record.axis)
    else:
        image = read_dicom(record.path, index=record.index).frames[0]
    return record.stored.check(image, record.path)


def scan(path: Path, kind: str, axis: int) -> MedicalMeta:
    """Header-only metadata of one file (DataError naming it when it is not a usable image)."""
    return nifti_info(path, axis) if kind == "nifti" else dicom_info(path)


def list_files(
    roots: list[str | Path], kinds: tuple[str, ...], include: list[str] | None, recursive: bool
) -> list[tuple[Path, Path]]:
    """``(root, file)`` pairs of every DICOM/NIfTI file under ``roots`` matching ``include``
    (shell patterns on the path relative to its root, or the name); sorted per root."""
    if not roots:
        raise ConfigError("data.roots is empty; give the folders holding DICOM or NIfTI files.")
    found = []
    for root in map(Path, roots):
        root = root.expanduser()
        if not root.is_dir():
            raise DataError(
                f"data.roots: {root} is not a folder; give folders of DICOM/NIfTI files."
            )
        for f in list_medical(root, kinds, recursive):
            rel = f.relative_to(root).as_posix()
            if include is None or any(
                fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(f.name, p) for p in include
            ):
                found.append((root, f))
    if not found:
        what = " or ".join(kinds)
        pattern = f" matching data.include={list(include)}" if include else ""
        raise DataError(f"no {what} file{pattern} in data.roots={[str(r) for r in roots]}.")
    return found


def common_range(metas: list[MedicalMeta], bits: int | None) -> StoredRange:
    """The one stored range of a data set: every file's, or ``data.bits`` for all of them.

    Raises:
        DataError: files of different bit depths (or signedness) and no ``data.bits``.
    """
    ranges = defaultdict(list)
    for m in metas:
        ranges[m.stored].append(m.path)
    signed = any(r.signed for r in ranges)
    if bits is not None:
        widest = max(r.bits for r in ranges)
        if int(bits) < widest:
            raise ConfigError(
                f"data.bits={bits} is narrower than the {widest}-bit files of the data set."
            )
        return StoredRange(int(bits), signed)
    if len(ranges) > 1:
        kinds = "; ".join(
            f"{r.describe()}: {len(p)} file(s), e.g. {p[0]}" for r, p in ranges.items()
        )
        widest = max(r.bits for r in ranges)
        raise DataError(
            f"mixed bit depths in one data set ({kinds}). Training normalises by the stored range, "
            f"so one range must hold them all: put each bit depth in its own folder, or set "
            f"data.bits={widest} to read every file as {widest}-bit{' signed' if signed else ''}."
        )
    return next(iter(ranges))


def windowed(
    stored: StoredRange, metas: list[MedicalMeta], window: list[float] | None
) -> StoredRange:
    """``stored`` with ``data.window=[center, width]`` (modality units) when one is given.

    Raises:
        ConfigError: the window is not two numbers with a width of at least 1.
        DataError: the files' modality LUTs differ (the window would mean other stored values
            in each), naming one file of each.
    """
    if window is None:
        return stored
    if len(window) != 2 or not float(window[1]) >= 1:
        raise ConfigError(
            f"data.window={list(window)} must be [center, width] in modality units with a width "
            "of at least 1, e.g. data.window=[40,400] for CT soft tissue."
        )
    luts = defaultdict(list)
    for m in metas:
        luts[(m.slope, m.intercept)].append(m.path)
    if len(luts) > 1:
        kinds = "; ".join(
            f"slope {s:g}, intercept {i:g}: e.g. {p[0]}" for (s, i), p in luts.items()
        )
        raise DataError(
            f"data.window needs one modality LUT for the data set, the files have several "
            f"({kinds}); put each series in its own data set or drop data.window."
        )
    (slope, intercept), _ = next(iter(luts.items()))
    return replace(stored, window=(float(window[0]), float(window[1]), slope, intercept))


def slice_records(
    root: Path, meta: MedicalMeta, kind: str, axis: int, group: str, stored: StoredRange
) -> list[SliceRecord]:
    """One record per frame/slice, named ``<relative stem>`` (``_<index>`` when several)."""
    stem = (meta.path.parent.relative_to(root) / medical_stem(meta.path)).as_posix()
    n = meta.frames
    return [
        SliceRecord(
            meta.path,
            stem if n == 1 else f"{stem}_{i:04d}",
            index=i,
            axis=axis,
            kind=kind,
            group=group,
            bits=stored.bits,
            signed=stored.signed,
            size=(meta.extra["rows"], meta.extra["columns"]),
        )  # fmt: skip
        for i in range(n)
    ]


def split_groups(
    groups: list[str], n_val: int, n_test: int, seed: int, test_groups: list[str] | None = None
) -> dict[str, list[str]]:
    """Whole groups to train/val/test: ``test_groups`` (or ``n_test`` drawn with ``seed``) first,
    then ``n_val`` for validation (0: validate on the test groups), the rest for training.
    ``n_test=-1`` tests on every group (evaluation of a whole data set; nothing to train on)."""
    groups = sorted(set(groups))
    if n_test < 0 and not test_groups:
        return {"train": [], "val": groups, "test": groups}
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    if test_groups:
        missing = sorted(set(map(str, test_groups)) - set(groups))
        if missing:
            raise DataError(f"data.test_groups {missing} are not among the groups found: {groups}.")
        test = [g for g in order if g in set(map(str, test_groups))]
    else:
        test = order[:n_test]
    rest = [g for g in order if g not in test]
    val = rest[:n_val]
    train = rest[n_val:]
    if not test or not train or n_val < 0:
        raise DataError(
            f"cannot split {len(groups)} patient group(s) into n_val={n_val}, n_test={n_test} and a "
            "non-empty training part; lower data.n_val/data.n_test or add patients (a group is a "
            "PatientID: slices of one patient stay on one side)."
        )
    return {"train": train, "val": val or test, "test": test}


def write_split(path: Path, split: dict[str, list[SliceRecord]]) -> Path:
    """CSV ``split,image,group`` (image: the slice's name), written atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["split", "image", "group"])
            for name in SPLITS:
                for r in split[name]:
                    w.writerow([name, r.name, r.group])

    return atomic_write(path, write, fsync=False)


def read_split(path: Path, records: list[SliceRecord]) -> dict[str, list[SliceRecord]]:
    """The split a ``split,image`` CSV gives ``records`` (every listed image must be found)."""
    by_name = {r.name: r for r in records}
    split: dict[str, list[SliceRecord]] = {name: [] for name in SPLITS}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        name, image = row.get("split", "").strip(), row.get("image", "").strip()
        if name not in split or image not in by_name:
            raise DataError(
                f"split file {path}: row {row} names an unknown split or an image not in data.roots "
                "(columns split,image[,group]; split = train, val or test)."
            )
        split[name].append(by_name[image])
    if not split["train"] or not split["test"]:
        raise DataError(f"split file {path} lists no train or no test image.")
    split["val"] = split["val"] or split["test"]
    return split
