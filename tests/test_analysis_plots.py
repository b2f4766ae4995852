"""Tests for lightning_w2v.analysis.plots: each function writes a real PNG."""
from __future__ import annotations

import numpy as np
import pytest

from lightning_w2v.analysis import plots
from lightning_w2v.analysis.codebooks import normalise, sort_for_display

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_bytes: int = 2000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes


def test_cooccurrence_heatmap(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.integers(0, 20, (320, 11))
    sorted_m, _ = sort_for_display(normalise(m, axis=0))
    names = [f"family{i}" for i in range(11)]
    out = tmp_path / "a" / "h.png"
    p = plots.plot_cooccurrence_heatmap(sorted_m, names, "codes vs family", out)
    assert p == out
    _assert_png(p)
    p2 = plots.plot_cooccurrence_heatmap(m, None, "log", tmp_path / "h2.png", log_scale=True)
    _assert_png(p2)
    with pytest.raises(ValueError):
        plots.plot_cooccurrence_heatmap(m, names[:3], "bad", tmp_path / "bad.png")


def test_pwcca_curves(tmp_path):
    curves = {"pre-trained": np.linspace(0.6, 0.9, 12), "FT1": np.linspace(0.6, 0.3, 12),
              "FT2": list(np.linspace(0.6, 0.4, 12))}
    _assert_png(plots.plot_pwcca_curves(curves, tmp_path / "pwcca.png"))


def test_confusion_matrix(tmp_path):
    rng = np.random.default_rng(1)
    cm = rng.integers(0, 50, (11, 11))
    cm[3] = 0  # class absent from test (like synth_lead)
    _assert_png(plots.plot_confusion_matrix(cm, [f"c{i}" for i in range(11)], tmp_path / "cm.png"))
    big = rng.integers(0, 5, (112, 112))
    _assert_png(plots.plot_confusion_matrix(big, None, tmp_path / "cm112.png",
                                            normalise_rows=False))
    with pytest.raises(ValueError):
        plots.plot_confusion_matrix(np.zeros((3, 4)), None, tmp_path / "x.png")


def test_bar_and_xy(tmp_path):
    _assert_png(plots.plot_bar([0.76, 0.82, 0.9], ["FE", "FT1", "FT2"], tmp_path / "bar.png",
                               title="pitch acc"))
    series = {"pitch": (list(range(1, 13)), np.linspace(0.3, 0.8, 12)),
              "instrument": (np.arange(1, 13), np.linspace(0.4, 0.6, 12))}
    _assert_png(plots.plot_xy(series, "layer", "accuracy", tmp_path / "xy.png", title="probe"))
    with pytest.raises(ValueError):
        plots.plot_xy({"bad": ([1, 2], [1])}, "x", "y", tmp_path / "bad.png")


def test_lazy_export():
    import lightning_w2v.analysis as analysis

    assert analysis.plot_xy is plots.plot_xy
