"""Log lines a multi-process run prints once: the data classes have no Lightning to ask."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("medsr.data.datamodules")
_RANKS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def info(message: str, *args) -> None:
    """Log on rank 0 only (the launchers' rank variables, read as Lightning reads them)."""
    if int(next((v for k in _RANKS if (v := os.environ.get(k, "")).isdigit()), "0")) == 0:
        log.info(message, *args)
