"""MESSIDOR-2 fundus photographs: a seeded, patient-level train/val/test split, field-of-view aware."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from medsr.data.datamodules.base import SRData
from medsr.data.image_io import list_images
from medsr.data.rank_zero import info
from medsr.data.sources import (
    MESSIDOR2_URL,
    EvalSet,
    ImageRecord,
    messidor_images_dir,
    records_from,
)
from medsr.data.splits import (
    Split,
    check_no_crossing,
    read_groups,
    read_split,
    seeded_split,
    write_split,
)
from medsr.errors import DataError

log = logging.getLogger(__name__)

PER_IMAGE_WARNING = (
    "data=messidor without data.groups_file: the split is per image, so one patient's two eyes "
    "may fall on both sides (train and test). Give data.groups_file=<messidor-2.csv of the "
    "distribution> for a patient-level split (see the README)."
)


class MessidorData(SRData):
    """MESSIDOR-2 fundus photographs: a seeded train/val/test split, field-of-view aware.

    The split (1,000 train / 100 test by default, as in the thesis, plus a few validation
    images) puts whole groups (patients: ``groups_file``) on one side, and is written as
    ``messidor_split.csv`` (``split,image,group``) into the run folder (or to ``split_file``);
    pass that file back as ``data.split_file`` to reuse it, or give your own CSV
    (``split,image[,group]`` rows, image paths relative to ``IMAGES/``).

    Args:
        root: folder holding ``IMAGES/`` (any case; .png, .jpg, .tif), or the images themselves.
        n_train, n_val, n_test: split sizes (``n_train=None``: all images not in val/test);
            reached as closely as whole groups allow (the report says the counts).
        split_file: CSV to read when it exists, else where the new split is written.
        groups_file: CSV of image groups (``image,group`` rows, or one examination per row
            listing its images, as MESSIDOR-2's ``messidor-2.csv``); None = per-image split,
            with a warning.
        run_dir: the run folder, where a new split is recorded when ``split_file`` is None.
        mask_dir: FOV masks; None = ``<root>/mask/`` when present, else computed per image;
            ``"computed"``: always computed.
        **kwargs: the :class:`SRData` options (``fov`` defaults to True here).
    """

    separate_test = True

    def __init__(
        self,
        root: str = "data/MESSIDOR-2",
        n_train: int | None = 1000,
        n_val: int = 10,
        n_test: int = 100,
        split_file: str | None = None,
        groups_file: str | None = None,
        run_dir: str | None = None,
        fov: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(fov=fov, **kwargs)
        self.root = Path(root).expanduser()
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.split_file = Path(split_file).expanduser() if split_file else None
        self.groups_file = Path(groups_file).expanduser() if groups_file else None
        self.run_dir = Path(run_dir) if run_dir else None
        self._split: dict[str, list[ImageRecord]] | None = None
        self.split_path: Path | None = None

    def _records(self) -> dict[str, list[ImageRecord]]:
        if self._split is not None:
            return self._split
        images_dir = messidor_images_dir(self.root)
        # Recursive inside IMAGES/; not when the root holds the images next to a mask/ folder.
        images = list_images(
            images_dir,
            recursive=images_dir != self.root,
            key="data.root",
            hint=f"MESSIDOR-2 is distributed at {MESSIDOR2_URL}.",
        )
        groups = read_groups(self.groups_file, images, images_dir) if self.groups_file else {}
        split, groups, how = self._split_of(images, images_dir, groups)
        if not any(len(v) > 1 for v in _members(groups).values()):
            warnings.warn(PER_IMAGE_WARNING, stacklevel=2)
        mask_dir = (
            (self.mask_dir or (None if self.compute_masks else _find_child(self.root, MASK_DIRS)))
            if self.fov.enabled
            else None
        )
        self._split = {k: records_from(v, images_dir, mask_dir) for k, v in split.items()}
        written = self._save_split(split, images_dir, groups)
        self.split_path = written or self.split_file
        counts = " / ".join(f"{len(split[k])} {k}" for k in ("train", "val", "test"))
        masks = (
            f"FOV masks from {mask_dir}"
            if mask_dir
            else ("FOV masks computed" if self.fov.enabled else "no FOV")
        )
        where = f"; written to {written} (reuse with data.split_file={written})" if written else ""
        self.report = (
            f"messidor in {images_dir}: {len(images)} images, {how}: {counts}; {masks}{where}"
        )
        info("%s", self.report)
        return self._split

    def _split_of(
        self, images: list[Path], images_dir: Path, groups: dict[Path, str]
    ) -> tuple[Split, dict[Path, str], str]:
        """The split file's split (checked against ``groups``) when it exists, else a new one."""
        if self.split_file is not None and self.split_file.is_file():
            split, file_groups = read_split(self.split_file, images_dir)
            check_no_crossing(
                split, groups, f"split file {self.split_file} with {self.groups_file}"
            )
            return split, groups or file_groups, f"split read from {self.split_file}"
        split, how = seeded_split(
            images, images_dir, self.n_train, self.n_val, self.n_test, self.split_seed, groups
        )
        return split, groups, how

    def _save_split(self, split: Split, images_dir: Path, groups: dict[Path, str]) -> Path | None:
        """Record a new split: at ``split_file`` when given (and absent), else in the run folder."""
        if self.split_file is not None:
            target = None if self.split_file.is_file() else self.split_file
        else:
            target = self.run_dir / "messidor_split.csv" if self.run_dir else None
        if target is not None:
            try:
                write_split(target, split, images_dir, groups)
            except OSError as err:
                raise DataError(
                    f"cannot write the split file {target}: {err.strerror or err}; set "
                    "data.split_file=<a path you can write to>"
                ) from None
        return target

    def _list_train(self) -> list[ImageRecord]:
        return self._records()["train"]

    def _list_eval(self, stage: str) -> list[EvalSet]:
        records = self._records()["test" if stage == "test" else "val"]
        return [EvalSet(self.tag or "MESSIDOR2", records, fov=self.fov.enabled)]


def _members(groups: dict[Path, str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for image, group in groups.items():
        out.setdefault(group, []).append(image)
    return out


MASK_DIRS = ("mask", "masks")


def _find_child(root: Path, names: tuple[str, ...]) -> Path | None:
    if not root.is_dir():
        return None
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in names:
            return child
    return None
