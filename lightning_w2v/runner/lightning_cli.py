"""The LightningCLI runner behind ``lightning-w2v fit|validate|test|predict --config ...``.

The front door (:mod:`lightning_w2v.commands`) and the workflows (the demo, the probes) call
:func:`run_cli`; this module imports neither.

Before the trainer starts, :class:`LightningW2VCLI` runs a preflight, so that a run that
cannot succeed stops at once with one clear error, and leaves nothing behind (no W&B run,
no half-made folders):

1. every required value (``???`` in a YAML) is set (before any class is built);
2. ``--ckpt_path`` (or a ``full-state`` ``init_from``) is one of this kind of run's
   checkpoints, with the same architecture, task and policy
   (:mod:`lightning_w2v.checkpoints.resume`); the encoder and ``init_from`` checkpoints were
   already checked when the model was built;
3. the run's folders are ours or new (:mod:`lightning_w2v.files.ownership`), writable, and
   have room for a checkpoint;
4. the data: ``prepare_data()`` and ``setup()`` run here, so a missing root or a corrupt WAV
   is reported before W&B starts (Lightning calls both again, and they skip what is done).

LightningCLI's own habit of replacing the run's model settings with those stored in the
``--ckpt_path`` checkpoint is switched off: the config decides, and the checkpoint must fit.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from ..callbacks import LinearProbe, WandbLogger
from ..checkpoints import WANDB_RUN_ID_KEY, read_checkpoint
from ..checkpoints.resume import check_fits
from ..data.demo_modules import ensure_demo_nsynth
from ..encoders import SOURCES
from ..errors import ConfigError, project_error
from ..files import check_writable, claim_folder
from ..files.ownership import only_names
from .configs import COMPOSE_KEY, expand_config_args
from .terminal import LogLines, interactive, quiet_known_warnings

log = logging.getLogger(__name__)
MISSING = "???"
STAGES = {"fit": "fit", "validate": "validate", "test": "test", "predict": "predict"}
# What a run folder of 0.1 (before folder markers) held: such a folder is adopted, not refused, when
# everything in it has one of these names and it holds something only a run writes.
RUN_FOLDER_NAMES = ("checkpoints", "logs", "lightning_logs", "wandb", "config.yaml", "command.txt",
                    "test_metrics.json", "confusion_matrix.*", "hpc_ckpt_*.ckpt", "layer_weights.*",
                    "health_events.jsonl", "collapse.ckpt")
RUN_FOLDER_EVIDENCE = ("checkpoints", "logs", "lightning_logs", "test_metrics.json", "hpc_ckpt_*.ckpt")


def legacy_run_folder(folder: Path) -> bool:
    """A run folder written by 0.1: only a run's names, and at least one thing only a run writes."""
    return only_names(RUN_FOLDER_NAMES)(folder) and any(any(folder.glob(p)) for p in RUN_FOLDER_EVIDENCE)
RUN_FOLDER_HINT = "choose a new or empty folder with --trainer.default_root_dir"


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


def missing_values(config: Any, prefix: str = "") -> Iterator[str]:
    """Dotted keys whose value is still ``???`` (required, set by nobody)."""
    items = config.items() if hasattr(config, "items") else []
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, str) and value.strip() == MISSING:
            yield name
        elif hasattr(value, "items"):
            yield from missing_values(value, f"{name}.")


def missing_encoder_paths(config: Any) -> list[str]:
    """``model.init_args.<spec>.path`` for each encoder spec of the model whose source needs a path and has none."""
    model_args = _init_args(config, "model")
    missing = []
    for name in ("encoder", "init_from"):
        spec = model_args.get(name) if model_args is not None else None
        if spec is None or not hasattr(spec, "get") or spec.get("source") not in SOURCES:
            continue  # no spec, or an unknown source (the spec itself names the choices)
        if SOURCES[spec["source"]].needs_path and not spec.get("path"):
            missing.append(f"model.init_args.{name}.path")
    return missing


def derive_model_task(config: Any) -> None:
    """A run's task is written once, as ``data.init_args.task``: a model that takes a task (fine-tuning)
    gets the data's. A model task set as well must agree (ConfigError naming both otherwise). A data module
    that describes its task (the manifest's: its kind and class names) hands the model that description."""
    model_args = _init_args(config, "model")
    data_args = _init_args(config, "data")
    if model_args is None or data_args is None or "task" not in model_args or data_args.get("task") is None:
        return
    if model_args.get("task") is not None and model_args["task"] != data_args["task"]:
        raise ConfigError(f"model.init_args.task={model_args['task']!r} but data.init_args.task="
                          f"{data_args['task']!r}: the task is the data's; set data.init_args.task only")
    model_args["task"] = data_args["task"]
    describe = getattr(_data_class(config), "describe_task", None)
    if describe is not None and "task_definition" in model_args:  # the manifest task: its kind and names
        model_args["task_definition"] = describe(data_args)


