"""Files that appear whole or not at all.

Every output medsr writes (images, DICOM, CSV, results, figures, checkpoints, weights) goes to a
temporary name in the destination folder first and is renamed over the final name when complete:
a run killed while writing leaves the previous file or none, never a truncated one. The
temporary name starts with a dot and keeps the suffix (``.name.<random>.tmp.png``), so writers
that pick the format by suffix work and image listings (which skip dot files) never see it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medsr.errors import DataError

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # reading the umask means setting it; no other thread may see the 0
        mask = os.umask(0)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """A temporary path next to ``path``; renamed to ``path`` if the block ends without error.

    The final file gets the permissions the user's umask gives a new file (``mkstemp`` creates
    private 0600 files). On error the temporary file is removed and the previous ``path``, if
    any, is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)  # the rename itself survives a power cut


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], fsync: bool = True) -> Path:
    """``write(tmp)`` then rename ``tmp`` to ``path`` (see :func:`atomic_path`). Returns ``path``."""
    with atomic_path(path, fsync=fsync) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text), fsync=False)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_path`, flushed to disk before the rename."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def claim_folder(path: str | os.PathLike) -> Path:
    """Create ``path`` as a new folder, or ``<path>_2``, ``<path>_3``, ... when it is taken.

    ``mkdir`` either creates the folder or fails because it exists, so two processes asking for
    the same name at the same moment get two folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = path if n == 1 else path.with_name(f"{path.name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")


def check_writable(folder: str | os.PathLike, setting: str) -> Path:
    """Create ``folder`` if needed and write (then remove) a file in it.

    Raises:
        DataError: the folder cannot be created or written; the message names it and
            ``setting``, what chooses the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".medsr-write-test-"):
            pass
    except OSError as err:
        raise DataError(
            f"cannot write to {folder}: {err.strerror or err}; choose a folder you can write to "
            f"({setting})"
        ) from None
    return folder


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
