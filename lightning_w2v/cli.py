"""LightningCLI entry: ``python cli.py fit|validate|test|predict --config ...``."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback

from .loggers import WandbLogger

log = logging.getLogger(__name__)
WANDB_RUN_ID_KEY = "wandb_run_id"


class ConfigToLoggerCallback(SaveConfigCallback):
    """Saves config.yaml to the log dir, sends the resolved config to W&B once, and stores the
    W&B run id in every checkpoint so a resumed run continues the same W&B run."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                config = json.loads(self.parser.dump(self.config, skip_none=False, format="json"))
                logger.experiment.config.update({"cli": config}, allow_val_change=True)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and getattr(logger.experiment, "id", None):
                checkpoint[WANDB_RUN_ID_KEY] = logger.experiment.id


def _checkpoint_to_resume(trainer: pl.Trainer, ckpt_path: str | None) -> Path | None:
    """The file ``--ckpt_path`` names (resolving ``last``), or a SLURM requeue checkpoint."""
    if ckpt_path in (None, "last", "hpc"):
        candidates = []
        if ckpt_path is None or ckpt_path == "hpc":
            candidates += sorted(Path(trainer.default_root_dir).glob("hpc_ckpt_*.ckpt"))
        if ckpt_path == "last":
            for callback in trainer.checkpoint_callbacks:
                if callback.dirpath:
                    candidates += sorted(Path(callback.dirpath).glob("last*.ckpt"))
        return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
    path = Path(ckpt_path)
    return path if path.is_file() else None


class LightningW2VCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="After fit, evaluate the best checkpoint (by the checkpoint callback) on the test split.")

    def before_fit(self) -> None:
        self._full_state_init()
        self._continue_wandb_run()

    def _full_state_init(self) -> None:
        """``model.init_mode=full-state``: resume everything from ``model.init_from.path``."""
        hparams = getattr(self.model, "hparams", {})
        spec = hparams.get("init_from")
        if hparams.get("init_mode") == "full-state" and spec is not None:
            config = self.config_init[self.subcommand]
            if config.get("ckpt_path") is None:
                config["ckpt_path"] = spec.path if hasattr(spec, "path") else spec["path"]

    def _continue_wandb_run(self) -> None:
        """Continue the same W&B run when resuming (``--ckpt_path last``, or a SLURM requeue)."""
        loggers = [lg for lg in self.trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        checkpoint = _checkpoint_to_resume(self.trainer, self.config[self.subcommand].get("ckpt_path"))
        if checkpoint is None:
            return
        run_id = torch.load(checkpoint, map_location="cpu", weights_only=False).get(WANDB_RUN_ID_KEY)
        if run_id:
            log.info("resuming W&B run %s from %s", run_id, checkpoint)
            for logger in loggers:
                logger.resume_run(run_id)

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit"):
            return
        callback = self.trainer.checkpoint_callback
        ckpt = "best" if callback is not None and callback.best_model_path else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)


def main(args: Any = None, run: bool = True) -> LightningW2VCLI:
    return LightningW2VCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=ConfigToLoggerCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf+"},  # ${...} resolved after all overrides
        args=args,
        run=run,
    )
