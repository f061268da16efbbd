"""DF2K: DIV2K train (800) + Flickr2K (2,650) for training, DIV2K valid for testing."""

from __future__ import annotations

import logging
from pathlib import Path

from medsr.data.datamodules.base import SRData
from medsr.data.rank_zero import info
from medsr.data.sources import (
    DF2KListing,
    EvalSet,
    ImageRecord,
    df2k_listing,
)

log = logging.getLogger(__name__)


class DF2KData(SRData):
    """DIV2K (800) + Flickr2K (2,650) training images; test on DIV2K_valid_HR, validation on
    held-out training images (never a test image).

    Args:
        root: folder holding ``DIV2K_train_HR/``, ``Flickr2K_HR/`` (either may be absent) and
            ``DIV2K_valid_HR/`` (the test set; else ``n_test`` training images are held out).
        n_val: training images held out for validation (seeded by ``split_seed``).
        n_test: training images held out for testing when DIV2K_valid_HR is absent.
        **kwargs: the :class:`SRData` options.
    """

    separate_test = True

    def __init__(
        self, root: str = "data/DF2K", n_val: int = 10, n_test: int = 10, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.n_val, self.n_test = n_val, n_test
        self._listing: DF2KListing | None = None

    def _listed(self) -> DF2KListing:
        if self._listing is None:
            self._listing = df2k_listing(self.root, self.n_val, self.split_seed, self.n_test)
            self.report = self._listing.report
            info("%s", self.report)
        return self._listing

    def _list_train(self) -> list[ImageRecord]:
        return self._listed().train

    def _list_eval(self, stage: str) -> list[EvalSet]:
        listing = self._listed()
        if stage == "test":
            return [EvalSet(listing.test_name, listing.test)]
        return [EvalSet(listing.val_name, listing.val)]
