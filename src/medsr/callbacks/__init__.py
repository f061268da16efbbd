"""Lightning callbacks and plugins of the training workflow: EMA weights, validation pictures,
RNG and data-stream state for exact resumes, atomic checkpoint files."""

from medsr.callbacks.checkpoint_io import AtomicCheckpointIO, atomic_torch_save
from medsr.callbacks.ema import EMAWeights
from medsr.callbacks.images import ValidationImages
from medsr.callbacks.last_checkpoint import LastCheckpoint
from medsr.callbacks.resume_state import ResumeState

__all__ = [
    "AtomicCheckpointIO",
    "EMAWeights",
    "LastCheckpoint",
    "ResumeState",
    "ValidationImages",
    "atomic_torch_save",
]
