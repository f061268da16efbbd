"""The SR benchmark sets (Set5, Set14, B100, BSDS200, Urban100, Manga109), evaluation only."""

from __future__ import annotations

import logging
from pathlib import Path

from medsr.data.datamodules.base import SRData
from medsr.data.rank_zero import info
from medsr.data.sources import (
    EvalSet,
    ImageRecord,
    benchmark_sets,
)
from medsr.errors import ConfigError

log = logging.getLogger(__name__)


class BenchmarkData(SRData):
    """Evaluation on the SR benchmark sets (``<root>/<Set>/HR/*``), one loader per set.

    ``<Set>/LR_bicubic/X<s>/`` (the EDSR benchmark package layout) is used when present, and the
    protocol says so; otherwise LR = MATLAB-bicubic imresize of the mod-cropped HR, 8-bit.

    Args:
        root: the benchmark folder.
        sets: set names; None = every ``<root>/<Set>/HR`` found (Set5, Set14, B100, BSDS200,
            Urban100, Manga109 first).
        fov_sets: names of fundus sets, also scored inside the field of view.
        **kwargs: the :class:`SRData` options.
    """

    def __init__(
        self,
        root: str = "data/benchmark",
        sets: list[str] | None = None,
        fov_sets: list[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.sets = list(sets) if sets else None
        self.fov_sets = list(fov_sets or [])

    def _list_train(self) -> list[ImageRecord]:
        raise ConfigError(
            "data=benchmark holds evaluation sets only; train with data=df2k, data=messidor or "
            "data=folder and evaluate with python -m medsr.evaluate data=benchmark."
        )

    def _list_eval(self, stage: str) -> list[EvalSet]:
        sets = benchmark_sets(
            self.root, self.sets, self.scale, self.fov_sets, mask_files=not self.compute_masks
        )
        if not self.report:
            self.report = "benchmark in {}: {}".format(
                self.root, ", ".join(f"{s.name} ({len(s.records)}, {s.protocol})" for s in sets)
            )
            info("%s", self.report)
        return sets
