"""Tests for lightning_w2v.analysis.codebooks (code/label co-occurrence statistics)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lightning_w2v.analysis import (
    broadcast_labels,
    code_usage,
    cooccurrence,
    joint_codes,
    normalise,
    normalized_mutual_information,
    purity,
    shuffled_label_baseline,
    sort_for_display,
    specialisation_summary,
)


def test_joint_code_indexing():
    v = 320
    codes = np.array([[0, 0], [0, 1], [1, 0], [319, 319], [2, 5]])
    np.testing.assert_array_equal(joint_codes(codes, v), [0, 1, 320, 320 * 320 - 1, 2 * 320 + 5])
    # general G: mixed radix, group 0 most significant
    c3 = np.array([[1, 2, 3]])
    assert joint_codes(c3, 4)[0] == 1 * 16 + 2 * 4 + 3
    # bijective on the full grid
    g0, g1 = np.meshgrid(np.arange(7), np.arange(7), indexing="ij")
    j = joint_codes(np.stack([g0.ravel(), g1.ravel()], 1), 7)
    np.testing.assert_array_equal(np.sort(j), np.arange(49))
    with pytest.raises(ValueError):
        joint_codes(np.array([[0, 7]]), 7)


def test_cooccurrence_counts():
    rng = np.random.default_rng(0)
    n, v, nl = 1000, 10, 4
    codes = rng.integers(0, v, n)
    labels = rng.integers(0, nl, n)
    m = cooccurrence(codes, labels, v, nl)
    assert m.shape == (v, nl)
    assert m.sum() == n
    assert m[3, 2] == np.sum((codes == 3) & (labels == 2))
    np.testing.assert_array_equal(m.sum(1), np.bincount(codes, minlength=v))
    # torch input works too
    np.testing.assert_array_equal(cooccurrence(torch.from_numpy(codes), labels, v, nl), m)
    with pytest.raises(ValueError):
        cooccurrence(codes, labels, v, 2)


def test_normalise():
    m = np.array([[2, 2], [0, 0], [1, 3]])
    rows = normalise(m, axis=1)
    np.testing.assert_allclose(rows, [[0.5, 0.5], [0, 0], [0.25, 0.75]])
    cols = normalise(m, axis=0)
    np.testing.assert_allclose(cols.sum(0), [1, 1])
    assert not np.any(np.isnan(rows))


def test_code_usage():
    u = code_usage(np.array([0, 0, 1, 1, 2, 2, 3, 3]), num_codes=10)
    assert u["n_used"] == 4
    assert u["perplexity"] == pytest.approx(4.0)
    assert u["entropy_bits"] == pytest.approx(2.0)
    assert u["fraction_used"] == pytest.approx(0.4)
    assert code_usage(np.zeros(5, dtype=int))["perplexity"] == pytest.approx(1.0)


def test_label_determined_code_has_nmi_and_purity_one():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 11, 2000)
    codes = (labels * 7 + 3) % 320  # injective relabelling
    assert normalized_mutual_information(codes, labels) == pytest.approx(1.0)
    assert purity(codes, labels) == pytest.approx(1.0)
    # a refinement (several codes per label) is still pure
    fine = labels * 2 + rng.integers(0, 2, labels.size)
    assert purity(fine, labels) == pytest.approx(1.0)
    assert normalized_mutual_information(fine, labels) < 1.0


def test_nmi_matches_hand_computation():
    codes = np.array([0, 0, 1, 1])
    labels = np.array([0, 1, 0, 1])
    assert normalized_mutual_information(codes, labels) == pytest.approx(0.0, abs=1e-12)
    codes = np.array([0, 0, 0, 1])
    labels = np.array([0, 0, 1, 1])
    # H(C) = H(.75, .25), H(L) = ln 2, I = H(L) - H(L|C); NMI = I / mean(H(C), H(L))
    h_c = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    h_l = np.log(2)
    h_l_given_c = 0.75 * -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))
    expected = (h_l - h_l_given_c) / ((h_c + h_l) / 2)
    assert normalized_mutual_information(codes, labels) == pytest.approx(expected)
    assert normalized_mutual_information(labels, codes) == pytest.approx(expected)  # symmetric
    assert purity(codes, labels) == pytest.approx(0.75)


def test_random_codes_near_shuffled_baseline():
    rng = np.random.default_rng(2)
    n = 20000
    codes = rng.integers(0, 320, n)
    labels = rng.integers(0, 11, n)
    nmi = normalized_mutual_information(codes, labels)
    base = shuffled_label_baseline(codes, labels, n_shuffles=5, seed=0)
    assert base["nmi_mean"] > 0  # finite-sample bias is real
    assert abs(nmi - base["nmi_mean"]) < 5 * base["nmi_std"] + 2e-3
    # an informative code is far above the baseline
    info = labels * 20 + rng.integers(0, 20, n)
    assert normalized_mutual_information(info, labels) > base["nmi_mean"] + 0.3


def test_shuffled_baseline_is_reproducible():
    rng = np.random.default_rng(3)
    c, lab = rng.integers(0, 30, 500), rng.integers(0, 5, 500)
    a = shuffled_label_baseline(c, lab, n_shuffles=3, seed=7)
    b = shuffled_label_baseline(c, lab, n_shuffles=3, seed=7)
    assert a == b


def test_specialisation_summary():
    rng = np.random.default_rng(4)
    n, v = 3000, 16
    pitch = rng.integers(0, 112, n)
    family = rng.integers(0, 11, n)
    codes = np.stack([family, rng.integers(0, v, n)], 1)  # group 0 encodes the family
    s = specialisation_summary(codes, {"pitch": pitch, "family": family}, v,
                               n_shuffles=2, seed=0)
    assert set(s) == {"group0", "group1", "joint", "meta"}
    assert s["meta"] == {"num_frames": n, "num_groups": 2, "num_entries": v}
    assert s["group0"]["family"]["purity"] == pytest.approx(1.0)
    assert s["group0"]["family"]["nmi"] == pytest.approx(1.0)
    assert s["group1"]["family"]["nmi"] < 0.05
    assert s["joint"]["family"]["purity"] == pytest.approx(1.0)
    assert s["group0"]["usage"]["n_used"] == 11
    assert s["joint"]["usage"]["n_used"] <= 11 * v
    for key in ("nmi_shuffled_mean", "nmi_shuffled_std", "purity_shuffled_mean",
                "purity_shuffled_std"):
        assert key in s["joint"]["pitch"]
    json.dumps(s)  # serialisable
    with pytest.raises(ValueError):
        specialisation_summary(codes, {"pitch": pitch[:10]}, v)


def test_broadcast_labels():
    np.testing.assert_array_equal(broadcast_labels([3, 5], 2), [3, 3, 5, 5])
    np.testing.assert_array_equal(broadcast_labels([3, 5], [1, 3]), [3, 5, 5, 5])


def test_sort_for_display():
    m = np.array([
        [0, 5, 1],   # argmax 1, peak 5
        [0, 0, 0],   # unused
        [9, 1, 0],   # argmax 0, peak 9
        [0, 8, 0],   # argmax 1, peak 8
        [2, 0, 7],   # argmax 2
        [3, 0, 0],   # argmax 0, peak 3
    ])
    s, order = sort_for_display(m)
    np.testing.assert_array_equal(order, [2, 5, 3, 0, 4])
    np.testing.assert_array_equal(s, m[order])
    assert np.all(np.diff(s.argmax(1)) >= 0)  # block-diagonal order
    s_all, order_all = sort_for_display(m, drop_empty=False)
    assert s_all.shape == m.shape and sorted(order_all) == list(range(6))
