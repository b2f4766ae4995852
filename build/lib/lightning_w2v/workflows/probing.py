"""Research workflows on a pre-trained encoder: layer-wise probing and label efficiency.

Both run every fine-tuning through the same LightningCLI and YAML files a user runs by
hand (``lightning_w2v.cli.main(["fit", "--config", ...])``), one run folder each, and read
back the ``test_metrics.json`` that :class:`~lightning_w2v.tasks.finetune.FinetuneModule`
writes after testing its best checkpoint.

- :func:`probe_layers`: a frozen-encoder (FE) linear probe on each hidden state 0..L
  (``model.layer=i``; 0 = Transformer input after the projection, i = layer i), optionally
  also on the learned weighted sum; writes ``probe_layers.csv`` and ``probe_layers.png``.
  Each probe is a complete FE run of ``FinetuneModule`` (the FE of Table 1, early stopping
  and best-checkpoint test included); nothing is shared between probes, so the encoder
  runs once per probe (and per epoch, unless ``FinetuneModule`` caches frozen features).
- :func:`label_efficiency`: fine-tuning with k training notes per class
  (``data.few_shot_k``) per policy and seed; writes ``label_efficiency.csv`` and
  ``label_efficiency.png``.
- :class:`LayerWeightsLogger`: a callback that, for a ``layer: weighted`` model, logs the
  learned softmax layer weights each validation epoch and, at the end of training,
  writes ``layer_weights.png`` / ``.json`` and logs the bar chart to W&B.

Commands::

    lightning-w2v probe-layers --ckpt PRETRAIN.ckpt --nsynth ROOT --task pitch --out DIR
    lightning-w2v label-efficiency --ckpt PRETRAIN.ckpt --nsynth ROOT --task instrument --out DIR
    python -m lightning_w2v.probing probe-layers ...        (the same, without the entry point)
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl

from .errors import ConfigError
from .files import claim_folder
from .files.ownership import only_names

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parent.parent / "conf"
TASKS = ("pitch", "instrument")


# ---------------------------------------------------------------------------- helpers
PROBE_FILE_NAMES = ("layer_*", "probe_layers.*", "label_efficiency*", "FE_k*", "FT1_k*", "FT2_k*")  # 0.1's


def claim_probe_folder(out_dir: str | Path) -> Path:
    """``--out``: new, empty, or a probing folder of ours; its runs go in subfolders."""
    return claim_folder(out_dir, "probes", adopt=only_names(PROBE_FILE_NAMES),
                        hint="pass a new or empty folder as --out").resolve()


def task_config(task: str, config: str | Path | None = None) -> Path:
    """The fine-tuning YAML: ``None``/``"demo"`` -> conf/finetune/demo_{task}.yaml,
    ``"nsynth"`` -> conf/finetune/nsynth_{task}.yaml (GPU, W&B), else a path."""
    if task not in TASKS:
        raise ConfigError(f"--task {task}: choose 'pitch' or 'instrument'")
    if config is None or str(config) in ("demo", "nsynth"):
        return CONF / "finetune" / f"{config or 'demo'}_{task}.yaml"
    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"--config {path}: the fine-tuning config does not exist")
    return path


def policy_config(policy: str) -> Path:
    path = CONF / "finetune" / "policy" / f"{policy.lower()}.yaml"
    if not path.is_file():
        raise ConfigError(f"policy={policy!r}: choose FE, FT1 or FT2")
    return path


def finetune_args(ckpt: str | Path | None, nsynth_root: str | Path, task: str, policy: str, run_dir: Path, *,
                  seed: int = 0, layer: str | int | None = None, few_shot_k: int | None = None,
                  max_epochs: int | None = None, batch_size: int | None = None, subset: int | float | None = None,
                  config: str | Path | None = None, extra_args: Sequence[str] = (),
                  random_preset: str = "tiny") -> list[str]:
    """The ``cli.py fit`` arguments of one fine-tuning run (task file + policy fragment + overrides).

    ``ckpt`` None: an untrained encoder of ``random_preset`` (the random-init ablation).
    """
    if ckpt is None:
        encoder = ["--model.init_args.encoder.source=random", "--model.init_args.encoder.path=null",
                   f"--model.init_args.encoder.preset={random_preset}"]
    else:
        encoder = [f"--model.init_args.encoder.path={Path(ckpt).resolve()}"]
    args = ["fit", "--config", str(task_config(task, config)), "--config", str(policy_config(policy)),
            *encoder, f"--data.init_args.root={Path(nsynth_root).resolve()}",
            f"--trainer.default_root_dir={run_dir}", f"--seed_everything={seed}",
            f"--model.init_args.seed={seed}", f"--data.init_args.seed={seed}", "--test_after_fit=true"]
    if layer is not None:
        args.append(f"--model.init_args.layer={layer}")
    if few_shot_k is not None:
        args.append(f"--data.init_args.few_shot_k={int(few_shot_k)}")
    if max_epochs is not None:
        args.append(f"--trainer.max_epochs={int(max_epochs)}")
    if batch_size is not None:
        args.append(f"--data.init_args.batch_size={int(batch_size)}")
    if subset is not None:
        args.append(f"--data.init_args.subset={subset}")
    return args + list(extra_args)


def run_finetune(args: list[str], run_dir: Path) -> dict[str, Any]:
    """Run one fine-tuning through the CLI; return its test summary plus ``train_examples``."""
    from .cli import main as cli_main

    claim_folder(run_dir, "run", hint="pass a new or empty --out folder")  # ours before command.txt goes in
    (run_dir / "command.txt").write_text("lightning-w2v " + " ".join(args) + "\n")
    cli = cli_main(args)
    summary_file = run_dir / "test_metrics.json"
    if not summary_file.is_file():
        raise RuntimeError(f"{run_dir}: the run wrote no test_metrics.json (is test_after_fit on?)")
    summary = json.loads(summary_file.read_text())
    train = getattr(getattr(cli, "datamodule", None), "datasets", {}).get("train")
    summary["train_examples"] = len(train) if train is not None else None
    summary["run_dir"] = str(run_dir)
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:  # close a W&B run before the next fine-tuning
        wandb.finish()
    return summary


def majority_class_accuracy(run_dir: Path) -> float:
    """Test accuracy of always answering the most frequent test class (from ``confusion_matrix.csv``)."""
    import numpy as np

    file = Path(run_dir) / "confusion_matrix.csv"
    if not file.is_file():
        return float("nan")
    counts = np.loadtxt(file, delimiter=",", ndmin=2).sum(axis=1)  # rows: true classes
    return float(counts.max() / counts.sum()) if counts.sum() else float("nan")


def _metric(summary: dict[str, Any], name: str) -> float:
    value = summary.get("metrics", {}).get(name)
    return float("nan") if value is None else float(value)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------- probing
def probe_layers(
    ckpt: str | Path,
    nsynth_root: str | Path,
    task: str,
    out_dir: str | Path,
    layers: Sequence[int] | None = None,
    max_epochs: int | None = 3,
    batch_size: int | None = None,
    seed: int = 0,
    weighted: bool = False,
    config: str | Path | None = None,
    subset: int | float | None = None,
    extra_args: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """FE linear probe on each hidden state; returns the CSV rows.

    Args:
        ckpt: our pre-training (or fine-tuning) checkpoint.
        nsynth_root: folder with ``nsynth-{train,valid,test}`` (the demo set is written
            there on first use with the demo config).
        task: ``pitch`` or ``instrument``.
        out_dir: run folders ``layer_<i>/``, ``probe_layers.csv`` and ``probe_layers.png``.
        layers: hidden-state indices (default: all, 0..L).
        max_epochs: per probe (``None``: the config's); early stopping still applies.
        batch_size: ``None``: the config's.
        seed: ``seed_everything``, the data selection seed and the recorded seed.
        weighted: also train the learned weighted sum over all layers (``layer=weighted``,
            with :class:`LayerWeightsLogger`), as a reference line and row ``weighted``.
        config: the task YAML (``None``/"demo", "nsynth", or a path); FE comes from
            conf/finetune/policy/fe.yaml.
        subset: ``data.subset`` (per-class count or fraction of every split).
        extra_args: more CLI overrides, e.g. ``["--trainer.limit_train_batches=2"]``.

    CSV columns: task, layer, seed, test_acc,
    test_acc_top5, test_f1_macro, test_chroma_acc (pitch), train_examples, run_dir.
    """
    from .checkpoints.encoders import num_encoder_layers

    out = claim_probe_folder(out_dir)

    num_layers = num_encoder_layers(ckpt)
    todo: list[int | str] = list(range(num_layers + 1) if layers is None else layers)
    for layer in todo:
        if not 0 <= int(layer) <= num_layers:
            raise ConfigError(f"--layers {layer}: the encoder has hidden states 0..{num_layers}")
    if weighted:
        todo.append("weighted")
    rows = []
    for layer in todo:
        run_dir = out / f"layer_{layer}"
        extra = list(extra_args)
        if layer == "weighted":
            extra.append("--trainer.callbacks+=lightning_w2v.callbacks.LayerWeightsLogger")
        args = finetune_args(ckpt, nsynth_root, task, "FE", run_dir, seed=seed, layer=layer, max_epochs=max_epochs,
                             batch_size=batch_size, subset=subset, config=config, extra_args=extra)
        print(f"--- probe layer {layer} -> {run_dir}", flush=True)
        summary = run_finetune(args, run_dir)
        row = {"task": task, "layer": layer, "seed": seed}
        for name in ("acc", "acc_top5", "f1_macro", "chroma_acc"):
            if f"test/{name}" in summary["metrics"]:
                row[f"test_{name}"] = _metric(summary, f"test/{name}")
        row["train_examples"] = summary["train_examples"]
        row["test_majority_acc"] = majority_class_accuracy(run_dir)
        row["run_dir"] = str(run_dir)
        rows.append(row)
    _write_csv(rows, out / "probe_layers.csv")
    plot_probe_layers(rows, out / "probe_layers.png", title=f"FE probe per layer: {task} ({Path(ckpt).name})")
    return rows


def plot_probe_layers(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    from .analysis.plots import plot_xy

    per_layer = [r for r in rows if r["layer"] != "weighted"]
    series = {"per-layer probe": ([int(r["layer"]) for r in per_layer], [float(r["test_acc"]) for r in per_layer])}
    xs = [int(r["layer"]) for r in per_layer] or [0]
    weighted = [r for r in rows if r["layer"] == "weighted"]
    if weighted:
        series["weighted sum of layers"] = ([min(xs), max(xs)], [float(weighted[0]["test_acc"])] * 2)
    majority = float(rows[0].get("test_majority_acc", "nan")) if rows else math.nan
    if math.isfinite(majority):
        series["majority class (chance)"] = ([min(xs), max(xs)], [majority] * 2)
    return plot_xy(series, "hidden state (0 = Transformer input, i = layer i)", "test accuracy", path, title=title)


# ---------------------------------------------------------------------------- label efficiency
def label_efficiency(
    ckpt: str | Path,
    nsynth_root: str | Path,
    task: str,
    ks: Sequence[int] = (1, 2, 5, 10),
    policies: Sequence[str] = ("FE", "FT2"),
    seeds: Sequence[int] = (0,),
    out_dir: str | Path = "label_efficiency",
    max_epochs: int | None = 5,
    batch_size: int | None = None,
    config: str | Path | None = None,
    subset: int | float | None = None,
    extra_args: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Test accuracy against k training notes per class, per policy (mean ± std over seeds).

    Each (policy, k, seed) is one CLI run in ``out_dir/<policy>_k<k>_seed<seed>/`` with
    ``--data.init_args.few_shot_k=k`` and the seed as ``seed_everything`` and as the data
    seed (so each seed also draws a different few-shot set). Validation and test splits
    are untouched. Writes
    ``label_efficiency_runs.csv`` (one row per run), ``label_efficiency.csv`` (aggregated
    over seeds with ``analysis.results.aggregate``: mean, sample std, n) and
    ``label_efficiency.png``. Returns the aggregated rows.
    """
    from .analysis.results import aggregate

    out = claim_probe_folder(out_dir)
    runs, per_run = [], []
    for policy in policies:
        for k in ks:
            for seed in seeds:
                run_dir = out / f"{policy}_k{k}_seed{seed}"
                args = finetune_args(ckpt, nsynth_root, task, policy, run_dir, seed=seed, few_shot_k=k,
                                     max_epochs=max_epochs, batch_size=batch_size, subset=subset, config=config,
                                     extra_args=extra_args)
                print(f"--- {task} / {policy} / k={k} / seed {seed} -> {run_dir}", flush=True)
                summary = run_finetune(args, run_dir)
                summary["k"] = int(k)
                runs.append(summary)
                per_run.append({"task": task, "policy": policy, "k": int(k), "seed": seed,
                                "train_examples": summary["train_examples"],
                                "test_acc": _metric(summary, "test/acc"),
                                "test_f1_macro": _metric(summary, "test/f1_macro"),
                                "test_majority_acc": majority_class_accuracy(run_dir), "run_dir": str(run_dir)})
    _write_csv(per_run, out / "label_efficiency_runs.csv")
    rows = []
    for k in ks:
        for agg in aggregate([r for r in runs if r["k"] == int(k)]):
            acc = agg["metrics"].get("test/acc", {"mean": math.nan, "std": math.nan, "n": 0})
            f1 = agg["metrics"].get("test/f1_macro", {"mean": math.nan, "std": math.nan})
            examples = [r["train_examples"] for r in per_run if r["k"] == int(k) and r["policy"] == agg["policy"]]
            majority = [r["test_majority_acc"] for r in per_run if r["k"] == int(k) and r["policy"] == agg["policy"]]
            rows.append({"task": task, "policy": agg["policy"], "k": int(k), "n": acc["n"],
                         "seeds": ";".join(map(str, agg["seeds"])), "train_examples": examples[0] if examples else None,
                         "test_acc_mean": acc["mean"], "test_acc_std": acc["std"],
                         "test_f1_macro_mean": f1["mean"], "test_f1_macro_std": f1["std"],
                         "test_majority_acc": majority[0] if majority else math.nan})
    rows.sort(key=lambda r: (list(policies).index(r["policy"]), r["k"]))
    _write_csv(rows, out / "label_efficiency.csv")
    plot_label_efficiency(rows, out / "label_efficiency.png", title=f"label efficiency: {task} ({Path(ckpt).name})")
    return rows


def plot_label_efficiency(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    from .analysis.plots import plot_xy

    series = {}
    for policy in dict.fromkeys(r["policy"] for r in rows):
        mine = sorted((r for r in rows if r["policy"] == policy), key=lambda r: int(r["k"]))
        n = max(int(r["n"]) for r in mine)
        series[f"{policy} (n={n} seed{'s' if n > 1 else ''})"] = ([int(r["k"]) for r in mine],
                                                                   [float(r["test_acc_mean"]) for r in mine])
    ks = [int(r["k"]) for r in rows]
    majority = float(rows[0].get("test_majority_acc", "nan")) if rows else math.nan
    if ks and math.isfinite(majority):
        series["majority class (chance)"] = ([min(ks), max(ks)], [majority] * 2)
    return plot_xy(series, "training notes per class (k)", "test accuracy (mean over seeds)", path, title=title,
                   logx=True)


# ---------------------------------------------------------------------------- commands
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="pre-training checkpoint (.ckpt) of this project")
    parser.add_argument("--nsynth", required=True, help="NSynth root (nsynth-{train,valid,test})")
    parser.add_argument("--task", choices=TASKS, default="pitch")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--config", default=None,
                        help="task YAML: demo (default), nsynth, or a path; the policy fragment is added")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--subset", type=_subset, default=None,
                        help="data.subset: notes per class (an integer, e.g. 2) or a fraction of each class (e.g. 0.1)")
    parser.add_argument("--override", action="append", default=[],
                        help="extra CLI override, e.g. --override=--trainer.limit_train_batches=2 (repeatable)")


