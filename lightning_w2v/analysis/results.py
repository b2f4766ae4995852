"""Table 1 of Ragano et al. (2023) as data, and collection of our fine-tuning results.

A fine-tuning run writes ``test_metrics.json``::

    {"task": "pitch" | "instrument", "policy": "FE" | "FT1" | "FT2",
     "encoder": "music" | "speech" | "random" | <the model's label>, "seed": 0,
     "metrics": {"test/acc": 0.76, "test/acc_top5": ..., "test/f1_macro": ...,
                 "test/chroma_acc": ... (pitch only)}}

Metric values are fractions in [0, 1]; :func:`format_markdown` prints them in %.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..files import atomic_write_csv
from ..vocabulary import NSYNTH_TASKS, TRANSCRIPTION_TASKS
from ..vocabulary import POLICIES as POLICY_ORDER
from ..vocabulary import TASKS as ALL_TASKS

__all__ = [
    "PAPER_TABLE1",
    "paper_accuracy",
    "collect_runs",
    "aggregate",
    "format_markdown",
    "write_csv",
]

ENCODER_ORDER = ("music", "speech", "random")
MISSING = "—"

# Table 1 (accuracy %, NSynth test). None = blank cell in the paper. The paper's three
# "ours" rows, and the baselines we can run ourselves, carry encoder/policy so that our runs can be
# matched to them: CREPE is HEAR's frozen torchcrepe "full" embedding (FE), our CREPE full FE row.
PAPER_TABLE1: list[dict[str, Any]] = [
    {"model": "w2v2 music FE", "ours": True, "encoder": "music", "policy": "FE", "pitch": 76.0,
     "instrument": 64.0, "pretraining_data": "Music, ≈ 65 hours", "source": "paper"},
    {"model": "w2v2 music FT1", "ours": True, "encoder": "music", "policy": "FT1", "pitch": 82.0,
     "instrument": 70.0, "pretraining_data": "Music, ≈ 65 hours", "source": "paper"},
    {"model": "w2v2 music FT2", "ours": True, "encoder": "music", "policy": "FT2", "pitch": 90.0,
     "instrument": 75.0, "pretraining_data": "Music, ≈ 65 hours", "source": "paper"},
    {"model": "CREPE", "encoder": "CREPE full", "family": "CREPE", "policy": "FE", "pitch": 90.0,
     "instrument": None, "pretraining_data": None, "source": "[26] via HEAR [15]"},
    {"model": "SF NFNet-50", "encoder": None, "policy": None, "pitch": 88.0,
     "instrument": 78.2, "pretraining_data": "Audio, ≈ 5800 hours", "source": "Wang et al. [16]"},
    {"model": "w2v2 speech FE (HEAR)", "encoder": None, "policy": None, "pitch": 65.0,
     "instrument": None, "pretraining_data": "Speech, ≈ 960 hours", "source": "HEAR [15]"},
    {"model": "w2v2 speech FE (Wang et al.)", "encoder": None, "policy": None, "pitch": 35.0,
     "instrument": 40.2, "pretraining_data": "Speech, ≈ 960 hours",
     "source": "Wang et al. [16]"},
    {"model": "MuLaP", "encoder": None, "policy": None, "pitch": None,
     "instrument": 71.7, "pretraining_data": None, "source": "[6]"},
    {"model": "CTE", "encoder": None, "policy": None, "pitch": None,
     "instrument": 70.0, "pretraining_data": "Music, ≈ 562 hours", "source": "[27]"},
]


def paper_accuracy(encoder: str, policy: str, task: str) -> float | None:
    """The paper's accuracy (%) for this very model and policy (music FE/FT1/FT2, CREPE full FE), else None."""
    for r in PAPER_TABLE1:
        if r["encoder"] == encoder and r["policy"] == policy:
            return r.get(task)  # Table 1 is NSynth's: None for any other task
    return None


def paper_cell(encoder: str, policy: str, task: str) -> str:
    """The paper's number beside one of our rows: the same model's, else that of another size of the same
    model, named (e.g. ``90.0 (CREPE full)`` beside CREPE tiny), else a blank."""
    exact = paper_accuracy(encoder, policy, task)
    if exact is not None:
        return _fmt_paper(exact)
    for r in PAPER_TABLE1:
        if r.get("family") and encoder.startswith(r["family"]) and r["policy"] == policy and r[task] is not None:
            return f"{_fmt_paper(r[task])} ({r['encoder']})"
    return MISSING


