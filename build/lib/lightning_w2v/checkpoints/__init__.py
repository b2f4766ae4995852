"""Checkpoint files: the one reader (kinds, config, weights) and the checks a resumed run must pass."""
from .reader import (
                     CONFIG_KEY,
                     OUR_KINDS,
                     STAMP_KEY,
                     WANDB_RUN_ID_KEY,
                     Checkpoint,
                     load_file,
                     read_checkpoint,
                     stamp,
)
from .resume import check_fits

__all__ = ["CONFIG_KEY", "OUR_KINDS", "STAMP_KEY", "WANDB_RUN_ID_KEY", "Checkpoint", "check_fits", "load_file",
           "read_checkpoint", "stamp"]
