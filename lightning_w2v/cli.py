"""LightningCLI entry: ``python cli.py fit|validate|test|predict --config ...``."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback


class ConfigToLoggerCallback(SaveConfigCallback):
    """Saves config.yaml to the log dir and sends the resolved config to the logger (W&B)."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from .loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                config = self.parser.dump(self.config, skip_none=False, format="json")
                import json

                logger.experiment.config.update({"cli": json.loads(config)}, allow_val_change=True)


class LightningW2VCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="After fit, evaluate the best checkpoint (by the checkpoint callback) on the test split.")

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
