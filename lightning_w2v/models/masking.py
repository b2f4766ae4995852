"""Span masking and negative sampling for wav2vec 2.0, vectorised on the model's device.

Both replace the numpy loops of fairseq and transformers with a handful of batched torch
ops and no host synchronisation, so they cost a small share of a training step.
"""
from __future__ import annotations

import torch
from torch import Tensor


def compute_span_mask(
    batch: int,
    frames: int,
    mask_prob: float,
    mask_length: int,
    min_masks: int = 2,
    lengths: Tensor | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    require_same_masks: bool = False,
) -> Tensor:
    """Boolean (B, T) mask of overlapping spans, fairseq semantics (``compute_mask_indices``).

    Per example with ``n`` valid frames: ``num_spans = max(min_masks, int(mask_prob * n /
    mask_length + u))`` with ``u ~ U[0, 1)`` (probabilistic rounding); span starts are drawn
    without replacement from the ``n - mask_length`` positions ``0 .. n - mask_length - 1``,
    as fairseq does (so the last frame is never masked); each span covers ``mask_length``
    frames. Spans overlap, so with mask_prob 0.65 and length 10 about 49% of frames end up
    masked. Padding frames (beyond ``lengths``) are never masked.

    ``require_same_masks`` (fairseq's default in ``Wav2Vec2Model``): every row is then thinned,
    at random, to the smallest masked count in the batch, so all rows have the same number of
    masked frames (spans get holes; about 46.6% of frames stay masked at BASE settings).

    Edge cases differ from fairseq only where a row has fewer start positions than spans:
    fairseq then shortens the spans, here the number of spans is capped.
    """
    if lengths is None:
        lengths = torch.full((batch,), frames, dtype=torch.long, device=device)
    lengths = lengths.to(device=device, dtype=torch.long)
    device = lengths.device
    span = min(mask_length, frames)
    num_starts = (lengths - span).clamp_min(1)  # (B,) fairseq: sz - mask_length start positions

    rounding = torch.rand(batch, device=device, generator=generator)
    num_spans = (mask_prob * lengths.float() / span + rounding).long().clamp_min(min_masks)
    num_spans = torch.minimum(num_spans, num_starts)  # (B,)

    # Sampling without replacement: rank random scores and keep the `num_spans` best.
    positions = torch.arange(frames, device=device)
    starts = _top_k_per_row(torch.rand(batch, frames, device=device, generator=generator),
                            positions[None, :] < num_starts[:, None], num_spans)  # (B, T)

    # Dilate every start over `span` frames: frame t is masked if a start lies in (t-span, t].
    covered = starts.long().cumsum(dim=1)  # (B, T)
    shifted = torch.nn.functional.pad(covered, (span, 0))[:, :frames]  # (B, T) covered[t - span]
    mask = ((covered - shifted) > 0) & (positions[None, :] < lengths[:, None])
    if require_same_masks:
        keep = mask.sum(dim=1).min().expand(batch)  # (B,) the smallest masked count
        mask = _top_k_per_row(torch.rand(batch, frames, device=device, generator=generator), mask, keep)
    return mask


def _top_k_per_row(scores: Tensor, allowed: Tensor, k: Tensor) -> Tensor:
    """(B, T) bool: in each row, the ``k[b]`` allowed positions with the highest scores.

    With uniform random ``scores`` that is ``k`` positions drawn without replacement.
    """
    scores = scores.masked_fill(~allowed, -1.0)
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)  # (B, T) rank of each score
    return (rank < k[:, None]) & allowed


def sample_negative_indices(
    mask: Tensor, num_negatives: int, generator: torch.Generator | None = None
) -> Tensor:
    """Draw distractors for every masked frame from the other masked frames of its example.

    mask: (B, T) bool. Returns (B, T, K) long frame indices into the same example. For a
    masked frame, each of the K indices is uniform over the example's other masked frames
    (never the frame itself), with replacement, as in fairseq. Entries of unmasked frames
    are meaningless (they point at frame 0 or a masked frame) and must be ignored.
    """
    batch, frames = mask.shape
    device = mask.device
    count = mask.sum(dim=1)  # (B,) masked frames per example
    rank = mask.long().cumsum(dim=1) - 1  # (B, T) rank of each masked frame within its example
    # Masked positions of each example first, in time order: order[b, r] = frame of rank r.
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # (B, T)

    others = (count - 1).clamp_min(1)  # (B,) candidates per frame, excluding itself
    draw = torch.rand(batch, frames, num_negatives, device=device, generator=generator)
    picked = (draw * others[:, None, None]).long()  # (B, T, K) in [0, others)
    picked = picked + (picked >= rank.clamp_min(0)[:, :, None]).long()  # skip the frame itself
    picked = torch.minimum(picked, (count - 1).clamp_min(0)[:, None, None])
    return torch.gather(order, 1, picked.view(batch, -1)).view(batch, frames, num_negatives)
