"""Codebook specialisation analysis (Figs. 1-2 of Ragano et al., 2023).

Inputs are the quantizer's hard code indices per frame, ``codes`` (N, G) with G groups of
V entries each (wav2vec 2.0 BASE: G=2, V=320), and per-frame labels (N,), e.g. the
NSynth pitch or instrument family of the note the frame belongs to (see
:func:`broadcast_labels`).

Conventions:
  * A co-occurrence matrix is ``counts[code, label]`` with shape (num_codes, num_labels).
  * The joint code of a frame is the mixed-radix number of its group indices,
    ``sum_g codes[:, g] * V**(G-1-g)``; for G=2 that is ``g0 * V + g1``.
  * NMI uses the arithmetic-mean normalisation (sklearn's default):
    ``NMI = I(C; L) / ((H(C) + H(L)) / 2)``; it is 1 when both variables are constant.
    NMI is biased upwards when there are many codes per frame (e.g. 102,400 joint
    codes), which is why :func:`shuffled_label_baseline` exists: compare against it.
  * Purity: fraction of frames whose label equals the majority label of their code.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = [
    "broadcast_labels",
    "joint_codes",
    "cooccurrence",
    "normalise",
    "code_usage",
    "contingency",
    "normalized_mutual_information",
    "purity",
    "shuffled_label_baseline",
    "specialisation_summary",
    "sort_for_display",
]


def _as_int_1d(a: object, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer indices")
    return arr.astype(np.int64)


def _as_codes_2d(codes: object) -> np.ndarray:
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes).astype(np.int64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"codes must be (N, G); got shape {arr.shape}")
    return arr


def broadcast_labels(clip_labels: object, frames_per_clip: int | object) -> np.ndarray:
    """Repeat clip-level labels (B,) to frame level (sum of frames,).

    ``frames_per_clip`` is an int (all clips equally long, e.g. NSynth's 4 s = 199 frames)
    or a (B,) array of frame counts. Frames must be ordered clip by clip.
    """
    lab = _as_int_1d(clip_labels, "clip_labels")
    reps = np.asarray(frames_per_clip, dtype=np.int64)
    return np.repeat(lab, reps)


def joint_codes(codes: object, num_entries: int) -> np.ndarray:
    """Joint code index (N,) from per-group indices ``codes`` (N, G), each in [0, V).

    Mixed radix with group 0 most significant: ``g0 * V + g1`` for G=2.
    Range: [0, V**G).
    """
    c = _as_codes_2d(codes)
    if c.size and (c.min() < 0 or c.max() >= num_entries):
        raise ValueError(f"code indices must lie in [0, {num_entries})")
    out = np.zeros(c.shape[0], dtype=np.int64)
    for g in range(c.shape[1]):
        out = out * num_entries + c[:, g]
    return out


def cooccurrence(
    codes: object, labels: object, num_codes: int, num_labels: int
) -> np.ndarray:
    """Co-occurrence counts (num_codes, num_labels) of 1-D codes (N,) and labels (N,).

    Pass one group's column ``codes[:, g]`` or :func:`joint_codes`. Counts sum to N.
    """
    c, lab = _as_int_1d(codes, "codes"), _as_int_1d(labels, "labels")
    if c.shape != lab.shape:
        raise ValueError(f"codes and labels must have the same length; {c.shape} vs {lab.shape}")
    if c.size and (c.min() < 0 or c.max() >= num_codes):
        raise ValueError(f"code indices must lie in [0, {num_codes})")
    if lab.size and (lab.min() < 0 or lab.max() >= num_labels):
        raise ValueError(f"labels must lie in [0, {num_labels})")
    flat = np.bincount(c * num_labels + lab, minlength=num_codes * num_labels)
    return flat.reshape(num_codes, num_labels)


def normalise(counts: np.ndarray, axis: int) -> np.ndarray:
    """Normalise a (codes, labels) matrix so sums along ``axis`` are 1 (zero lines stay 0).

    ``axis=1``: each row sums to 1, i.e. P(label | code).
    ``axis=0``: each column sums to 1, i.e. P(code | label) (corrects for label frequency,
    e.g. NSynth's over-represented bass class).
    """
    m = np.asarray(counts, dtype=np.float64)
    s = m.sum(axis=axis, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m), where=s > 0)


def code_usage(codes: object, num_codes: int | None = None) -> dict[str, float]:
    """Usage statistics of 1-D codes (N,).

    Returns ``n_used`` (distinct codes), ``perplexity`` = exp(entropy in nats) of the
    empirical code distribution (the "hard" code perplexity wav2vec 2.0 logs), the
    ``entropy_bits``, and ``fraction_used`` = n_used / num_codes when num_codes is given.
    """
    c = _as_int_1d(codes, "codes")
    _, cnt = np.unique(c, return_counts=True)
    p = cnt / max(c.size, 1)
    h = float(-(p * np.log(p)).sum()) if p.size else 0.0
    out = {"n_used": int(cnt.size), "perplexity": float(np.exp(h)), "entropy_bits": h / np.log(2)}
    if num_codes is not None:
        out["fraction_used"] = cnt.size / num_codes
    return out


def contingency(codes: object, labels: object) -> np.ndarray:
    """Compact contingency table (used codes, used labels) of 1-D codes and labels."""
    c, lab = _as_int_1d(codes, "codes"), _as_int_1d(labels, "labels")
    if c.shape != lab.shape:
        raise ValueError(f"codes and labels must have the same length; {c.shape} vs {lab.shape}")
    _, ci = np.unique(c, return_inverse=True)
    _, li = np.unique(lab, return_inverse=True)
    nc, nl = int(ci.max(initial=-1)) + 1, int(li.max(initial=-1)) + 1
    return np.bincount(ci * nl + li, minlength=nc * nl).reshape(nc, nl)


def _entropy(counts: np.ndarray) -> float:
    n = counts.sum()
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def _nmi_from_table(table: np.ndarray) -> float:
    n = table.sum()
    if n == 0:
        return 0.0
    hc, hl = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    if hc == 0.0 and hl == 0.0:
        return 1.0  # both constant: identical partitions
    pij = table / n
    pi, pj = pij.sum(axis=1, keepdims=True), pij.sum(axis=0, keepdims=True)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / (pi @ pj)[nz])).sum())
    return float(np.clip(mi / ((hc + hl) / 2.0), 0.0, 1.0))


def normalized_mutual_information(codes: object, labels: object) -> float:
    """NMI between 1-D codes (N,) and labels (N,), arithmetic-mean normalisation."""
    return _nmi_from_table(contingency(codes, labels))


def _purity_from_table(table: np.ndarray) -> float:
    n = table.sum()
    return float(table.max(axis=1).sum() / n) if n else 0.0


def purity(codes: object, labels: object) -> float:
    """Fraction of frames whose label is the majority label of their code (in [0, 1])."""
    return _purity_from_table(contingency(codes, labels))


def shuffled_label_baseline(
    codes: object, labels: object, n_shuffles: int = 10, seed: int = 0
) -> dict[str, float]:
    """NMI and purity of codes against randomly permuted labels (chance level).

    Permuting labels keeps both marginals and destroys the association, so this is the
    finite-sample level that an unrelated code would reach. Returns ``nmi_mean``,
    ``nmi_std``, ``purity_mean``, ``purity_std`` (population std over shuffles).
    """
    c, lab = _as_int_1d(codes, "codes"), _as_int_1d(labels, "labels")
    rng = np.random.default_rng(seed)
    nmis, purs = [], []
    for _ in range(n_shuffles):
        t = contingency(c, rng.permutation(lab))
        nmis.append(_nmi_from_table(t))
        purs.append(_purity_from_table(t))
    nm, pu = np.asarray(nmis), np.asarray(purs)
    return {"nmi_mean": float(nm.mean()), "nmi_std": float(nm.std()),
            "purity_mean": float(pu.mean()), "purity_std": float(pu.std())}


def specialisation_summary(
    codes: object,
    labels: Mapping[str, object],
    num_entries: int,
    n_shuffles: int = 10,
    seed: int = 0,
) -> dict[str, dict]:
    """Usage, NMI, purity and shuffled baselines per group and for the joint code.

    Args:
        codes: (N, G) per-group code indices, each in [0, num_entries).
        labels: label kind -> per-frame labels (N,), e.g. ``{"pitch": ..., "family": ...}``.
        num_entries: V, entries per group.

    Returns (JSON-serialisable)::

        {"group0": {"usage": {...}, "pitch": {"nmi", "purity", "nmi_shuffled_mean", ...},
                    "family": {...}},
         "group1": {...}, "joint": {...},
         "meta": {"num_frames": N, "num_groups": G, "num_entries": V}}
    """
    c = _as_codes_2d(codes)
    n, g = c.shape
    units: dict[str, tuple[np.ndarray, int]] = {
        f"group{i}": (c[:, i], num_entries) for i in range(g)
    }
    units["joint"] = (joint_codes(c, num_entries), num_entries**g)
    out: dict[str, dict] = {}
    for name, (col, ncodes) in units.items():
        entry: dict[str, dict] = {"usage": code_usage(col, ncodes)}
        for kind, lab in labels.items():
            lab_arr = _as_int_1d(lab, kind)
            if lab_arr.shape[0] != n:
                raise ValueError(f"labels[{kind!r}] has {lab_arr.shape[0]} frames, codes {n}")
            t = contingency(col, lab_arr)
            base = shuffled_label_baseline(col, lab_arr, n_shuffles=n_shuffles, seed=seed)
            entry[kind] = {
                "nmi": _nmi_from_table(t),
                "purity": _purity_from_table(t),
                "nmi_shuffled_mean": base["nmi_mean"],
                "nmi_shuffled_std": base["nmi_std"],
                "purity_shuffled_mean": base["purity_mean"],
                "purity_shuffled_std": base["purity_std"],
            }
        out[name] = entry
    out["meta"] = {"num_frames": int(n), "num_groups": int(g), "num_entries": int(num_entries)}
    return out


def sort_for_display(
    matrix: np.ndarray, drop_empty: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Order the rows (codes) of a (codes, labels) matrix so its diagonal structure shows.

    Rows are sorted by their argmax label (ascending), then by the weight at that argmax
    (descending). With ``drop_empty`` all-zero rows (unused codes) are removed.

    Returns ``(sorted_matrix (R, L), row_order (R,))`` with ``sorted = matrix[row_order]``.
    """
    m = np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D; got shape {m.shape}")
    rows = np.arange(m.shape[0])
    if drop_empty:
        rows = rows[np.abs(m).sum(axis=1) > 0]
    sub = m[rows]
    if sub.shape[0] == 0 or sub.shape[1] == 0:
        return sub, rows
    arg = sub.argmax(axis=1)
    peak = sub[np.arange(sub.shape[0]), arg]
    order = np.lexsort((-peak, arg))  # last key is primary
    return sub[order], rows[order]
