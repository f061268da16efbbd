"""Silence third-party messages that say nothing about the run (advertising tips, a deprecation
inside Lightning that users cannot act on). Real warnings stay: the filters match these exact
messages only."""

from __future__ import annotations

import logging
import warnings


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def quiet_third_party() -> None:
    """Drop Lightning's product tips (litlogger / litmodels) and torch's ``LeafSpec`` deprecation
    raised from inside Lightning's ``_pytree`` helper (idempotent)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
