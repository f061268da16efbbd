"""What every command verb shares: the config resolvers, quiet third-party chatter, one wrapper
that turns a user error into one line and exit code 2 (no stack trace), and OpenMP threads that
sleep while they wait."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from medsr.conf import resolvers as _resolvers  # noqa: F401  (registers the OmegaConf resolvers)
from medsr.errors import USER_ERROR_EXIT, MedsrError

T = TypeVar("T")

# The verbs import this module before torch, and OpenMP reads its wait policy once, when torch
# loads: threads waiting for work then sleep instead of spinning, so a core taken by another
# process no longer stalls every parallel region (see medsr.host).
if "torch" not in sys.modules and os.environ.get("MEDSR_HOST_TUNING", "1") != "0":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["USER_ERROR_EXIT", "medsr_error", "quiet_third_party", "run_cli"]


def medsr_error(err: BaseException | None) -> MedsrError | None:
    """The MedsrError behind ``err`` (Hydra and OmegaConf wrap errors raised while instantiating
    or resolving), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MedsrError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def run_cli(action: Callable[[], T], log: logging.Logger) -> T:
    """``action()``; a MedsrError (also wrapped) is logged as one line and exits with code 2.
    Anything else is a bug in medsr and keeps its traceback."""
    try:
        return action()
    except Exception as err:
        known = medsr_error(err)
        if known is None:
            raise
        log.error("%s", known)
        raise SystemExit(USER_ERROR_EXIT) from None


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def quiet_third_party() -> None:
    """Drop Lightning's product tips (litlogger / litmodels), torch's ``LeafSpec`` deprecation
    raised from inside Lightning's ``_pytree`` helper, and three Lightning warnings that are wrong
    or said better by medsr in its workflow (idempotent). Real warnings stay: the filters match
    these exact messages only."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    # Lightning compares the batches of one epoch with log_every_n_steps; medsr trains by
    # iterations, logging every n steps across epochs, so the comparison means nothing here.
    warnings.filterwarnings(
        "ignore", message=r"The number of training batches \(\d+\) is smaller than the logging"
    )
    # medsr.train keeps an earlier metrics.csv (metrics_part<k>.csv) before the CSVLogger starts,
    # so its "will be deleted" is no longer true; ResumeState says what a mid-epoch resume means.
    warnings.filterwarnings(
        "ignore", message=r"Experiment logs directory .* exists and is not empty"
    )
    warnings.filterwarnings(
        "ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended"
    )
