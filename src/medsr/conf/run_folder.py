"""Every run its own folder: a Hydra callback (``hydra.callbacks.run_folder``).

The run folder ``outputs/<task>/<run name>/<time>`` names the second a run started, so two runs
of one experiment started in the same second would share a folder (one ``.hydra``, the other's
results, interleaved ``metrics.csv``). Before Hydra creates the folder, this callback takes it
with ``mkdir`` (which fails when the folder exists) and moves to ``<time>_2``, ``<time>_3``, ...
when it is taken. A sweep's folder (``multirun/<task>/<time>``) is taken the same way; its jobs
are numbered inside it. A folder given on the command line (``hydra.run.dir=``,
``hydra.sweep.dir=``) is used as given: that is how a run is continued in place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from medsr.errors import USER_ERROR_EXIT, DataError
from medsr.files import check_writable, claim_folder

log = logging.getLogger(__name__)


def given(config: DictConfig, key: str) -> bool:
    """Whether the command line set ``key`` (a Hydra override such as ``hydra.run.dir=...``)."""
    overrides = OmegaConf.select(config, "hydra.overrides.hydra") or []
    return any(str(o).split("=", 1)[0].lstrip("+~") == key for o in overrides)


def _quoted(path: str) -> str:
    return "'" + path.replace("'", "\\'") + "'"


def _take(config: DictConfig, key: str, what: str) -> str | None:
    """The folder ``key`` names, taken anew (None when the command line gave it: used as is, once
    checked writable). A folder that cannot be made ends the run with one line, exit code 2."""
    try:
        folder = str(OmegaConf.select(config, key))
    except Exception:  # noqa: BLE001 - an unresolvable setting: Hydra reports it in its own words
        return None
    try:
        if given(config, key):
            check_writable(folder, f"{key}=<folder>")
            return None
        return str(claim_folder(folder))
    except DataError as err:
        message = str(err)
    except OSError as err:
        message = (
            f"cannot create the {what} folder {Path(folder).absolute()}: {err.strerror or err}; "
            "start from a folder "
            f"you can write to, or set {key}=<writable folder>"
        )
    log.error("%s", message)
    raise SystemExit(USER_ERROR_EXIT)


class UniqueRunFolder(Callback):
    """Takes a new run (or sweep) folder atomically before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        claimed = _take(config, "hydra.run.dir", "run")
        if claimed is not None:
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.run.dir = claimed

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        claimed = _take(config, "hydra.sweep.dir", "sweep")
        if claimed is not None:
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.sweep.dir = claimed
                # Each job's config is composed again from the overrides: they must name it.
                config.hydra.overrides.hydra.append(f"hydra.sweep.dir={_quoted(claimed)}")
