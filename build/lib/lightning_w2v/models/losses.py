"""The wav2vec 2.0 objective as pure functions.

Shapes: B examples, T frames, D projected dim (final_dim), K negatives, G codebook groups.
"""
from __future__ import annotations

import torch
from torch import Tensor


def contrastive_logits(
    predicted: Tensor,
    targets: Tensor,
    negative_indices: Tensor,
    codes: Tensor,
    temperature: float,
) -> Tensor:
    """Cosine similarity / temperature of each prediction with its target and K distractors.

    predicted: (B, T, D) context vectors after final_proj.
    targets: (B, T, D) quantized targets after project_q.
    negative_indices: (B, T, K) frame indices of the distractors within the same example.
    codes: (B, T, G) code indices; a distractor with the same codes as the target is the
        same vector, and gets logit -inf (fairseq's ``neg_is_pos``).
    Returns (B, T, 1 + K) float32 logits; column 0 is the positive.

    Similarities are computed in fp32 (as fairseq does) from one (B, T, T) matrix of all
    pairwise cosines, then gathered: this avoids materialising (B, T, K, D) distractors.
    """
    batch, frames, num_neg = negative_indices.shape
    with torch.autocast(device_type=predicted.device.type, enabled=False):
        pred = torch.nn.functional.normalize(predicted.float(), dim=-1, eps=1e-8)  # (B, T, D)
        targ = torch.nn.functional.normalize(targets.float(), dim=-1, eps=1e-8)  # (B, T, D)
        positive = (pred * targ).sum(dim=-1, keepdim=True)  # (B, T, 1)
        all_pairs = torch.bmm(pred, targ.transpose(1, 2))  # (B, T, T) cos(pred_t, targ_s)
        negative = torch.gather(all_pairs, 2, negative_indices)  # (B, T, K)

    flat_idx = negative_indices.reshape(batch, frames * num_neg)  # (B, T*K)
    neg_codes = torch.gather(codes, 1, flat_idx[:, :, None].expand(-1, -1, codes.shape[-1]))
    neg_codes = neg_codes.view(batch, frames, num_neg, -1)  # (B, T, K, G)
    neg_is_pos = (neg_codes == codes[:, :, None, :]).all(dim=-1)  # (B, T, K)
    negative = negative.masked_fill(neg_is_pos, float("-inf"))
    return torch.cat([positive, negative], dim=-1) / temperature  # (B, T, 1 + K)


def infonce_loss(logits: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy with the positive (column 0) as target, summed over masked frames.

    logits: (B, T, 1 + K); mask: (B, T) bool. Returns a scalar (nats).
    """
    per_frame = torch.logsumexp(logits, dim=-1) - logits[..., 0]  # (B, T)
    return torch.where(mask, per_frame, torch.zeros_like(per_frame)).sum()


def contrastive_accuracy(logits: Tensor, mask: Tensor) -> Tensor:
    """Share of masked frames whose positive beats every distractor. Returns a scalar."""
    correct = logits[..., 0] > logits[..., 1:].amax(dim=-1)  # (B, T)
    return (correct & mask).sum().float() / mask.sum().clamp_min(1).float()


def diversity_loss(prob_perplexity: Tensor, num_codes: int) -> Tensor:
    """(G*V - perplexity) / (G*V): 0 when every codebook entry is used equally."""
    return (num_codes - prob_perplexity) / num_codes


def feature_penalty(features: Tensor) -> Tensor:
    """Mean squared CNN output (B, T, C) -> scalar: keeps feature magnitudes in check."""
    return features.float().pow(2).mean()
