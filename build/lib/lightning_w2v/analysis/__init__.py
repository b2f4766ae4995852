"""Analyses of the paper: PWCCA per layer, codebook specialisation, Table 1, figures.

Pure functions on arrays (numpy / torch tensors); nothing here imports the model or
Lightning. The plotting functions are imported lazily so that ``import
lightning_w2v.analysis`` does not pull in matplotlib.
"""
from __future__ import annotations

from typing import Any

from .codebooks import (
    broadcast_labels,
    code_usage,
    contingency,
    cooccurrence,
    joint_codes,
    normalise,
    normalized_mutual_information,
    purity,
    shuffled_label_baseline,
    sort_for_display,
    specialisation_summary,
)
from .pwcca import cca, cca_decomposition, mean_cca, pwcca
from .results import (
    PAPER_TABLE1,
    aggregate,
    collect_runs,
    format_markdown,
    paper_accuracy,
    write_csv,
)

_PLOTS = (
    "plot_cooccurrence_heatmap",
    "plot_pwcca_curves",
    "plot_confusion_matrix",
    "plot_bar",
    "plot_xy",
)

__all__ = [
    "pwcca", "cca", "mean_cca", "cca_decomposition",
    "broadcast_labels", "joint_codes", "cooccurrence", "normalise", "code_usage",
    "contingency", "normalized_mutual_information", "purity", "shuffled_label_baseline",
    "specialisation_summary", "sort_for_display",
    "PAPER_TABLE1", "paper_accuracy", "collect_runs", "aggregate", "format_markdown",
    "write_csv",
    *_PLOTS,
]


def __getattr__(name: str) -> Any:
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
