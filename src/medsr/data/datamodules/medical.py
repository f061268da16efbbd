"""DICOM and NIfTI folders (``data=dicom``, ``data=nifti``): slices at their native bit depth.

Workers ship the stored integers (uint8/uint16/int16, one channel for CT/MR); on the device
they are normalised by the data set's stored range (``BitsStored``, or the NIfTI integer
type): that range is declared by every file's header, so the one slice ``medsr.predict`` gets
is normalised exactly as training was, and PSNR's peak is ``2**bits - 1`` on every data set of
that depth. LR is MATLAB-bicubic of the stored values rounded to the same depth, never 8 bits.
"""

from __future__ import annotations

import logging
from pathlib import Path

from medsr.data.datamodules.base import SRData
from medsr.data.decode import too_small
from medsr.data.medical import MedicalMeta
from medsr.data.medical_sources import (
    SliceRecord,
    common_range,
    list_files,
    read_split,
    scan,
    slice_records,
    split_groups,
    windowed,
    write_split,
)
from medsr.data.rank_zero import info
from medsr.data.sources import EvalSet
from medsr.errors import ConfigError, DataError, warn_files

log = logging.getLogger(__name__)
GROUP_BY = ("patient", "file", "folder")


class MedicalData(SRData):
    """Slices of the DICOM and/or NIfTI files under ``roots``, split by patient.

    Args:
        roots: folders searched for files (``.dcm``/``.dicom``/``.ima``/DICM-marked, ``.nii``,
            ``.nii.gz``).
        kinds: which of ``dicom``, ``nifti`` to read.
        include: shell patterns (relative path or name) selecting files; None = all.
        recursive: search sub-folders.
        slice_axis: NIfTI axis slices are cut along (0, 1, 2).
        group_by: ``patient`` (PatientID, else series folder / volume), ``file`` or ``folder``.
        n_val, n_test: patient groups for validation (0 = validate on the test groups) and test.
        test_groups: the groups to test on instead of ``n_test`` drawn ones.
        split_file: CSV ``split,image`` to read when it exists, else where the split is written.
        run_dir: where a new split is recorded when ``split_file`` is None.
        bits: read every file into this many bits (for folders mixing bit depths); None = the
            files' own (all equal).
        window: ``[center, width]`` in modality units (e.g. Hounsfield units): train and score
            on that window of the stored values only; None = the whole stored range.
        name: the evaluation set's name.
        **kwargs: the :class:`SRData` options.
    """

    def __init__(
        self,
        roots: list[str] | None = None,
        kinds: list[str] | tuple[str, ...] = ("dicom", "nifti"),
        include: list[str] | None = None,
        recursive: bool = True,
        slice_axis: int = 2,
        group_by: str = "patient",
        n_val: int = 1,
        n_test: int = 1,
        test_groups: list[str] | None = None,
        split_file: str | None = None,
        run_dir: str | None = None,
        bits: int | None = None,
        window: list[float] | None = None,
        name: str = "medical",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.roots = [str(r) for r in roots or []]
        self.kinds = tuple(kinds)
        self.include = list(include) if include else None
        self.recursive, self.slice_axis, self.group_by = recursive, int(slice_axis), group_by
        self.n_val, self.n_test = int(n_val), int(n_test)
        self.test_groups = [str(g) for g in test_groups] if test_groups else None
        self.split_file = Path(split_file).expanduser() if split_file else None
        self.run_dir = Path(run_dir) if run_dir else None
        self.bits, self.name = bits, name
        self.window = list(window) if window is not None else None
        # self.stored: the data set's stored range, known after listing (SRData's step).
        self.channels = 1
        self._split: dict[str, list[SliceRecord]] | None = None
        self._metas: list[MedicalMeta] = []

    def _validate(self) -> None:
        super()._validate()
        if self.cache:
            raise ConfigError(
                "data.cache=true stores 8-bit RGB images; medical data reads slices directly: set data.cache=false."
            )
        if self.group_by not in GROUP_BY:
            raise ConfigError(
                f"data.group_by={self.group_by!r} must be one of {', '.join(GROUP_BY)}."
            )
        if unknown := set(self.kinds) - {"dicom", "nifti"}:
            raise ConfigError(f"data.kinds has {sorted(unknown)}; use dicom and/or nifti.")

    # -- listing ---------------------------------------------------------------------------
    def _group(self, meta: MedicalMeta) -> str:
        if self.group_by == "file":
            return str(meta.path)
        return str(meta.path.parent) if self.group_by == "folder" else meta.group

    def _scanned(self) -> list[tuple[Path, MedicalMeta]]:
        """``(root, header)`` of every file; a bad file stops the run (or, with skip_bad, is left
        out with one warning naming it)."""
        kept, bad = [], []
        for root, path in list_files(self.roots, self.kinds, self.include, self.recursive):
            kind = "nifti" if path.name.lower().endswith((".nii", ".nii.gz")) else "dicom"
            try:
                kept.append((root, scan(path, kind, self.slice_axis)))
            except DataError:
                if not self.skip_bad:
                    raise
                bad.append(path)
        warn_files("skipping unreadable or non-image files (data.skip_bad=true)", bad)
        if not kept:
            raise DataError("no usable DICOM/NIfTI image in data.roots; see the warnings above.")
        return kept

    def _split_records(self, records: list[SliceRecord]) -> tuple[dict, str]:
        """The split file's split when it exists, else a new patient-level one (recorded)."""
        if self.split_file is not None and self.split_file.is_file():
            return read_split(self.split_file, records), f"split read from {self.split_file}"
        groups = [r.group for r in records]
        parts = split_groups(groups, self.n_val, self.n_test, self.split_seed, self.test_groups)
        split = {k: [r for r in records if r.group in set(v)] for k, v in parts.items()}
        how = f"patient-level split (data.group_by={self.group_by}, data.split_seed={self.split_seed})"
        target = self.split_file or (self.run_dir / "medical_split.csv" if self.run_dir else None)
        if target is not None:
            write_split(target, split)
            how += f", written to {target} (reuse with data.split_file={target})"
        return split, how

    def _trainable(self, records: list[SliceRecord]) -> list[SliceRecord]:
        """Training slices at least one patch in size (smaller ones stop the run, or with
        skip_bad are left out with a warning; evaluation takes them whole)."""
        small = {
            m.path: (m.extra["rows"], m.extra["columns"])
            for m in self._metas
            if min(m.extra["rows"], m.extra["columns"]) < self.patch_size
        }
        too = sorted({str(r.path) for r in records if r.path in small})
        if too and not self.skip_bad:
            raise too_small(too[0], small[Path(too[0])], self.patch_size)
        warn_files(f"leaving out training slices smaller than the {self.patch_size}px patch", too)
        return [r for r in records if r.path not in small]

    def _records(self) -> dict[str, list[SliceRecord]]:
        if self._split is not None:
            return self._split
        files = self._scanned()
        self._metas = [m for _, m in files]
        self.stored = windowed(common_range(self._metas, self.bits), self._metas, self.window)
        self.channels = max(m.channels for m in self._metas)
        records = []
        for root, meta in files:
            group = self._group(meta)
            records += slice_records(root, meta, meta.kind, self.slice_axis, group, self.stored)
        split, how = self._split_records(records)
        split["train"] = self._trainable(split["train"])
        counts = " / ".join(f"{len(split[k])} {k}" for k in ("train", "val", "test"))
        groups = " / ".join(str(len({r.group for r in split[k]})) for k in ("train", "val", "test"))
        self.report = (
            f"{self.name}: {len(files)} file(s), {len(records)} slices, {self.stored.describe()} "
            f"stored values, {how}: {counts} slices ({groups} patients)"
        )
        info("%s", self.report)
        self._split = split
        return split

    def _list_train(self) -> list[SliceRecord]:
        return self._records()["train"]

    def _checked_train_records(self) -> list[SliceRecord]:
        records = self._list_train()  # headers were checked while listing
        if not records:
            raise DataError(
                "no training slice left: every one is smaller than data.patch_size, or "
                "data.n_test=-1 put every patient in the test set."
            )
        self.patch_channels, self.patch_dtype = self.channels, self.stored.dtype
        return records

    def _list_eval(self, stage: str) -> list[EvalSet]:
        records = self._records()["test" if stage == "test" else "val"]
        s = self.stored
        if s.window is not None:
            protocol = (
                f"LR: MATLAB-bicubic imresize of the mod-cropped windowed HR, {s.bits}-bit; "
                f"{s.describe()} stored values through the modality LUT and the window onto "
                "[0, 1] (values outside clipped)"
            )
        else:
            protocol = (
                f"LR: MATLAB-bicubic imresize of mod-cropped HR stored values, {s.bits}-bit; "
                f"{s.describe()} stored values normalised by that range (2^{s.bits} - 1 = "
                f"{s.peak}), no modality LUT or window applied"
            )
        return [EvalSet(self.name, records, protocol=protocol)]

    # -- the network's channels ------------------------------------------------------------
    def check_channels(self, network_channels: int) -> None:
        """DataError naming an RGB file when the network takes one channel (grey data into an
        RGB network is fine: it runs as grey RGB)."""
        self._records()
        wrong = [m.path for m in self._metas if m.channels > network_channels]
        if wrong:
            raise DataError(
                f"{wrong[0]} has 3 channel(s) (RGB) but the network takes {network_channels} "
                f"(model.net.num_in_ch); {len(wrong)} such file(s). Remove them from data.roots "
                "(or data.include), or use a network with model.net.num_in_ch=3."
            )