def _validate(d: Any, path: Path) -> dict[str, Any] | None:
    problems = []
    if not isinstance(d, dict):
        problems.append("not a JSON object")
    else:
        if d.get("task") not in ALL_TASKS:
            problems.append(f"task must be one of {ALL_TASKS}, got {d.get('task')!r}")
        for key in ("policy", "encoder"):
            if not isinstance(d.get(key), str):
                problems.append(f"missing string field {key!r}")
        if not isinstance(d.get("seed"), int):
            problems.append("missing integer field 'seed'")
        if not isinstance(d.get("metrics"), dict):
            problems.append("missing object field 'metrics'")
    if problems:
        warnings.warn(f"skipping {path}: " + "; ".join(problems), stacklevel=3)
        return None
    run = dict(d)
    run["metrics"] = {k: float(v) for k, v in d["metrics"].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)}
    run["path"] = str(path)
    return run


def collect_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Load every ``test_metrics.json`` under the given dirs (recursively) or files.

    Malformed or unreadable files are skipped with a warning; a file reached twice (e.g.
    via a dir and its parent) is loaded once. Each run is the JSON object plus ``path``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("test_metrics.json")))
        elif p.is_file():
            files.append(p)
        else:
            warnings.warn(f"{p} does not exist; ignored", stacklevel=2)
    runs, seen = [], set()
    for f in files:
        key = f.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            warnings.warn(f"skipping {f}: {e}", stacklevel=2)
            continue
        run = _validate(data, f)
        if run is not None:
            runs.append(run)
    return runs


def model_name(encoder: str) -> str:
    """A row's model: the paper's ``w2v2 music`` / ``w2v2 speech`` / ``w2v2 random``, else the
    encoder's own label (e.g. ``MERT-v1-95M``, ``hubert_base``)."""
    return f"w2v2 {encoder}" if encoder in ENCODER_ORDER else encoder


def _order_key(encoder: str, policy: str) -> tuple:
    e = ENCODER_ORDER.index(encoder) if encoder in ENCODER_ORDER else len(ENCODER_ORDER)
    p = POLICY_ORDER.index(policy) if policy in POLICY_ORDER else len(POLICY_ORDER)
    return (e, encoder, p, policy)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def aggregate(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group runs by (encoder, policy, task) and summarise each metric across seeds.

    Returns rows ``{"encoder", "policy", "task", "n", "seeds": [...],
    "metrics": {name: {"mean", "std", "n"}}}`` with the sample std (ddof=1; 0 when n=1).
    Per-metric ``n`` can be below the row's ``n`` when some runs lack that metric.
    Sorted: music, speech, random, then other encoders; FE, FT1, FT2; pitch, instrument.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["encoder"], r["policy"], r["task"]), []).append(r)
    rows = []
    for (enc, pol, task), rs in groups.items():
        seeds = [r["seed"] for r in rs]
        if len(set(seeds)) < len(seeds):
            warnings.warn(f"duplicate seeds for {enc}/{pol}/{task}: {seeds}", stacklevel=2)
        names = sorted({k for r in rs for k in r["metrics"]})
        metrics = {}
        for name in names:
            vals = [r["metrics"][name] for r in rs if name in r["metrics"]]
            mean, std = _mean_std(vals)
            metrics[name] = {"mean": mean, "std": std, "n": len(vals)}
        rows.append({"encoder": enc, "policy": pol, "task": task, "n": len(rs),
                     "seeds": sorted(seeds), "metrics": metrics})
    rows.sort(key=lambda r: (*_order_key(r["encoder"], r["policy"]), ALL_TASKS.index(r["task"])))
    return rows


def _fmt_ours(row: dict[str, Any] | None, metric: str) -> str:
    if row is None or metric not in row["metrics"]:
        return MISSING
    m = row["metrics"][metric]
    if m["n"] == 1:
        return f"{100 * m['mean']:.1f}"  # one run: no spread to show
    return f"{100 * m['mean']:.1f} ± {100 * m['std']:.1f} (n={m['n']})"


def _fmt_paper(v: float | None) -> str:
    return MISSING if v is None else f"{v:.1f}"


