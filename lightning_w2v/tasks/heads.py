"""Clip-level heads: mean over time of one hidden state (or a learned mix of them), then linear."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.encoder import EncoderOutput


def masked_mean(x: Tensor, padding_mask: Tensor | None) -> Tensor:
    """(..., B, T, E) -> (..., B, E), averaging only over frames that are not padding."""
    if padding_mask is None:
        return x.mean(dim=-2)
    keep = (~padding_mask).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * keep).sum(dim=-2) / keep.sum(dim=-2).clamp_min(1.0)


class PooledClassifier(nn.Module):
    """Reads ``layer`` of the encoder output, mean-pools over time, applies one linear layer.

    layer: ``"last"`` (the paper: last Transformer block), an int index into the hidden
    states (0 = Transformer input after the projection, i = layer i), or ``"weighted"``:
    softmax-normalised learned weights over all hidden states (SUPERB-style probing).
    Pooling is linear, so the weighted sum of pooled layers equals pooling the weighted sum.
    standardize: standardise the pooled features with a non-affine BatchNorm before the
    linear layer (the usual linear-probing practice, e.g. MAE). At test time it is a fixed
    affine map, so the classifier stays linear; it makes short probes converge far faster.
    Off by default: the paper's head is a plain linear layer.
    """

    def __init__(self, hidden_sizes: tuple[int, ...], num_classes: int, layer: str | int = "last",
                 standardize: bool = False) -> None:
        super().__init__()
        num_hidden_states = len(hidden_sizes)
        if isinstance(layer, str) and layer not in ("last", "weighted"):
            layer = int(layer)
        if isinstance(layer, int) and not 0 <= layer < num_hidden_states:
            raise ConfigError(f"model.init_args.layer={layer}: choose 0..{num_hidden_states - 1}, 'last' or 'weighted'")
        if layer == "weighted" and len(set(hidden_sizes)) > 1:
            raise ConfigError(f"model.init_args.layer='weighted': this encoder's hidden states differ in width "
                              f"({', '.join(map(str, hidden_sizes))}), so they cannot be summed; choose a layer "
                              f"index 0..{num_hidden_states - 1} or 'last'")
        self.layer = layer
        width = hidden_sizes[-1] if layer in ("last", "weighted") else hidden_sizes[layer]
        self.norm = nn.BatchNorm1d(width, affine=False) if standardize else nn.Identity()
        self.linear = nn.Linear(width, num_classes)
        self.layer_logits = nn.Parameter(torch.zeros(num_hidden_states)) if layer == "weighted" else None

    @property
    def reads_hidden_states(self) -> bool:
        return self.layer != "last"

    def layer_weights(self) -> Tensor | None:
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, dim=0)

    def pool(self, out: EncoderOutput) -> Tensor:
        """Encoder output -> (B, S, E) time-pooled features: S = 1, or L+1 for ``weighted``."""
        if self.layer == "last":
            return masked_mean(out.last_hidden_state, out.padding_mask).unsqueeze(1)
        assert out.hidden_states is not None, "the encoder must return hidden states for this head"
        if self.layer == "weighted":
            stacked = torch.stack(out.hidden_states, dim=0)  # (L+1, B, T, E)
            return masked_mean(stacked, out.padding_mask).transpose(0, 1)  # (B, L+1, E)
        return masked_mean(out.hidden_states[self.layer], out.padding_mask).unsqueeze(1)

    def classify(self, pooled: Tensor) -> Tensor:
        """(B, S, E) pooled features -> (B, num_classes) logits."""
        if self.layer == "weighted":
            features = torch.einsum("s,bse->be", self.layer_weights().to(pooled.dtype), pooled)
        else:
            features = pooled[:, 0]
        return self.linear(self._standardize(features.float()))

    def _standardize(self, features: Tensor) -> Tensor:
        """The BatchNorm; a training batch of one clip (a split's last) has no spread of its own, so it is
        standardised with the running statistics instead, as at test time."""
        if isinstance(self.norm, nn.BatchNorm1d) and self.training and features.shape[0] == 1:
            norm = self.norm
            return nn.functional.batch_norm(features, norm.running_mean, norm.running_var, training=False,
                                            eps=norm.eps)
        return self.norm(features)

    def forward(self, out: EncoderOutput) -> Tensor:
        return self.classify(self.pool(out))
