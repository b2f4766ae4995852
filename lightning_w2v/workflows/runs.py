"""One fine-tuning run as a user would type it: the command line, the run, its test summary.

The workflows (the demo, layer probes, label efficiency) run every fine-tuning through the
same LightningCLI and YAML files a user runs by hand, one run folder each, and read back the
``test_metrics.json`` that :class:`~lightning_w2v.tasks.FinetuneModule` writes after testing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..downstream import task_spec
from ..encoders import SOURCES
from ..errors import ConfigError
from ..files import atomic_write_csv, claim_folder
from ..runner import run_cli
from ..runner.configs import resolve_config
from ..tasks.policies import get_policy
from ..vocabulary import MANIFEST_TASK


def task_config(task: str, config: str | Path | None = None) -> Path:
    """The fine-tuning YAML of ``task``: ``None``/``"demo"`` -> its demo config (e.g.
    conf/finetune/demo_pitch.yaml), ``"full"`` (or ``"nsynth"``) -> its config on the real data set
    (GPU, W&B; e.g. conf/finetune/nsynth_pitch.yaml), else a packaged name or a path."""
    if task == MANIFEST_TASK:  # its spec comes from the manifest itself; one config serves every manifest
        return resolve_config("finetune/manifest" if config in (None, "demo", "full") else str(config))
    spec = task_spec(task, "--task")
    if config is None or str(config) in ("demo", "full", "nsynth"):
        name = spec.demo_config if config in (None, "demo") else spec.full_config
        if not name:
            raise ConfigError(f"--task {task} has no packaged {config or 'demo'} config; pass --config with one")
        return resolve_config(name)
    return resolve_config(str(config))


def policy_config(policy: str) -> Path:
    """The YAML fragment that names ``policy`` (``conf/finetune/policy/<policy>.yaml``)."""
    get_policy(policy)  # a ConfigError naming the choices for an unknown one
    return resolve_config(f"finetune/policy/{policy.lower()}")


def finetune_args(ckpt: str | Path | None, data_root: str | Path, task: str, policy: str, run_dir: Path, *,
                  seed: int = 0, layer: str | int | None = None, budget: float | None = None,
                  max_epochs: int | None = None, batch_size: int | None = None, subset: int | float | None = None,
                  config: str | Path | None = None, extra_args: Sequence[str] = (),
                  random_preset: str = "tiny", source: str = "checkpoint") -> list[str]:
    """The ``lightning-w2v fit`` arguments of one fine-tuning run (task file + policy fragment + overrides).

    ``ckpt`` None: an untrained encoder of ``random_preset`` (the random-init ablation), or the
    encoder ``source`` names when it needs no path (``pesto``, ``logmel``).
    ``source``: what ``ckpt`` is (an ``EncoderSpec`` source: our checkpoint, a torchaudio bundle
    name, a transformers folder or hub id, a fairseq .pt, a CREPE model...).
    ``budget``: the task's label budget (its spec's ``budget_arg``: k notes per class for NSynth,
    minutes of labelled audio for transcription).
    """
    if ckpt is None and SOURCES[source].needs_path:
        source = "random"  # nothing to load: the untrained encoder of random_preset
    if ckpt is None:
        encoder = [f"--model.init_args.encoder.source={source}", "--model.init_args.encoder.path=null"]
        if SOURCES[source].takes_preset:
            encoder.append(f"--model.init_args.encoder.preset={random_preset}")
    else:
        local = Path(str(ckpt)).expanduser()
        # files and existing folders as absolute paths; bundle names, hub ids and model names as they are
        path = local.resolve() if SOURCES[source].path_is_file or local.exists() else ckpt
        encoder = [f"--model.init_args.encoder.source={source}", f"--model.init_args.encoder.path={path}"]
    args = ["fit", "--config", str(task_config(task, config)), "--config", str(policy_config(policy)),
            *encoder, f"--data.init_args.{'manifest' if task == MANIFEST_TASK else 'root'}={Path(data_root).resolve()}",
            f"--trainer.default_root_dir={run_dir}", f"--seed_everything={seed}",
            f"--model.init_args.seed={seed}", f"--data.init_args.seed={seed}", "--test_after_fit=true"]
    if layer is not None:
        args.append(f"--model.init_args.layer={layer}")
    if budget is not None:
        value = int(budget) if float(budget).is_integer() else budget
        args.append(f"--data.init_args.{task_spec(task).budget_arg}={value}")
    if max_epochs is not None:
        args.append(f"--trainer.max_epochs={int(max_epochs)}")
    if batch_size is not None:
        args.append(f"--data.init_args.batch_size={int(batch_size)}")
    if subset is not None:
        args.append(f"--data.init_args.subset={subset}")
    return args + list(extra_args)


def run_finetune(args: list[str], run_dir: Path) -> dict[str, Any]:
    """Run one fine-tuning through the CLI; return its test summary plus ``train_examples``."""
    claim_folder(run_dir, "run", hint="pass a new or empty --out folder")  # ours before command.txt goes in
    (run_dir / "command.txt").write_text("lightning-w2v " + " ".join(args) + "\n")
    cli = run_cli(args)
    summary_file = run_dir / "test_metrics.json"
    if not summary_file.is_file():
        raise RuntimeError(f"{run_dir}: the run wrote no test_metrics.json (is test_after_fit on?)")
    summary = json.loads(summary_file.read_text())
    train = getattr(getattr(cli, "datamodule", None), "datasets", {}).get("train")
    summary["train_examples"] = len(train) if train is not None else None
    summary["run_dir"] = str(run_dir)
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:  # close a W&B run before the next fine-tuning
        wandb.finish()
    return summary


def majority_class_accuracy(run_dir: Path) -> float:
    """Test accuracy of always answering the most frequent test class (from ``confusion_matrix.csv``)."""
    file = Path(run_dir) / "confusion_matrix.csv"
    if not file.is_file():
        return float("nan")
    counts = np.loadtxt(file, delimiter=",", ndmin=2).sum(axis=1)  # rows: true classes
    return float(counts.max() / counts.sum()) if counts.sum() else float("nan")


def metric(summary: dict[str, Any], name: str) -> float:
    value = summary.get("metrics", {}).get(name)
    return float("nan") if value is None else float(value)


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows of dicts as CSV (columns in order of first appearance), written atomically."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return atomic_write_csv(path, columns, ([row.get(c, "") for c in columns] for row in rows))
