"""What the wav2vec 2.0 relatives change in the backbone: data2vec-audio's positional convs and the
input conventions (sample rate, waveform normalisation) that a checkpoint brings.

WavLM's gated relative position bias lives in torchaudio's ``WavLMSelfAttention``; the backbone
only has to carry it from layer to layer (see ``Wav2Vec2Backbone.transform``).
"""
from __future__ import annotations

import math

import torch
import torchaudio
from torch import Tensor, nn

from ..vocabulary import SAMPLE_RATE


class PositionalConvLayer(nn.Module):
    """One of data2vec-audio's positional convs: grouped conv, LayerNorm without weights, GELU."""

    def __init__(self, embed_dim: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(embed_dim, embed_dim, kernel_size, padding=kernel_size // 2, groups=groups)
        self.trim = 1 if kernel_size % 2 == 0 else 0  # an even kernel gives one frame too many
        self.layer_norm = nn.LayerNorm(embed_dim, elementwise_affine=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, E, T) -> (B, E, T)
        x = self.conv(x)
        if self.trim:
            x = x[..., :-self.trim]
        x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return nn.functional.gelu(x)


class StackedPositionalEmbedding(nn.Module):
    """data2vec-audio's relative positional embedding: ``layers`` convs in a row (5 of kernel 19),
    where wav2vec 2.0 has one weight-normed conv of kernel 128. Replaces torchaudio's
    ``ConvolutionalPositionalEmbedding`` in the Transformer."""

    def __init__(self, embed_dim: int, kernel_size: int, groups: int, layers: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim  # torchaudio's Transformer reads it
        self.layers = nn.ModuleList(PositionalConvLayer(embed_dim, kernel_size, groups) for _ in range(layers))

    def forward(self, x: Tensor) -> Tensor:  # (B, T, E) -> (B, T, E)
        x = x.transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        return x.transpose(1, 2)


def resampled_lengths(lengths: Tensor, from_rate: int, to_rate: int) -> Tensor:
    """(B,) lengths at ``from_rate`` -> at ``to_rate``: ``ceil(n * new / old)``, as torchaudio's resampler."""
    divisor = math.gcd(from_rate, to_rate)
    old, new = from_rate // divisor, to_rate // divisor
    return (lengths * new + old - 1) // old


def normalize_per_clip(waveforms: Tensor, lengths: Tensor | None, eps: float = 1e-7) -> Tensor:
    """(B, S) -> zero mean and unit variance over each row's valid samples, padding set to 0.

    transformers' ``Wav2Vec2FeatureExtractor(do_normalize=True)`` (and fairseq's ``normalize``)
    do this per clip, so a padded batch gives each clip what it would give alone.
    """
    if lengths is None:
        mean = waveforms.mean(dim=-1, keepdim=True)
        var = waveforms.var(dim=-1, unbiased=False, keepdim=True)
        return (waveforms - mean) / torch.sqrt(var + eps)
    valid = torch.arange(waveforms.shape[-1], device=waveforms.device)[None, :] < lengths[:, None]  # (B, S)
    count = lengths.clamp(min=1)[:, None].to(waveforms.dtype)
    mean = (waveforms * valid).sum(dim=-1, keepdim=True) / count
    var = (((waveforms - mean) * valid) ** 2).sum(dim=-1, keepdim=True) / count
    return ((waveforms - mean) / torch.sqrt(var + eps)).masked_fill(~valid, 0.0)


def to_model_input(waveforms: Tensor, lengths: Tensor | None, model_rate: int, normalize: bool,
                   input_rate: int = SAMPLE_RATE) -> tuple[Tensor, Tensor | None]:
    """Audio (B, S) at ``input_rate`` (the data's 16 kHz) -> what a checkpoint was trained on:
    resampled to its ``model_rate`` (on the fly, on the audio's device), then normalised per
    clip where it normalises. Runs in float32 outside autocast: a bf16 resampler or variance
    loses the signal."""
    if model_rate == input_rate and not normalize:
        return waveforms, lengths
    with torch.autocast(waveforms.device.type, enabled=False):
        waveforms = waveforms.float()
        if model_rate != input_rate:
            waveforms = torchaudio.functional.resample(waveforms, input_rate, model_rate)
            if lengths is not None:
                lengths = resampled_lengths(lengths, input_rate, model_rate)
        if normalize:
            waveforms = normalize_per_clip(waveforms, lengths)
    return waveforms, lengths
