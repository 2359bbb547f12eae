"""The MMA-DFER model: architecture, class names and checkpoint files."""

from mmadfer_cli.model.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from mmadfer_cli.model.mmadfer import MMADFER, MMADFERConfig, build_model

__all__ = [
    "MMADFER",
    "CheckpointError",
    "MMADFERConfig",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]
