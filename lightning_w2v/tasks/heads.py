"""Heads: one hidden state (or a learned mix of them), mean-pooled over time for clip-level tasks or per
frame for frame-level ones, then one linear layer."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.encoder import EncoderOutput

FRAME_PRIOR = 0.02  # where a frame head's probabilities start
HEAD_KINDS = ("linear", "mlp")
MLP_WIDTH, MLP_DROPOUT = 512, 0.2


def masked_mean(x: Tensor, padding_mask: Tensor | None) -> Tensor:
    """(..., B, T, E) -> (..., B, E), averaging only over frames that are not padding."""
    if padding_mask is None:
        return x.mean(dim=-2)
    keep = (~padding_mask).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * keep).sum(dim=-2) / keep.sum(dim=-2).clamp_min(1.0)


class LayerHead(nn.Module):
    """What both heads share: which hidden state they read (``layer``), a non-affine BatchNorm of its
    features (``standardize``) and one linear layer to the outputs.

    layer: ``"last"`` (the paper: last Transformer block), an int index into the hidden
    states (wav2vec 2.0: 0 = Transformer input after the projection, i = layer i), or
    ``"weighted"``: softmax-normalised learned weights over all hidden states (SUPERB-style
    probing; only over hidden states of one width).
    kind: ``linear`` (the paper's head) or ``mlp`` (MARBLE's: one hidden layer of 512 with ReLU and
    dropout 0.2).
    standardize: standardise the features with a non-affine BatchNorm before the linear layer
    (the usual linear-probing practice, e.g. MAE). At test time it is a fixed affine map, so
    the head stays linear; it makes short probes converge far faster. Off by default: the
    paper's head is a plain linear layer.
    """

    def __init__(self, hidden_sizes: tuple[int, ...], num_outputs: int, layer: str | int = "last",
                 standardize: bool = False, kind: str = "linear") -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ConfigError(f"model.init_args.head={kind!r}: choose one of {', '.join(HEAD_KINDS)}")
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
        if kind == "mlp":  # MARBLE's probe: one hidden layer of 512, ReLU, dropout 0.2
            self.linear = nn.Sequential(nn.Linear(width, MLP_WIDTH), nn.ReLU(), nn.Dropout(MLP_DROPOUT),
                                        nn.Linear(MLP_WIDTH, num_outputs))
        else:
            self.linear = nn.Linear(width, num_outputs)
        self.layer_logits = nn.Parameter(torch.zeros(num_hidden_states)) if layer == "weighted" else None

    @property
    def reads_hidden_states(self) -> bool:
        return self.layer != "last"

    def layer_weights(self) -> Tensor | None:
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, dim=0)

    def _standardize(self, features: Tensor) -> Tensor:
        """The BatchNorm of (N, E) features; a training batch of one (a split's last clip) has no spread of
        its own, so it is standardised with the running statistics instead, as at test time."""
        if isinstance(self.norm, nn.BatchNorm1d) and self.training and features.shape[0] == 1:
            norm = self.norm
            return nn.functional.batch_norm(features, norm.running_mean, norm.running_var, training=False,
                                            eps=norm.eps)
        return self.norm(features)

    def forward(self, out: EncoderOutput) -> Tensor:
        return self.classify(self.features(out))


class PooledClassifier(LayerHead):
    """Clip-level: reads ``layer`` of the encoder output, mean-pools over time, applies one linear layer.

    Pooling is linear, so the weighted sum of pooled layers equals pooling the weighted sum.
    """

    def features(self, out: EncoderOutput) -> Tensor:
        """Encoder output -> (B, S, E) time-pooled features: S = 1, or L+1 for ``weighted``."""
        if self.layer == "last":
            return masked_mean(out.last_hidden_state, out.padding_mask).unsqueeze(1)
        assert out.hidden_states is not None, "the encoder must return hidden states for this head"
        if self.layer == "weighted":
            stacked = torch.stack(out.hidden_states, dim=0)  # (L+1, B, T, E)
            return masked_mean(stacked, out.padding_mask).transpose(0, 1)  # (B, L+1, E)
        return masked_mean(out.hidden_states[self.layer], out.padding_mask).unsqueeze(1)

    pool = features

    def classify(self, pooled: Tensor) -> Tensor:
        """(B, S, E) pooled features -> (B, num_classes) logits."""
        if self.layer == "weighted":
            features = torch.einsum("s,bse->be", self.layer_weights().to(pooled.dtype), pooled)
        else:
            features = pooled[:, 0]
        return self.linear(self._standardize(features.float()))


class FrameClassifier(LayerHead):
    """Frame-level: reads ``layer`` of the encoder output and applies one linear layer to every frame.

    Its outputs start at probability :data:`FRAME_PRIOR` (the bias), not 0.5: a few percent of
    (frame, key) pairs sound, and a sparse multi-label head started at that prior does not spend its
    first epochs unlearning 0.5 everywhere (the usual prior initialisation, Lin et al. 2017).
    """

    def __init__(self, hidden_sizes: tuple[int, ...], num_outputs: int, layer: str | int = "last",
                 standardize: bool = False, kind: str = "linear") -> None:
        super().__init__(hidden_sizes, num_outputs, layer, standardize, kind)
        last = self.linear[-1] if isinstance(self.linear, nn.Sequential) else self.linear
        nn.init.constant_(last.bias, math.log(FRAME_PRIOR / (1 - FRAME_PRIOR)))

    def features(self, out: EncoderOutput) -> Tensor:
        """Encoder output -> (B, T, E) frames, or (B, L+1, T, E) for ``weighted``."""
        if self.layer == "last":
            return out.last_hidden_state
        assert out.hidden_states is not None, "the encoder must return hidden states for this head"
        if self.layer == "weighted":
            return torch.stack(out.hidden_states, dim=1)
        return out.hidden_states[self.layer]

    def classify(self, frames: Tensor) -> Tensor:
        """(B, T, E) (or (B, L+1, T, E)) frame features -> (B, T, num_outputs) logits."""
        if self.layer == "weighted":
            frames = torch.einsum("l,blte->bte", self.layer_weights().to(frames.dtype), frames)
        batch, count, width = frames.shape
        standardized = self._standardize(frames.float().reshape(batch * count, width))
        return self.linear(standardized).reshape(batch, count, -1)


def make_head(per_frame: bool, hidden_sizes: tuple[int, ...], num_outputs: int, layer: str | int = "last",
              standardize: bool = False, kind: str = "linear") -> LayerHead:
    """A frame-level head for frame-level tasks, else a mean-pooled one; ``kind``: linear or mlp."""
    head = FrameClassifier if per_frame else PooledClassifier
    return head(hidden_sizes, num_outputs, layer, standardize, kind)
