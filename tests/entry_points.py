"""Running a command verb in-process as the shell would (``sys.argv`` + ``main()``), and checking
what a run leaves on disk. Subprocesses cost seconds each on a loaded CPU; ``main()`` is the
same Hydra entry point without the interpreter start."""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import logging
import os
import pickle
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534


@dataclass
class Outcome:
    """What a run ended with: exit code, the ERROR lines of medsr's loggers, their warnings."""

    code: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(logging.WARNING)
        self.outcome = outcome

    def emit(self, record: logging.LogRecord) -> None:
        target = self.outcome.errors if record.levelno >= logging.ERROR else self.outcome.warnings
        target.append(record.getMessage())


@contextlib.contextmanager
def _environment(env: dict[str, str | None], cwd: Path | None) -> Iterator[None]:
    saved_env = {k: os.environ.get(k) for k in env}
    saved_argv, saved_cwd = sys.argv[:], os.getcwd()
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reopen_stale_handlers() -> None:
    """Point log handlers whose stream pytest has closed (libraries such as Lightning attach one
    at import, during an earlier test's capture) at the current stderr."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(
                handler.stream, "closed", False
            ):
                handler.stream = sys.stderr  # not setStream(): it flushes the closed stream


def call_main(
    verb: str,
    *overrides: str,
    env: dict[str, str | None] | None = None,
    cwd: Path | None = None,
) -> Outcome:
    """``python -m medsr.<verb> <overrides>``, in this process. Returns the exit code (0 when
    ``main`` returns) and the messages medsr's loggers (``medsr.*``) logged at WARNING and up."""
    module = importlib.import_module(f"medsr.{verb}")
    outcome = Outcome(code=0)
    handler = _Collect(outcome)
    medsr_log = logging.getLogger("medsr")
    medsr_log.addHandler(handler)
    _reopen_stale_handlers()
    try:
        with _environment(env or {}, cwd):
            sys.argv = [f"medsr.{verb}", *overrides]
            try:
                module.main()
            except SystemExit as end:
                outcome.code = end.code if isinstance(end.code, int) else 1
    finally:
        medsr_log.removeHandler(handler)
    return outcome


def unprivileged(fn: Callable[[], Outcome]) -> Outcome:
    """``fn()`` as a user without root's power to write anywhere: directly when the tests run
    as such a user, else in a forked child that drops to ``nobody`` first. Run ``fn``'s path
    once before (as root): ``nobody`` may not be allowed to read the interpreter's own files to
    import what it still needs."""
    if os.geteuid() != 0:
        return fn()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = fn()
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            result = Outcome(code=-1, errors=[f"{type(err).__name__}: {err}"])
        with os.fdopen(write, "wb") as pipe:
            pickle.dump(result, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


# -- what a run leaves ------------------------------------------------------------------------
def incomplete_files(folder: Path) -> list[str]:
    """Files under ``folder`` that are not whole: temporary files of an interrupted write, and
    images, checkpoints, weights, JSON and CSV files that do not parse. Logs (``*.log``) and
    Lightning's append-only metrics are not outputs and are not checked."""
    from medsr.data.image_io import IMAGE_EXTENSIONS, read_image

    bad = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        name, suffix = path.name, path.suffix.lower()
        if ".tmp" in name and name.startswith("."):
            bad.append(f"{path} (temporary file left behind)")
            continue
        try:
            if suffix in IMAGE_EXTENSIONS:
                read_image(path)
            elif suffix in (".ckpt", ".pth"):
                with zipfile.ZipFile(path) as z:
                    assert z.testzip() is None
            elif suffix == ".safetensors":
                from safetensors.torch import load_file

                load_file(str(path))
            elif suffix == ".json":
                json.loads(path.read_text())
            elif suffix == ".csv" and not name.startswith("metrics"):
                with path.open(newline="") as f:
                    rows = list(csv.reader(f))
                assert rows and all(len(r) == len(rows[0]) for r in rows)
        except Exception as err:  # noqa: BLE001 - every failure is a finding
            bad.append(f"{path} ({type(err).__name__}: {err})")
    return bad
