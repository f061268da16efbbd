"""Lightning callbacks and plugins of the training workflow: EMA weights, validation pictures,
RNG and data-stream state for exact resumes, atomic checkpoint files, data-wait monitoring,
progress in steps."""

from medsr.training.callbacks.checkpoint_io import AtomicCheckpointIO
from medsr.training.callbacks.data_wait import DataWaitMonitor
from medsr.training.callbacks.ema import EMAWeights
from medsr.training.callbacks.images import ValidationImages
from medsr.training.callbacks.last_checkpoint import LastCheckpoint
from medsr.training.callbacks.progress import StepProgress
from medsr.training.callbacks.resume_state import ResumeState

__all__ = [
    "AtomicCheckpointIO",
    "DataWaitMonitor",
    "EMAWeights",
    "LastCheckpoint",
    "ResumeState",
    "StepProgress",
    "ValidationImages",
]
