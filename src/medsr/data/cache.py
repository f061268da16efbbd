"""Optional one-time cache of decoded training images as one uint8 memory map, reused by later runs.

Decoding a 2K PNG takes ~0.1 s; cropping a patch from a memory map ~25 us. The cache is keyed by
the files' paths, sizes and modification times (and the FOV settings, whose masks it also
stores), so a changed dataset builds a new cache and an unchanged one is found again by any
later run. It is built in a temporary folder and renamed into place at the end, so an
interrupted build never leaves a half cache behind.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import socket
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from medsr.data.decode import load_training_image
from medsr.data.image_io import UnreadableImageError, image_info
from medsr.errors import DataError, warn_files
from medsr.files import check_writable

log = logging.getLogger(__name__)

_VERSION = 1


def default_cache_dir() -> Path:
    """``$MEDSR_CACHE``, else ``$XDG_CACHE_HOME/medsr/data``, else ``~/.cache/medsr/data``."""
    if os.environ.get("MEDSR_CACHE"):
        return Path(os.environ["MEDSR_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return base / "medsr" / "data"


def _decode(args: tuple) -> tuple[int, np.ndarray | None, np.ndarray | None, str | None]:
    # Top-level so process pools can pickle it under any start method.
    i, record, fov = args
    try:
        image, mask = load_training_image(record, fov)
    except DataError as e:
        return i, None, None, str(e)
    return i, image, mask, None


class ImageCache:
    """Decoded ``(H, W, 3)`` uint8 training images (and FOV masks) in one memory-mapped file.

    Use :meth:`open_or_build`; ``image(i)``/``mask(i)`` return read-only views (no copy).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        index = json.loads((self.folder / "index.json").read_text())
        self.entries: list[dict] = index["images"]
        self.paths: list[str] = [e["path"] for e in self.entries]
        self._images: np.memmap | None = None
        self._masks: np.memmap | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = state["_masks"] = None  # a pickled memmap would be a full copy
        return state

    def __len__(self) -> int:
        return len(self.entries)

    def image(self, i: int) -> np.ndarray:
        if self._images is None:
            # A plain ndarray view: slicing np.memmap objects costs more than the crop itself.
            self._images = np.memmap(self.folder / "images.u8", dtype=np.uint8, mode="r").view(
                np.ndarray
            )
        e = self.entries[i]
        n = e["h"] * e["w"] * 3
        return self._images[e["offset"] : e["offset"] + n].reshape(e["h"], e["w"], 3)

    def mask(self, i: int) -> np.ndarray | None:
        e = self.entries[i]
        if e.get("mask_offset") is None:
            return None
        if self._masks is None:
            self._masks = np.memmap(self.folder / "masks.u8", dtype=np.bool_, mode="r").view(
                np.ndarray
            )
        n = e["h"] * e["w"]
        return self._masks[e["mask_offset"] : e["mask_offset"] + n].reshape(e["h"], e["w"])

    # -- building --------------------------------------------------------------------------
    @staticmethod
    def key(records: list, fov) -> str:
        """Hash of the files (path, size, mtime) and FOV settings; changes when the data does."""
        h = hashlib.sha256(f"v{_VERSION} fov={fov.enabled}:{fov.threshold}".encode())
        for r in records:
            for p in (r.path, r.mask_path):
                if p is not None:
                    st = os.stat(p)
                    h.update(f"{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    @classmethod
    def open_or_build(
        cls,
        records: list,
        cache_dir: Path | None,
        fov,
        skip_bad: bool = False,
        workers: int = 1,
        tag: str = "data",
    ) -> ImageCache:
        """Open the cache of these records, building it first when absent.

        Args:
            records: the training ``ImageRecord`` list (its order is the cache order).
            cache_dir: parent folder of the caches (None = :func:`default_cache_dir`).
            fov: ``FovOptions``; masks are stored when enabled.
            skip_bad: leave unreadable files out with one warning naming them, instead of raising.
            workers: decoding processes.
            tag: readable prefix of the cache folder's name.
        """
        cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        folder = cache_dir / f"{tag}-{cls.key(records, fov)}"
        if (folder / "index.json").is_file():
            log.info(
                "data cache: reusing %s (%d images)",
                folder,
                len(json.loads((folder / "index.json").read_text())["images"]),
            )
            return cls(folder)
        cls._build(records, folder, fov, skip_bad, workers)
        return cls(folder)

    @staticmethod
    def _build(records: list, folder: Path, fov, skip_bad: bool, workers: int) -> None:
        sizes = []
        for r in records:
            try:
                h, w, _, _ = image_info(r.path)
            except UnreadableImageError:
                h = w = 0
            sizes.append(h * w * (4 if fov.enabled else 3))
        need = sum(sizes)
        check_writable(folder.parent, "data.cache_dir=<folder> or data.cache=false")
        _remove_stale(folder)
        free = shutil.disk_usage(folder.parent).free
        if need * 1.02 > free:
            raise DataError(
                f"the data cache needs {need / 2**30:.1f} GiB but {folder.parent} has {free / 2**30:.1f} GiB free; "
                "set data.cache_dir=<folder with space> or data.cache=false."
            )
        log.info(
            "data cache: decoding %d images (%.1f GiB) into %s; later runs reuse it",
            len(records),
            need / 2**30,
            folder,
        )
        tmp = folder.with_name(f".{folder.name}.{socket.gethostname()}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        jobs = [(i, r, fov) for i, r in enumerate(records)]
        try:
            with open(tmp / "images.u8", "wb") as fi, open(tmp / "masks.u8", "wb") as fm:
                if workers > 1:
                    pool = ProcessPoolExecutor(max_workers=workers)
                    try:
                        entries, bad = _append_all(
                            pool.map(_decode, jobs), records, fi, fm, skip_bad
                        )
                    finally:
                        pool.shutdown(wait=True, cancel_futures=True)
                else:
                    entries, bad = _append_all(map(_decode, jobs), records, fi, fm, skip_bad)
            if not entries:
                raise DataError(
                    "no training image could be decoded for the data cache; see the warnings."
                )
            (tmp / "index.json").write_text(json.dumps({"version": _VERSION, "images": entries}))
            try:
                os.replace(tmp, folder)
            except OSError:  # another run finished the same cache first: use theirs
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        warn_files("data cache: skipped unreadable images", bad)


def _remove_stale(folder: Path) -> None:
    """Remove half-built copies of ``folder`` left by killed runs on this host (their process
    is gone); builds of live processes and of other hosts sharing the folder stay."""
    host = socket.gethostname()
    for tmp in folder.parent.glob(f".{glob.escape(folder.name)}.{glob.escape(host)}.*.tmp"):
        pid = tmp.name[: -len(".tmp")].rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("data cache: removing %s, left by a run that was stopped", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _append_all(results, records: list, fi, fm, skip_bad: bool) -> tuple[list[dict], list[Path]]:
    """Append decoded images (and masks) to the open files in record order; returns index entries."""
    entries, bad = [], []
    offset = mask_offset = 0
    for i, image, mask, error in results:
        if error is not None:
            if not skip_bad:
                raise UnreadableImageError(error)
            bad.append(records[i].path)
            continue
        h, w = image.shape[:2]
        entry = {
            "path": str(records[i].path),
            "name": records[i].name,
            "h": h,
            "w": w,
            "offset": offset,
            "mask_offset": None,
        }
        fi.write(np.ascontiguousarray(image).tobytes())
        offset += image.size
        if mask is not None:
            fm.write(np.ascontiguousarray(mask, dtype=np.bool_).tobytes())
            entry["mask_offset"] = mask_offset
            mask_offset += mask.size
        entries.append(entry)
    return entries, bad
