"""Checkpoint files written atomically: a run killed while saving never leaves a broken file."""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medsr.files import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves go through :func:`medsr.files.atomic_torch_save`
    (temporary file in the same folder, flushed, renamed). Lightning's own transaction writes
    into the system temp folder and moves the file, a copy rather than a rename across file
    systems. Remote paths (``s3://`` ...) keep Lightning's save.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        protocol = get_filesystem(path).protocol
        local = "file" in ((protocol,) if isinstance(protocol, str) else protocol)
        if storage_options is not None or not local:
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)
