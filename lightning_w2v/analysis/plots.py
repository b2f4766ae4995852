"""Figures for the analyses: co-occurrence heatmaps (Figs. 1-2), PWCCA per layer (Fig. 3),
confusion matrices, bar charts and generic line plots.

Every function writes a PNG and a vector PDF beside it (parent folders are created) and
returns the PNG's path, in one style sized for a paper (:data:`STYLE`). Figures
are built with the object-oriented ``matplotlib.figure.Figure`` API and rendered by Agg,
so nothing is registered with pyplot (no leaked figures, no display needed). The Agg
backend is also selected at import, but only when pyplot has not been imported yet, so
importing this module inside a notebook does not break its inline backend.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..data.formats import pitch_name  # noqa: E402

__all__ = [
    "plot_cooccurrence_heatmap",
    "plot_pwcca_curves",
    "plot_confusion_matrix",
    "plot_bar",
    "plot_grouped_bars",
    "plot_probe_curves",
    "plot_xy",
]


# One style for every figure: sized for a paper (3.5 in one column, 7 in two), 8-9 pt text,
# a PNG at 200 dpi and a vector PDF beside it.
SINGLE_COLUMN, DOUBLE_COLUMN = 3.5, 7.0  # inches
STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
         "legend.fontsize": 7, "axes.spines.top": False, "axes.spines.right": False, "savefig.bbox": "tight"}
VECTOR_FORMAT = "pdf"


def _subplots(figsize: tuple[float, float]) -> tuple[Figure, "matplotlib.axes.Axes"]:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=figsize)
        return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Figure, path: str | Path, dpi: int = 200) -> Path:
    """Write ``path`` (PNG) and the same figure as a vector PDF beside it; returns the PNG's path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig.tight_layout()
        fig.savefig(p, dpi=dpi, format="png")
        fig.savefig(p.with_suffix(f".{VECTOR_FORMAT}"), format=VECTOR_FORMAT)
    return p


