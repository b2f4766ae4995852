"""Checkpoint files: the one reader (kinds, configs, weights), the checks a resumed run must pass, export."""
from .reader import (
    ARCHITECTURE_KEY,
    CONFIG_KEY,
    OBJECTIVE_KEY,
    OUR_KINDS,
    STAMP_KEY,
    WANDB_RUN_ID_KEY,
    Checkpoint,
    load_file,
    read_checkpoint,
    stamp,
)
from .resume import check_fits

__all__ = ["ARCHITECTURE_KEY", "CONFIG_KEY", "OBJECTIVE_KEY", "OUR_KINDS", "STAMP_KEY", "WANDB_RUN_ID_KEY",
           "Checkpoint", "check_fits", "load_file", "read_checkpoint", "stamp"]
