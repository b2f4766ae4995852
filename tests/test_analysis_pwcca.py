"""Tests for lightning_w2v.analysis.pwcca (CCA / PWCCA on activation matrices)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_w2v.analysis import cca, mean_cca, pwcca
from lightning_w2v.analysis.pwcca import cca_decomposition


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _brute_force_cca(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rho^2 = eigenvalues of Sxx^-1 Sxy Syy^-1 Syx (full-rank inputs only)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc, yc.T @ yc, xc.T @ yc
    m = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)
    ev = np.sort(np.real(np.linalg.eigvals(m)))[::-1]
    k = min(x.shape[1], y.shape[1])
    return np.sqrt(np.clip(ev[:k], 0, 1))


def test_identical_gives_one():
    x = _rng().standard_normal((300, 12))
    assert pwcca(x, x) == pytest.approx(1.0, abs=1e-6)
    assert mean_cca(x, x) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(cca(x, x), np.ones(12), atol=1e-6)


def test_torch_and_float32_inputs():
    x = torch.randn(200, 8)
    assert pwcca(x, x.clone()) == pytest.approx(1.0, abs=1e-6)
    assert pwcca(x.numpy(), x.double()) == pytest.approx(1.0, abs=1e-6)


def test_matches_brute_force_cca():
    rng = _rng(1)
    for n, d1, d2 in [(50, 3, 5), (80, 6, 4), (40, 5, 5)]:
        x = rng.standard_normal((n, d1))
        y = 0.5 * x[:, :1] @ rng.standard_normal((1, d2)) + rng.standard_normal((n, d2))
        np.testing.assert_allclose(cca(x, y), _brute_force_cca(x, y), atol=1e-8)


def test_cca_invariant_to_invertible_maps_on_both_sides():
    rng = _rng(2)
    x = rng.standard_normal((400, 6))
    y = x[:, :3] @ rng.standard_normal((3, 5)) + 0.7 * rng.standard_normal((400, 5))
    a = rng.standard_normal((6, 6)) + 3 * np.eye(6)  # invertible
    b = rng.standard_normal((5, 5)) + 3 * np.eye(5)
    ref = cca(x, y)
    np.testing.assert_allclose(cca(x @ a + 1.5, y), ref, atol=1e-8)
    np.testing.assert_allclose(cca(x, y @ b - 2.0), ref, atol=1e-8)


def test_pwcca_invariances():
    """Invariant to invertible maps of the non-weighting side (y); on the weighting side
    (x) only to neuron permutation, sign flips and a global scale (documented)."""
    rng = _rng(3)
    x = rng.standard_normal((500, 6)) * np.array([3, 2, 1, 1, 0.5, 0.2])
    y = x[:, :2] @ rng.standard_normal((2, 4)) + rng.standard_normal((500, 4))
    ref = pwcca(x, y)
    b = rng.standard_normal((4, 4)) + 3 * np.eye(4)
    assert pwcca(x, y @ b + 7.0) == pytest.approx(ref, abs=1e-9)
    perm = rng.permutation(6)
    signs = np.where(rng.random(6) < 0.5, -1.0, 1.0)
    assert pwcca(-4.0 * x[:, perm] * signs, y) == pytest.approx(ref, abs=1e-9)
    # y-weighted variant: invariant to invertible maps of x instead.
    a = rng.standard_normal((6, 6)) + 3 * np.eye(6)
    ref_y = pwcca(x, y, weight_side="y")
    assert pwcca(x @ a, y, weight_side="y") == pytest.approx(ref_y, abs=1e-9)


def test_linearly_related_gives_one_either_side():
    rng = _rng(4)
    x = rng.standard_normal((300, 7))
    a = rng.standard_normal((7, 7)) + 3 * np.eye(7)
    assert pwcca(x, x @ a) == pytest.approx(1.0, abs=1e-6)
    assert pwcca(x @ a, x) == pytest.approx(1.0, abs=1e-6)


def test_independent_noise_near_zero():
    rng = _rng(5)
    x = rng.standard_normal((5000, 10))
    y = rng.standard_normal((5000, 10))
    assert pwcca(x, y) < 0.15
    assert mean_cca(x, y) < 0.15


def test_partially_shared_signal_is_intermediate():
    rng = _rng(6)
    n = 3000
    shared = rng.standard_normal((n, 3))
    x = np.hstack([shared, rng.standard_normal((n, 5))]) @ rng.standard_normal((8, 8))
    y = np.hstack([shared, rng.standard_normal((n, 5))]) @ rng.standard_normal((8, 8))
    rho = cca(x, y)
    np.testing.assert_allclose(rho[:3], 1.0, atol=1e-6)
    assert np.all(rho[3:] < 0.15)
    val = pwcca(x, y)
    assert 0.2 < val < 0.9
    # More noise in y -> lower similarity than with y = x.
    assert val < pwcca(x, x)


def test_roughly_symmetric_and_cca_exactly_symmetric():
    rng = _rng(7)
    n = 2000
    z = rng.standard_normal((n, 4))
    x = z @ rng.standard_normal((4, 6)) + 0.5 * rng.standard_normal((n, 6))
    y = z @ rng.standard_normal((4, 6)) + 0.5 * rng.standard_normal((n, 6))
    np.testing.assert_allclose(cca(x, y), cca(y, x), atol=1e-10)
    assert abs(pwcca(x, y) - pwcca(y, x)) < 0.1
    assert 0.0 <= pwcca(x, y) <= 1.0


def test_rank_deficient_no_nan():
    rng = _rng(8)
    x = rng.standard_normal((200, 4))
    x = np.hstack([x, x[:, :2], np.zeros((200, 1)), (x[:, 0] + x[:, 1])[:, None]])  # rank 4
    y = rng.standard_normal((200, 6))
    y[:, 5] = 3.0  # constant column
    rho = cca(x, y)
    assert rho.shape == (4,)
    assert np.all(np.isfinite(rho))
    assert np.isfinite(pwcca(x, y)) and np.isfinite(pwcca(y, x))
    assert pwcca(x, x) == pytest.approx(1.0, abs=1e-6)
    # float32 round-off of a dependent column must not count as a direction
    x32 = x.astype(np.float32)
    assert cca(x32, y).shape == (4,)
    # a fully constant side: no canonical directions, similarity 0, no NaN
    assert pwcca(np.ones((50, 3)), rng.standard_normal((50, 2))) == 0.0


def test_canonical_variates_orthonormal():
    rng = _rng(9)
    x, y = rng.standard_normal((100, 5)), rng.standard_normal((100, 3))
    dec = cca_decomposition(x, y)
    np.testing.assert_allclose(dec["hx"].T @ dec["hx"], np.eye(3), atol=1e-10)
    # correlation of paired variates equals rho
    np.testing.assert_allclose(np.sum(dec["hx"] * dec["hy"], axis=0), dec["rho"], atol=1e-10)


def test_errors():
    rng = _rng(10)
    with pytest.raises(ValueError, match="same number of samples"):
        pwcca(rng.standard_normal((10, 2)), rng.standard_normal((11, 2)))
    with pytest.raises(ValueError, match="n_samples >= max"):
        pwcca(rng.standard_normal((5, 2)), rng.standard_normal((5, 5)))
    with pytest.raises(ValueError, match="NaN"):
        pwcca(np.full((10, 2), np.nan), rng.standard_normal((10, 2)))
    with pytest.raises(ValueError, match="weight_side"):
        pwcca(rng.standard_normal((10, 2)), rng.standard_normal((10, 2)), weight_side="z")