def _finish_lines(fig: Figure, ax, xlabel: str, ylabel: str, title: str, legend: bool, path: str | Path) -> Path:
    """Labels, title, light grid and (if there are lines) a legend; then save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend()
    return _save(fig, path)


def _tick_step(n: int, max_ticks: int = 40) -> int:
    return max(1, int(np.ceil(n / max_ticks)))


def plot_cooccurrence_heatmap(
    matrix: np.ndarray,
    label_names: Sequence[str] | None,
    title: str,
    path: str | Path,
    xlabel: str = "codeword (sorted by its most frequent label)",
    ylabel: str = "label",
    colorbar_label: str = "P(label | codeword)",
    log_scale: bool = False,
) -> Path:
    """Heatmap of a (codes, labels) co-occurrence matrix, codes on x and labels on y (Figs. 1-2).

    Sort/normalise beforehand (``codebooks.sort_for_display``, ``codebooks.normalise``).
    ``log_scale`` plots log1p of the values, useful for raw counts. Two columns wide; the
    height follows the number of labels so that every label stays readable.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D (codes, labels); got shape {m.shape}")
    data = np.log1p(np.clip(m, 0, None)) if log_scale else m
    n_codes, n_labels = m.shape
    fig, ax = _subplots((DOUBLE_COLUMN, min(7.0, max(2.4, 0.11 * n_labels + 1.2))))
    im = ax.imshow(data.T, aspect="auto", interpolation="nearest", cmap="viridis", origin="lower")
    fig.colorbar(im, ax=ax, label=f"log(1 + {colorbar_label})" if log_scale else colorbar_label,
                 fraction=0.035, pad=0.02)
    if label_names is not None:
        if len(label_names) != n_labels:
            raise ValueError(f"{len(label_names)} label names for {n_labels} label columns")
        step = _tick_step(n_labels, max_ticks=50)
        idx = np.arange(0, n_labels, step)
        ax.set_yticks(idx)
        ax.set_yticklabels([str(label_names[i]) for i in idx], fontsize=6 if n_labels > 30 else 7)
    ax.set_xlabel(f"{xlabel} ({n_codes} used)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def plot_pwcca_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str = "Similarity of each layer to the CNN output",
    ylabel: str = "PWCCA with the CNN output",
) -> Path:
    """One line per model of per-Transformer-layer similarity (Fig. 3), on the full 0-1 scale.

    ``curves[name][i]`` is the value for layer i+1 (x axis: layers 1..L).
    """
    fig, ax = _subplots((SINGLE_COLUMN, 2.6))
    max_l = 1
    for name, vals in curves.items():
        v = np.asarray(vals, dtype=np.float64)
        layers = np.arange(1, v.size + 1)
        max_l = max(max_l, v.size)
        ax.plot(layers, v, marker="o", ms=3, label=str(name))
    ax.set_xticks(np.arange(1, max_l + 1))
    ax.set_ylim(0.0, 1.0)  # PWCCA lies in [0, 1]: no auto-zoom onto a sliver of it
    return _finish_lines(fig, ax, "Transformer layer", ylabel, title, bool(curves), path)


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str] | None,
    path: str | Path,
    title: str = "Confusion matrix",
    normalise_rows: bool = True,
    drop_absent: bool = True,
    axis_label: str = "class",
) -> Path:
    """Confusion matrix (true classes on rows, predictions on columns).

    With ``normalise_rows`` each row is divided by its count (per-class recall). With
    ``drop_absent`` a class that is neither in the data nor ever predicted (e.g. synth_lead
    in NSynth's test split) is left out rather than shown as a row of zeros. Cell values are
    annotated when there are <= 15 classes.
    """
    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cm must be square; got shape {m.shape}")
    if class_names is not None and len(class_names) != m.shape[0]:
        raise ValueError(f"{len(class_names)} class names for {m.shape[0]} classes")
    names = list(class_names) if class_names is not None else [str(i) for i in range(m.shape[0])]
    if drop_absent:
        keep = np.flatnonzero(m.sum(axis=0) + m.sum(axis=1))
        m, names = m[np.ix_(keep, keep)], [names[i] for i in keep]
    if normalise_rows:
        s = m.sum(axis=1, keepdims=True)
        m = np.divide(m, s, out=np.zeros_like(m), where=s > 0)
    k = m.shape[0]
    size = SINGLE_COLUMN if k <= 15 else DOUBLE_COLUMN
    fig, ax = _subplots((size + 0.6, size))
    im = ax.imshow(m, interpolation="nearest", cmap="Blues", vmin=0.0, vmax=1.0 if normalise_rows else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="share of the true class" if normalise_rows else "notes")
    step = _tick_step(k)
    idx = np.arange(0, k, step)
    ax.set_xticks(idx)
    ax.set_yticks(idx)
    ax.set_xticklabels([names[i] for i in idx], rotation=90, fontsize=6 if k > 30 else 7)
    ax.set_yticklabels([names[i] for i in idx], fontsize=6 if k > 30 else 7)
    if k <= 15:
        thresh = m.max() / 2 if m.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{m[i, j]:.2f}" if normalise_rows else f"{m[i, j]:.0f}",
                        ha="center", va="center", fontsize=5.5,
                        color="white" if m[i, j] > thresh else "black")
    ax.set_xlabel(f"predicted {axis_label}")
    ax.set_ylabel(f"true {axis_label}")
    ax.set_title(title)
    return _save(fig, path)


