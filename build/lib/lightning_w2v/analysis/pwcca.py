"""Canonical correlation analysis and projection-weighted CCA (PWCCA).

Used for Fig. 3 of Ragano et al. (2023): similarity between each Transformer layer's
output and the CNN feature-encoder output, with frames (time steps) as data points.

Method (all in float64 numpy):

1. Centre each variable (column) of ``x`` (n, d1) and ``y`` (n, d2).
2. Whiten each side with a thin SVD, ``Xc = Ux Sx Vx^T``. Columns of ``Ux`` whose singular
   value is below ``rtol * max(Sx)`` are dropped: those directions are numerically absent
   (duplicated or linearly dependent neurons, dead units), and whitening them would
   inflate round-off into spurious perfect correlations. The default ``rtol=1e-6`` sits
   above float32 round-off (about 6e-8 relative), so activations produced in float32 that
   are rank-deficient in exact arithmetic are still treated as rank-deficient.
3. The retained ``Qx = Ux[:, :rx]`` and ``Qy`` are orthonormal bases of the column spaces;
   the canonical correlations are the singular values of ``Qx^T Qy`` (rx, ry), clipped
   to [0, 1]. There are ``k = min(rx, ry)`` of them, sorted in descending order.
4. PWCCA (Morcos et al., 2018): the canonical variates of ``x`` are ``H = Qx A`` (n, k)
   with ``A`` the left singular vectors of ``Qx^T Qy``; they are orthonormal. The weight
   of canonical direction i is ``alpha_i = sum_j |<h_i, x_j>|`` over the centred neurons
   (columns) ``x_j`` of ``x``, normalised to sum to 1; PWCCA = ``sum_i alpha_i rho_i``.

Weighting side: by default the weights come from ``x`` (``weight_side="x"``), i.e. PWCCA
measures how much of *x's* variance is explained by directions shared with ``y``. It is
therefore not symmetric in general. Google's reference implementation
(``svcca/pwcca.py``) weights by whichever side has fewer neurons; pass
``weight_side="smaller"`` to reproduce that, or ``"y"`` to weight by ``y``.

Invariances: the canonical correlations are invariant to any invertible affine map of
either side. PWCCA is invariant to invertible linear maps of the non-weighting side, and
to permutations, sign flips and a global scale of the weighting side, but *not* to
general linear maps of the weighting side (the weights depend on the neuron basis; this
is by design of the method).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["cca", "mean_cca", "pwcca", "cca_decomposition", "DEFAULT_RTOL"]

DEFAULT_RTOL = 1e-6

def _to_numpy64(a: object, name: str) -> np.ndarray:
    """Convert numpy / torch / nested lists to a 2-D float64 numpy array."""
    if hasattr(a, "detach"):  # torch.Tensor, without importing torch
        a = a.detach().cpu().double().numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return arr


def _check_pair(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = _to_numpy64(x, "x"), _to_numpy64(y, "y")
    n = xa.shape[0]
    if ya.shape[0] != n:
        raise ValueError(
            f"x and y must have the same number of samples (rows); got {n} and {ya.shape[0]}"
        )
    dmax = max(xa.shape[1], ya.shape[1])
    if n < dmax + 1:
        raise ValueError(
            f"CCA needs n_samples >= max(d1, d2) + 1 = {dmax + 1} (got n={n}, "
            f"d1={xa.shape[1]}, d2={ya.shape[1]}); with fewer samples the centred data spans "
            "at most n-1 dimensions and the correlations are trivially 1. Use more frames."
        )
    return xa, ya


def _orthonormal_basis(xc: np.ndarray, rtol: float) -> np.ndarray:
    """Orthonormal basis (n, r) of the column space of centred ``xc`` (n, d)."""
    u, s, _ = np.linalg.svd(xc, full_matrices=False)  # u: (n, min(n, d)), s: (min(n, d),)
    if s.size == 0 or s[0] <= 0.0:
        return u[:, :0]
    keep = s > rtol * s[0]
    return u[:, keep]


def cca_decomposition(
    x: object, y: object, rtol: float = DEFAULT_RTOL
) -> dict[str, np.ndarray]:
    """Full CCA of ``x`` (n, d1) and ``y`` (n, d2).

    Returns a dict with
      ``rho`` (k,): canonical correlations, descending, in [0, 1];
      ``hx`` (n, k) / ``hy`` (n, k): orthonormal canonical variates of x / y;
      ``xc`` (n, d1) / ``yc`` (n, d2): the centred inputs;
    where ``k = min(rank(x), rank(y))``. If either side has rank 0 (constant), k = 0.
    """
    xa, ya = _check_pair(x, y)
    xc = xa - xa.mean(axis=0, keepdims=True)
    yc = ya - ya.mean(axis=0, keepdims=True)
    qx = _orthonormal_basis(xc, rtol)  # (n, rx)
    qy = _orthonormal_basis(yc, rtol)  # (n, ry)
    k = min(qx.shape[1], qy.shape[1])
    n = xa.shape[0]
    if k == 0:
        return {"rho": np.zeros(0), "hx": np.zeros((n, 0)), "hy": np.zeros((n, 0)),
                "xc": xc, "yc": yc}
    m = qx.T @ qy  # (rx, ry)
    a, s, bt = np.linalg.svd(m, full_matrices=False)  # a: (rx, k), s: (k,), bt: (k, ry)
    rho = np.clip(s[:k], 0.0, 1.0)
    hx = qx @ a[:, :k]  # (n, k)
    hy = qy @ bt[:k].T  # (n, k)
    return {"rho": rho, "hx": hx, "hy": hy, "xc": xc, "yc": yc}


def cca(x: object, y: object, rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """Canonical correlations (k,) of ``x`` (n, d1) and ``y`` (n, d2), descending.

    ``k = min(rank(x), rank(y))`` (numerical ranks, see module docstring).
    """
    return cca_decomposition(x, y, rtol=rtol)["rho"]


def mean_cca(x: object, y: object, rtol: float = DEFAULT_RTOL) -> float:
    """Mean canonical correlation, eq. (2) of the paper: ``sum_i rho_i / k``.

    Returns 0.0 when either side is constant (no canonical directions).
    """
    rho = cca(x, y, rtol=rtol)
    return float(rho.mean()) if rho.size else 0.0


def pwcca(
    x: object,
    y: object,
    epsilon: float = 1e-10,
    rtol: float = DEFAULT_RTOL,
    weight_side: Literal["x", "y", "smaller"] = "x",
) -> float:
    """Projection-weighted CCA (Morcos et al., 2018) of ``x`` (n, d1) and ``y`` (n, d2).

    Args:
        x, y: activations with samples (e.g. frames) as rows; numpy arrays, torch tensors
            or anything ``np.asarray`` accepts. Computed in float64.
        epsilon: guard for the weight normalisation; if the total weight is below epsilon
            (degenerate input), the plain mean CCA is returned instead.
        rtol: relative singular-value tolerance for dropping rank-deficient directions.
        weight_side: whose neurons weight the canonical correlations: ``"x"`` (default),
            ``"y"``, or ``"smaller"`` (side with fewer columns, ties -> x; as in the
            reference svcca code).

    Returns:
        PWCCA similarity in [0, 1]; 0.0 if either side is constant.
    """
    dec = cca_decomposition(x, y, rtol=rtol)
    rho = dec["rho"]  # (k,)
    if rho.size == 0:
        return 0.0
    if weight_side == "smaller":
        weight_side = "x" if dec["xc"].shape[1] <= dec["yc"].shape[1] else "y"
    if weight_side == "x":
        h, acts = dec["hx"], dec["xc"]
    elif weight_side == "y":
        h, acts = dec["hy"], dec["yc"]
    else:
        raise ValueError(f"weight_side must be 'x', 'y' or 'smaller'; got {weight_side!r}")
    # alpha_i = sum_j |<h_i, x_j>|: (k, n) @ (n, d) -> (k, d) -> (k,)
    alpha = np.abs(h.T @ acts).sum(axis=1)
    total = alpha.sum()
    if not np.isfinite(total) or total < epsilon:
        return float(rho.mean())
    return float(np.sum(alpha / total * rho))
