"""Lightning's EarlyStopping, for runs that may end before their first validation."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping as _LightningEarlyStopping


class EarlyStopping(_LightningEarlyStopping):
    """Lightning's EarlyStopping, for runs that may end before their first validation.

    Lightning's callback (``strict=True``) fails such a run, e.g. ``--trainer.max_steps 2`` under
    an epoch-based validation, because the monitored ``val/loss`` does not exist yet. This one
    skips the check until a validation has run (as ModelCheckpoint does), and stays strict after
    that, so a misspelt ``monitor`` is still an error.
    """

    def _validate_condition_metric(self, logs: dict[str, torch.Tensor]) -> bool:
        if self.monitor not in logs and not self._validation_has_run():
            return False
        return super()._validate_condition_metric(logs)

    def _validation_has_run(self) -> bool:
        trainer = getattr(self, "_trainer_ref", None)
        return bool(trainer is not None and trainer.fit_loop.epoch_loop.val_loop._has_run)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer_ref = trainer
