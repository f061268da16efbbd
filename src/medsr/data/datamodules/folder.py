"""Any folder(s) of HR images (``data=folder``), and the samples shipped with medsr (``data=samples``)."""

from __future__ import annotations

import logging

from medsr.data.datamodules.base import SRData
from medsr.data.rank_zero import info
from medsr.data.sources import EvalSet, ImageRecord, attach_masks, folder_records
from medsr.data.splits import holdout

log = logging.getLogger(__name__)


class FolderData(SRData):
    """HR images from one or more folders (``data=folder``; ``data=samples`` for the shipped ones).

    Args:
        train_dirs: training image folders.
        val_dirs: validation folders (pooled into one set named ``name``); None = ``n_val``
            training images held out with ``split_seed``.
        test_dirs: test folders (checked to share no image with validation); None = the
            validation images (a demo's shortcut: numbers selected on them are biased).
        n_val: held-out images when ``val_dirs`` is None.
        name: the evaluation set's name in logs.
        recursive: include sub-folders.
        **kwargs: the :class:`SRData` options.
    """

    def __init__(
        self,
        train_dirs: list[str] | None = None,
        val_dirs: list[str] | None = None,
        test_dirs: list[str] | None = None,
        n_val: int = 5,
        name: str = "folder",
        recursive: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.train_dirs = list(train_dirs) if train_dirs else []
        self.val_dirs = list(val_dirs) if val_dirs else None
        self.test_dirs = list(test_dirs) if test_dirs else None
        self.n_val = n_val
        self.name = name
        self.recursive = recursive
        self._split: tuple[list[ImageRecord], list[ImageRecord]] | None = None
        self.separate_test = self.test_dirs is not None

    def _with_masks(self, records: list[ImageRecord]) -> list[ImageRecord]:
        if not (self.fov.enabled and self.mask_dir):
            return records
        return attach_masks(records, self.mask_dir)

    def _pool(self) -> tuple[list[ImageRecord], list[ImageRecord]]:
        if self._split is None:
            train = self._with_masks(
                folder_records(self.train_dirs, "data.train_dirs", self.recursive)
            )
            held = []
            if self.val_dirs is None:
                train, held = holdout(train, self.n_val, self.split_seed)
            self._split = (train, held)
        return self._split

    def _list_train(self) -> list[ImageRecord]:
        return self._pool()[0]

    def _list_eval(self, stage: str) -> list[EvalSet]:
        if stage == "test" and not self.test_dirs:
            info("testing on the validation images (data.test_dirs=null)")
        dirs = self.test_dirs if stage == "test" and self.test_dirs else self.val_dirs
        if dirs is None:
            records = self._pool()[1]
        else:
            key = "data.test_dirs" if dirs is self.test_dirs else "data.val_dirs"
            records = self._with_masks(folder_records(dirs, key, self.recursive))
        return [EvalSet(self.name, records, fov=self.fov.enabled)]