def _data_class(config: Any) -> type | None:
    """The data module's class a config names (None if it cannot be imported: jsonargparse reports that)."""
    import importlib

    path = config.get("data", {}).get("class_path") if hasattr(config, "get") else None
    module, _, name = str(path or "").rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _init_args(config: Any, name: str):
    section = config.get(name) if hasattr(config, "get") else None
    return section.get("init_args") if section is not None and hasattr(section, "get") else None


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
    if ckpt_path == "best":
        return None
    return Path(ckpt_path)


def checkpoint_bytes(module: pl.LightningModule) -> int:
    """Rough size of one checkpoint: fp32 weights and buffers, Adam's two moments per trainable weight."""
    weights = sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return 4 * weights + 8 * trainable + (1 << 20)


class LightningW2VCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="After fit, evaluate the best checkpoint (by the checkpoint callback) "
                                 "on the test split.")
        # Linear probes during pre-training, as a top-level `probe` section (--probe.notes /data):
        # LightningCLI adds the callback to every run; without notes it does nothing.
        parser.add_lightning_class_args(LinearProbe, "probe")
        parser.add_argument(f"--{COMPOSE_KEY}", type=Optional[list[str]], default=None,
                            help="Config fragments a config file builds on; lightning-w2v puts them before it "
                                 "(see lightning_w2v.runner.configs). Informational once parsed.")

    def _parse_ckpt_path(self) -> None:
        """Keep the run's own model settings; :meth:`_check_checkpoint` makes the checkpoint fit them."""

    def instantiate_classes(self) -> None:
        """As LightningCLI's, but a constructor's own error surfaces as itself, not wrapped by jsonargparse."""
        try:
            super().instantiate_classes()
        except Exception as error:
            ours = project_error(error)
            if ours is None:
                raise
            raise ours from None

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        config[COMPOSE_KEY] = None  # already expanded: the saved config.yaml is complete without it
        missing = sorted([*missing_values(config), *missing_encoder_paths(config)])
        if missing:
            raise ConfigError("required value(s) not set: " + ", ".join(f"set --{key}" for key in missing))
        derive_model_task(config)

    # ------------------------------------------------------------------ preflight
    def before_fit(self) -> None:
        self._full_state_init()
        self._preflight("fit")

    def before_validate(self) -> None:
        self._preflight("validate")

    def before_test(self) -> None:
        self._preflight("test")

    def before_predict(self) -> None:
        self._preflight("predict")

    def _preflight(self, stage: str) -> None:
        resume = self._check_checkpoint()
        if self.trainer.global_rank == 0:
            self._check_output_folders(stage, check_only=True)
        if self.trainer.local_rank == 0 and self.datamodule is not None:
            self.datamodule.prepare_data()
            self.datamodule.setup(STAGES[stage])
            if stage == "fit" and self.config_init[self.subcommand].get("test_after_fit"):
                self.datamodule.setup("test")  # the test split too: a bad note there would end the run late
        if self.trainer.global_rank == 0:
            for callback in self.trainer.callbacks:
                if isinstance(callback, LinearProbe):
                    if callback.enabled and callback.demo_notes and stage == "fit":
                        ensure_demo_nsynth(callback.notes)  # the demo configs' notes, written on first use
                    callback.prepare(self.model, stage)  # its note set, checked before W&B starts
        check_model_fits_data = getattr(self.model, "check_data", None)
        if callable(check_model_fits_data):
            check_model_fits_data(self.datamodule)
        if self.trainer.global_rank == 0:
            self._check_output_folders(stage, check_only=False)  # now create and mark them
        if resume is not None:
            self._continue_wandb_run(resume)

    def _full_state_init(self) -> None:
        """``model.init_mode=full-state``: resume everything from ``model.init_from.path``."""
        hparams = getattr(self.model, "hparams", {})
        spec = hparams.get("init_from")
        if hparams.get("init_mode") == "full-state" and spec is not None:
            config = self.config_init[self.subcommand]
            if config.get("ckpt_path") is None:
                config["ckpt_path"] = spec.path if hasattr(spec, "path") else spec["path"]
                self._ckpt_key = "--model.init_args.init_from.path"

    def _check_checkpoint(self):
        """The ``--ckpt_path`` checkpoint, read once and checked against the built model (None if none)."""
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        path = _checkpoint_to_resume(self.trainer, ckpt_path)
        if path is None:
            return None
        kind = getattr(self.model, "checkpoint_kind", None)
        checkpoint = read_checkpoint(path, getattr(self, "_ckpt_key", "--ckpt_path"))
        if kind is not None:
            changed = check_fits(checkpoint, kind, self.model.architecture, dict(self.model.hparams),
                                 getattr(self, "_ckpt_key", "--ckpt_path"))
            if changed:
                rank_zero_warn(f"resuming from {path} with changed settings ({'; '.join(changed)}, "
                               "checkpoint -> run)")
        return checkpoint

    def _owned_folders(self) -> list[Path]:
        """Folders this run writes fixed names into (its root, checkpoint and results folders),
        outermost first. Loggers write into fresh versioned subfolders (``version_N``, W&B's
        ``run-<id>``), so their folders only need to be writable."""
        folders = [Path(self.trainer.default_root_dir)]
        for callback in self.trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath:
                folders.append(Path(callback.dirpath))
        results_dir = getattr(self.model, "hparams", {}).get("results_dir")
        if results_dir:
            folders.append(Path(results_dir))
        outermost: list[Path] = []
        for folder in sorted({f.expanduser().absolute() for f in folders}, key=lambda p: len(p.parts)):
            if not any(folder == o or o in folder.parents for o in outermost):
                outermost.append(folder)
        return outermost

    def _check_output_folders(self, stage: str, check_only: bool) -> None:
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.keep_files_under(self.trainer.default_root_dir)
        if check_only:
            needs_checkpoint = stage == "fit" and bool(self.trainer.checkpoint_callbacks)
            size = checkpoint_bytes(self.model) if needs_checkpoint else 0
            for folder in self._owned_folders():
                check_writable(folder, size, "run", RUN_FOLDER_HINT)
            for logger in self.trainer.loggers:
                if getattr(logger, "save_dir", None):
                    check_writable(logger.save_dir, 0, "log", "set the logger's save_dir to a writable folder")
        for folder in self._owned_folders():
            claim_folder(folder, "run", adopt=legacy_run_folder, hint=RUN_FOLDER_HINT,
                         check_only=check_only)

    def _continue_wandb_run(self, checkpoint) -> None:
        """Continue the same W&B run when resuming (``--ckpt_path last``, or a SLURM requeue)."""
        run_id = checkpoint.wandb_run_id
        if not run_id:
            return
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                log.info("resuming W&B run %s from %s", run_id, checkpoint.path)
                logger.resume_run(run_id)

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit"):
            return
        callback = self.trainer.checkpoint_callback
        ckpt = "best" if callback is not None and callback.best_model_path else None
        if ckpt is None and callback is not None:
            print("no best checkpoint (the run ended before its first validation): testing the final weights",
                  flush=True)
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt, verbose=False)
        if self.trainer.is_global_zero and results:
            shown = "  ".join(f"{k} {100 * v:.1f}%" if k != "test/loss" else f"{k} {v:.3f}"
                              for k, v in sorted(results[0].items()))
            print(f"test ({'best checkpoint' if ckpt else 'final weights'}): {shown}", flush=True)


def run_cli(args: Sequence[str] | None = None, run: bool = True) -> LightningW2VCLI:
    """Build (and by default run) the CLI; a user's error propagates as itself (the front door turns
    it into one ``error:`` line).

    ``args``: the command line without the program name, e.g. ``["fit", "--config", "pretrain/demo"]``;
    ``None`` reads ``sys.argv``. Named configs and ``compose:`` fragments are expanded first
    (:mod:`.configs`), and the known harmless warnings are filtered (:mod:`.terminal`), among them
    LightningCLI's about ``args`` next to a non-empty ``sys.argv``: the arguments are always handed over.
    """
    args = expand_config_args(sys.argv[1:] if args is None else args)
    quiet_known_warnings()
    return LightningW2VCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=ConfigToLoggerCallback,
        save_config_kwargs={"overwrite": True},
        # Progress bars on a terminal; in a log file, one line every 50 steps and per validation.
        trainer_defaults={"enable_progress_bar": interactive(), "callbacks": [] if interactive() else [LogLines()]},
        parser_kwargs={"parser_mode": "omegaconf+"},  # ${...} resolved after all overrides
        args=list(args),
        run=run,
    )