def plot_bar(
    values: Sequence[float],
    names: Sequence[str],
    path: str | Path,
    title: str = "",
    ylabel: str = "",
) -> Path:
    """Simple bar chart of ``values`` labelled by ``names``."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] != len(names):
        raise ValueError(f"{v.shape[0]} values for {len(names)} names")
    fig, ax = _subplots((SINGLE_COLUMN if len(names) <= 8 else DOUBLE_COLUMN, 2.6))
    ax.bar(np.arange(v.size), v, color="tab:blue")
    ax.set_xticks(np.arange(v.size))
    ax.set_xticklabels([str(n) for n in names], rotation=45 if len(names) > 6 else 0,
                       ha="right" if len(names) > 6 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_xy(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    path: str | Path,
    title: str = "",
    logx: bool = False,
) -> Path:
    """Generic line plot: one line per ``name -> (xs, ys)`` (e.g. accuracy per layer)."""
    fig, ax = _subplots((SINGLE_COLUMN, 2.6))
    for name, (xs, ys) in series.items():
        xa, ya = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if xa.shape != ya.shape:
            raise ValueError(f"series {name!r}: xs {xa.shape} and ys {ya.shape} differ")
        ax.plot(xa, ya, marker="o", label=str(name))
    if logx:
        ax.set_xscale("log")
    return _finish_lines(fig, ax, xlabel, ylabel, title, bool(series), path)


def plot_grouped_bars(groups: Mapping[str, Mapping[str, float]], ylabel: str, path: str | Path, title: str = "",
                      ylim: tuple[float, float] | None = None) -> Path:
    """Bars per group (e.g. per label) and series (e.g. trained / untrained / shuffled)."""
    names = list(groups)
    series = list(dict.fromkeys(k for values in groups.values() for k in values))
    fig, ax = _subplots((SINGLE_COLUMN, 2.6))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(names))
    for i, name in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [groups[g].get(name, np.nan) for g in names], width,
               label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


PROBE_TASK_TITLES = {"pitch": "MIDI pitch", "family": "instrument family"}
BASELINE_STYLES = {"untrained": ":", "logmel": "--", "majority": "-."}


def plot_probe_curves(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                      baselines: Mapping[str, Mapping[str, float]], path: str | Path, title: str = "") -> Path:
    """Linear-probe accuracy (best layer) against pre-training step, one panel per task, with the
    baselines (untrained encoder, log-mel statistics, majority class) as flat lines."""
    tasks = list(curves)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(DOUBLE_COLUMN, 2.6))
        axes = [fig.add_subplot(1, len(tasks), i + 1) for i in range(len(tasks))]
    for ax, task in zip(axes, tasks):
        steps, accuracies = curves[task]
        ax.plot(steps, 100 * np.asarray(accuracies, dtype=float), marker="o", ms=3, label="pre-trained, best layer")
        for name, style in BASELINE_STYLES.items():
            if name in baselines and task in baselines[name]:
                ax.axhline(100 * baselines[name][task], color="0.4", ls=style, lw=1, label=f"{name} (baseline)")
        ax.set_title(PROBE_TASK_TITLES.get(task, task), fontsize=9)
        ax.set_xlabel("pre-training step")
        ax.set_ylabel("linear-probe accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_piano_roll(targets: np.ndarray, probabilities: np.ndarray, frame_rate: float, lowest_midi: int,
                    path: str | Path, title: str = "", seconds: float | None = 10.0) -> Path:
    """Annotated notes against predicted probabilities of one recording: two panels of (time in s,
    MIDI note), ``targets`` and ``probabilities`` (T, keys) from key ``lowest_midi`` up; only the range
    of notes that sound (or, in silence, that are predicted), and the first ``seconds`` of the recording."""
    count = len(targets) if seconds is None else min(len(targets), max(1, round(seconds * frame_rate)))
    targets, probabilities = targets[:count], probabilities[:count]
    used = np.flatnonzero(targets.any(axis=0))  # the notes that sound, else those predicted
    used = used if len(used) else np.flatnonzero((probabilities >= 0.5).any(axis=0))
    low, high = (used.min(), used.max()) if len(used) else (39, 48)  # C4 area when nothing sounds
    low, high = max(0, low - 2), min(targets.shape[1] - 1, high + 2)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(DOUBLE_COLUMN, 3.2))
        axes = fig.subplots(1, 2, sharey=True)
    extent = (0, count / frame_rate, lowest_midi + low - 0.5, lowest_midi + high + 0.5)
    for ax, roll, name in ((axes[0], targets, "annotated notes"), (axes[1], probabilities, "predicted probability")):
        image = ax.imshow(roll[:, low:high + 1].T, origin="lower", aspect="auto", interpolation="nearest",
                          extent=extent, cmap="Greys" if roll is targets else "magma", vmin=0.0, vmax=1.0)
        ax.set_xlabel("time (s)")
        ax.set_title(name)
    span = high - low + 1
    ticks = np.arange(low, high + 1, max(1, span // 12))
    axes[0].set_yticks(lowest_midi + ticks)
    axes[0].set_yticklabels([pitch_name(int(lowest_midi + k)) for k in ticks], fontsize=6)
    axes[0].set_ylabel("MIDI note")
    fig.colorbar(image, ax=axes[1], fraction=0.046, pad=0.04, label="probability")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