def format_markdown(
    rows: Sequence[dict[str, Any]], include_paper: bool = True, metric: str = "test/acc"
) -> str:
    """Markdown table of ``aggregate`` rows, tasks as columns, values in %.

    With ``include_paper`` (only meaningful for ``metric="test/acc"``), each of our rows
    gets the paper's number beside it, the paper's FE/FT1/FT2 rows are always shown, and
    the paper's baselines follow in a second table. Missing cells are "—".
    """
    rows = [r for r in rows if r["task"] in NSYNTH_TASKS]
    index = {(r["encoder"], r["policy"], r["task"]): r for r in rows}
    pairs = {(r["encoder"], r["policy"]) for r in rows}
    show_paper = include_paper and metric == "test/acc"
    if show_paper:
        pairs |= {(r["encoder"], r["policy"]) for r in PAPER_TABLE1 if r.get("ours")}
    pairs_sorted = sorted(pairs, key=lambda p: _order_key(*p))

    title = "accuracy (%)" if metric == "test/acc" else f"{metric} (%)"
    lines = [f"NSynth test {title}: ours = one run, or mean ± sample std over seeds (n = runs)", ""]
    if show_paper:
        lines += ["| model | pitch (ours) | pitch (paper) | instrument (ours) "
                  "| instrument (paper) |", "|---|---|---|---|---|"]
    else:
        lines += ["| model | pitch | instrument |", "|---|---|---|"]
    for enc, pol in pairs_sorted:
        cells = [f"{model_name(enc)} {pol}"]
        for task in NSYNTH_TASKS:
            cells.append(_fmt_ours(index.get((enc, pol, task)), metric))
            if show_paper:
                cells.append(paper_cell(enc, pol, task))
        lines.append("| " + " | ".join(cells) + " |")
    if show_paper:
        lines += ["", "Paper baselines (Table 1, accuracy %):", "",
                  "| model | pitch | instrument | pre-training data |", "|---|---|---|---|"]
        for r in PAPER_TABLE1:
            if not r.get("ours"):
                data = r["pretraining_data"] or MISSING
                lines.append(f"| {r['model']} | {_fmt_paper(r['pitch'])} | "
                             f"{_fmt_paper(r['instrument'])} | {data} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Flat CSV of ``aggregate`` rows: one line per (encoder, policy, task).

    Columns: encoder, policy, task, n, seeds (";"-joined), paper_acc_pct, then
    ``<metric>_mean``, ``<metric>_std``, ``<metric>_n`` for every metric seen (fractions, rounded
    to 4 decimals: a hundredth of a percentage point; the std is empty for a single run).
    """
    names = sorted({k for r in rows for k in r["metrics"]})
    header = ["encoder", "policy", "task", "n", "seeds", "paper_acc_pct"]
    header += [f"{k}_{s}" for k in names for s in ("mean", "std", "n")]
    lines = []
    for r in rows:
        paper = paper_accuracy(r["encoder"], r["policy"], r["task"])
        line = [r["encoder"], r["policy"], r["task"], r["n"],
                ";".join(str(s) for s in r["seeds"]), "" if paper is None else paper]
        for k in names:
            m = r["metrics"].get(k)
            if m is None:
                line += ["", "", 0]
            else:  # one run has no spread: its std is left empty, not 0
                line += [round(m["mean"], 4), round(m["std"], 4) if m["n"] > 1 else "", m["n"]]
        lines.append(line)
    return atomic_write_csv(path, header, lines)


# The transcription table's columns: (task, metric, header)
TRANSCRIPTION_COLUMNS = (
    ("musicnet_transcription", "test/frame_ap", "MusicNet frame AP"),
    ("musicnet_transcription", "test/frame_f1", "MusicNet frame F1"),
    ("musicnet_transcription", "test/note_f1", "MusicNet note F1"),
    ("musicnet_transcription", "test/instrument_map", "MusicNet instrument mAP"),
    ("maestro_transcription", "test/frame_f1", "MAESTRO frame F1"),
    ("maestro_transcription", "test/note_f1", "MAESTRO note F1"),
    ("maestro_transcription", "test/note_with_offset_f1", "MAESTRO note-with-offset F1"),
)


def format_transcription(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the transcription runs among ``aggregate`` rows (values in %), or "" if none.

    Published numbers for reference (REFERENCE.md section 7), none of them a frozen-encoder probe:
    supervised MusicNet (MusicNetEM test set) note F1 / frame F1: Hawthorne 2019 82.0 / 69.1, MT3 72.8
    / 68.4; HEAR MAESTRO 5h onset F-measure: wav2vec2 3.3, torchcrepe 40.1, best 46.0.
    """
    rows = [r for r in rows if r["task"] in TRANSCRIPTION_TASKS]
    if not rows:
        return ""
    index = {(r["encoder"], r["policy"], r["task"]): r for r in rows}
    pairs = sorted({(r["encoder"], r["policy"]) for r in rows}, key=lambda p: _order_key(*p))
    columns = [c for c in TRANSCRIPTION_COLUMNS if c[0] in {r["task"] for r in rows}]  # the data sets run
    lines = ["Transcription, test split (%): ours = one run, or mean ± sample std over seeds (n = runs)", "",
             "| model | " + " | ".join(header for _, _, header in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for encoder, policy in pairs:
        cells = [_fmt_ours(index.get((encoder, policy, task)), metric) for task, metric, _ in columns]
        lines.append(f"| {model_name(encoder)} {policy} | " + " | ".join(cells) + " |")
    lines += ["", "For reference (supervised systems, not probes): MusicNet note F1 / frame F1 82.0 / 69.1 "
              "(Hawthorne 2019), 72.8 / 68.4 (MT3); HEAR MAESTRO 5h note onset F1: wav2vec2 3.3, torchcrepe "
              "40.1, best 46.0."]
    return "\n".join(lines) + "\n"