def _subset(text: str) -> int | float:
    """'2' -> 2 notes per class; '0.1' (or '1.0') -> that fraction of each class."""
    return int(text) if text.strip().isdigit() else float(text)


def probe_layers_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightning-w2v probe-layers",
                                     description="FE linear probe on every hidden state of an encoder")
    _common(parser)
    parser.add_argument("--layers", type=int, nargs="*", default=None, help="hidden states (default: all 0..L)")
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weighted", action="store_true", help="also probe the learned weighted sum")
    args = parser.parse_args(argv)
    rows = probe_layers(args.ckpt, args.nsynth, args.task, args.out, layers=args.layers, max_epochs=args.max_epochs,
                        batch_size=args.batch_size, seed=args.seed, weighted=args.weighted, config=args.config,
                        subset=args.subset, extra_args=args.override)
    for row in rows:
        print(f"  layer {row['layer']}: test acc {row['test_acc']:.3f}")
    print(f"written: {Path(args.out) / 'probe_layers.csv'}, {Path(args.out) / 'probe_layers.png'}")
    return 0


def label_efficiency_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightning-w2v label-efficiency",
                                     description="test accuracy against k training notes per class")
    _common(parser)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--policies", nargs="+", default=["FE", "FT2"], choices=["FE", "FT1", "FT2"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-epochs", type=int, default=5)
    args = parser.parse_args(argv)
    rows = label_efficiency(args.ckpt, args.nsynth, args.task, ks=args.ks, policies=args.policies, seeds=args.seeds,
                            out_dir=args.out, max_epochs=args.max_epochs, batch_size=args.batch_size,
                            config=args.config, subset=args.subset, extra_args=args.override)
    for row in rows:
        print(f"  {row['policy']} k={row['k']}: test acc {row['test_acc_mean']:.3f} ± {row['test_acc_std']:.3f} "
              f"(n={row['n']}, {row['train_examples']} training notes)")
    print(f"written: {Path(args.out) / 'label_efficiency.csv'}, {Path(args.out) / 'label_efficiency.png'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``lightning-w2v probe-layers ARGS`` calls ``main(ARGS)``; ``main(["label-efficiency", ...])``
    (or :func:`label_efficiency_main`)
    runs the other study. ``python -m lightning_w2v.probing {probe-layers,label-efficiency} ...``."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "label-efficiency":
        return label_efficiency_main(argv[1:])
    if argv and argv[0] == "probe-layers":
        argv = argv[1:]
    return probe_layers_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
