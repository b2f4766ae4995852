"""Learned layer weights of a ``layer: weighted`` fine-tuning head: logged each epoch, plotted at the end."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from ..analysis.plots import plot_bar

log = logging.getLogger(__name__)


class LayerWeightsLogger(pl.Callback):
    """Logs the softmax layer weights of a ``layer: weighted`` FinetuneModule.

    Each validation epoch: ``layer_weights/<i>`` scalars to every logger. At the end of
    training: ``layer_weights.png`` (bar chart, :func:`~lightning_w2v.analysis.plots.plot_bar`)
    and ``layer_weights.json`` in ``out_dir`` (default: the trainer's root dir), and, when a
    logger is a WandbLogger, the PNG as ``layer_weights/bar`` plus a native W&B bar chart
    ``layer_weights/chart``. A no-op for models without learned layer weights.

    Add it from the command line: ``--trainer.callbacks+=lightning_w2v.callbacks.LayerWeightsLogger``.
    """

    def __init__(self, out_dir: str | None = None, filename: str = "layer_weights") -> None:
        super().__init__()
        self.out_dir = out_dir
        self.filename = filename
        self.png_path: Path | None = None

    @staticmethod
    def weights(pl_module: pl.LightningModule) -> list[float] | None:
        head = getattr(pl_module, "head", None)
        get = getattr(head, "layer_weights", None)
        weights = get() if callable(get) else None
        return None if weights is None else [float(w) for w in weights.detach().cpu()]

    @staticmethod
    def names(count: int) -> list[str]:
        return ["0 (input)"] + [str(i) for i in range(1, count)]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        weights = self.weights(pl_module)
        if weights is None or trainer.sanity_checking:
            return
        pl_module.log_dict({f"layer_weights/{i}": w for i, w in enumerate(weights)}, on_epoch=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        weights = self.weights(pl_module)
        if weights is None or not trainer.is_global_zero:
            return
        out = Path(self.out_dir or trainer.default_root_dir)
        names = self.names(len(weights))
        title = f"learned layer weights (epoch {trainer.current_epoch}, step {trainer.global_step})"
        self.png_path = plot_bar(weights, names, out / f"{self.filename}.png", title=title, ylabel="softmax weight")
        (out / f"{self.filename}.json").write_text(json.dumps({"layers": names, "weights": weights}, indent=2))
        log.info("layer weights: %s", ", ".join(f"{n}={w:.3f}" for n, w in zip(names, weights)))
        self._log_wandb(trainer, weights, names, title)

    def _log_wandb(self, trainer: pl.Trainer, weights: list[float], names: list[str], title: str) -> None:
        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            import wandb  # slow to import; only W&B runs need it

            logger.log_image(key="layer_weights/bar", images=[str(self.png_path)], caption=[title])
            table = wandb.Table(data=[[n, w] for n, w in zip(names, weights)], columns=["layer", "weight"])
            logger.experiment.log({"layer_weights/chart": wandb.plot.bar(table, "layer", "weight", title=title)})
