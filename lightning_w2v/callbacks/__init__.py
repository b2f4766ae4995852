"""Lightning plug-ins of this project: callbacks, the checkpoint writer and the W&B logger.

Runs that stop and resume: :class:`RNGStateCallback` (exact resume), :class:`AtomicCheckpointIO`
(atomic checkpoint writes, one-line disk-full error), :class:`PreemptionCheckpoint`
(SIGTERM/SIGUSR1 save and exit 0). Watching a run: :class:`PretrainHealthMonitor` (codebook
collapse, trivial task, bad gradients), :class:`LayerWeightsLogger` (a weighted head's layer
weights), :class:`WandbLogger` (offline by itself without credentials or network). Stopping:
:class:`EarlyStopping` (Lightning's, tolerant of runs shorter than an epoch).
"""
from .checkpoint_io import AtomicCheckpointIO, atomic_torch_save
from .early_stopping import EarlyStopping
from .layer_weights import LayerWeightsLogger
from .monitor import PretrainHealthMonitor, PretrainHealthWarning
from .preemption import PreemptionCheckpoint
from .probe import LinearProbe
from .rng import RNGStateCallback, capture_rng_states, restore_rng_states
from .wandb import WandbLogger, resolve_wandb_mode, start_wandb_run

__all__ = [
    "AtomicCheckpointIO",
    "EarlyStopping",
    "LayerWeightsLogger",
    "LinearProbe",
    "PreemptionCheckpoint",
    "PretrainHealthMonitor",
    "PretrainHealthWarning",
    "RNGStateCallback",
    "WandbLogger",
    "atomic_torch_save",
    "capture_rng_states",
    "resolve_wandb_mode",
    "restore_rng_states",
    "start_wandb_run",
]
