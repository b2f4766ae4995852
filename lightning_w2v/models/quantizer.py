"""Gumbel-softmax product quantizer of wav2vec 2.0 (fairseq ``GumbelVectorQuantizer``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    quantized: Tensor  # (B, T, codevector_dim) selected codevectors, concatenated over groups
    codes: Tensor  # (B, T, G) long: index of the chosen entry in each group
    prob_perplexity: Tensor  # () soft perplexity, summed over groups (drives the diversity loss)
    code_perplexity: Tensor  # () hard perplexity of the noise-free argmax codes, summed over groups


def _perplexity(probs: Tensor, weights: Tensor | None) -> Tensor:
    """exp(entropy) of the mean distribution per group, summed over groups.

    probs: (N, G, V); weights: (N,) frame weights (1 for frames that count) or None.
    """
    if weights is None:
        mean = probs.mean(dim=0)  # (G, V)
    else:
        weights = weights.to(probs.dtype)
        mean = (probs * weights[:, None, None]).sum(dim=0) / weights.sum().clamp_min(1.0)
    entropy = -(mean * torch.log(mean + 1e-7)).sum(dim=-1)  # (G,)
    return torch.exp(entropy).sum()


class GumbelVectorQuantizer(nn.Module):
    """G codebooks of V entries; each frame picks one entry per group.

    Training: hard Gumbel-softmax with a straight-through gradient, at ``temperature``.
    Eval: plain argmax, no noise (so two implementations can be compared exactly). The
    perplexities are those of the noise-free logits in both modes, as fairseq logs them.
    The temperature is a buffer, set from outside by the training loop and saved in
    checkpoints with the weights.
    """

    def __init__(self, input_dim: int, num_groups: int, num_vars: int, codevector_dim: int,
                 temperature: float = 2.0) -> None:
        super().__init__()
        if codevector_dim % num_groups:
            raise ValueError("codevector_dim must be divisible by num_groups")
        self.num_groups = num_groups
        self.num_vars = num_vars
        self.weight_proj = nn.Linear(input_dim, num_groups * num_vars)
        # Same layout as fairseq `vars` and transformers `codevectors`: (1, G*V, D/G).
        self.codevectors = nn.Parameter(torch.empty(1, num_groups * num_vars, codevector_dim // num_groups))
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        nn.init.uniform_(self.codevectors)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)

    @property
    def num_codes(self) -> int:
        return self.num_groups * self.num_vars

    def set_temperature(self, value: float) -> None:
        self.temperature.fill_(value)

    def code_logits(self, features: Tensor) -> Tensor:
        """(B, T, C) -> (B, T, G, V) unnormalised scores of every codebook entry."""
        batch, frames, _ = features.shape
        return self.weight_proj(features).view(batch, frames, self.num_groups, self.num_vars)

    def forward(self, features: Tensor, frame_weights: Tensor | None = None) -> QuantizerOutput:
        """features: (B, T, C); frame_weights: (B, T), 1 where a frame counts for perplexity."""
        batch, frames, _ = features.shape
        logits = self.code_logits(features).float()  # (B, T, G, V), fp32 as fairseq does
        flat_logits = logits.reshape(batch * frames, self.num_groups, self.num_vars)  # (N, G, V)
        codes = flat_logits.argmax(dim=-1)  # (N, G) noise-free choice
        hard = torch.zeros_like(flat_logits).scatter_(-1, codes.unsqueeze(-1), 1.0)  # (N, G, V)
        weights = None if frame_weights is None else frame_weights.reshape(-1)
        # Both perplexities come from the noise-free logits, in training too (as fairseq's).
        prob_perplexity = _perplexity(torch.softmax(flat_logits, dim=-1), weights)
        code_perplexity = _perplexity(hard, weights)

        if self.training:
            gumbel = -torch.empty_like(flat_logits).exponential_().log()
            soft = torch.softmax((flat_logits + gumbel) / self.temperature, dim=-1)
            codes = soft.argmax(dim=-1)  # the straight-through choice includes the noise
            hard = torch.zeros_like(soft).scatter_(-1, codes.unsqueeze(-1), 1.0)
            probs = hard - soft.detach() + soft  # forward: one-hot; backward: softmax gradient
        else:
            probs = hard

        codebook = self.codevectors.view(self.num_groups, self.num_vars, -1)  # (G, V, D/G)
        probs = probs.to(codebook.dtype)
        quantized = torch.einsum("ngv,gvd->ngd", probs, codebook)  # (N, G, D/G)
        quantized = quantized.reshape(batch, frames, -1)  # (B, T, D)
        return QuantizerOutput(
            quantized=quantized,
            codes=codes.view(batch, frames, self.num_groups),
            prob_perplexity=prob_perplexity,
            code_perplexity=code_perplexity,
        )
