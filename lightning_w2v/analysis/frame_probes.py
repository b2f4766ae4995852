"""Linear frame probes of transcription: how much of the 88 keys sounding at each frame can a linear map read?

The frame-level counterpart of :mod:`lightning_w2v.analysis.probes`: a fixed set of labelled
MusicNet-format windows is embedded (eval mode, no gradients), every frame of every
representation (the frontend's output and each hidden state) is a sample, and one
multi-label logistic regression (one sigmoid per key) is fitted on standardised features of
the fit windows with L-BFGS in float64 on the CPU, then scored on the eval windows' frames by
micro-averaged frame AP (MusicNet's metric). Targets sit at each representation's own frame
times (:func:`lightning_w2v.downstream.frames.frame_targets`).

Baselines on the same windows: the untrained encoder of the same architecture, 128 log-mel
bands at the encoder's frame hop, and the key prior (every frame scored by how often its key
sounds in the fit frames).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..downstream.frames import NUM_KEYS, frame_targets
from ..encoders import untrained_like
from ..models.encoder import Encoder
from ..models.logmel import LogMelEncoder
from .probes import layer_outputs

TASK = "transcription_ap"  # the task's name in probe.csv: its values are frame APs, not accuracies


@torch.no_grad()
def frame_features(encoder: Encoder, waveforms: Tensor, notes: Tensor, batch_size: int = 8,
                   device: torch.device | str = "cpu") -> dict[str, tuple[Tensor, Tensor]]:
    """(N, S) equal-length windows and their (M, 5) notes -> ``{name: (frames (N*T, D), keys (N*T, 88))}``."""
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for name, frames in layer_outputs(encoder, waveforms, batch_size, device).items():  # each (N, T, D)
        times = encoder.frame_times(frames.shape[1]).float()
        keys = frame_targets(notes, len(frames), times, ())[..., :NUM_KEYS]  # (N, T, 88)
        out[name] = (frames.reshape(-1, frames.shape[-1]), keys.reshape(-1, NUM_KEYS))
    return out


def fit_multilabel_regression(x: Tensor, y: Tensor, iterations: int = 100, l2: float = 1e-3
                              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One sigmoid per output on standardised ``x`` (N, D) for 0/1 ``y`` (N, K): ``(weight (D, K), bias (K,),
    mean (D,), std (D,))``, by L-BFGS in float64 on the CPU (the result depends only on the inputs)."""
    x = x.detach().to("cpu", torch.float64)
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
    z = (x - mean) / std
    targets = y.detach().to("cpu", torch.float64)
    prior = targets.mean(dim=0).clamp(1e-4, 1 - 1e-4)
    weight = torch.zeros(z.shape[1], targets.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.log(prior / (1 - prior)).clone().requires_grad_(True)  # start at each key's prior
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ weight + bias, targets)
        loss = loss + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach(), mean, std


def average_precision(scores: Tensor, targets: Tensor) -> float:
    """Micro-averaged AP over every (frame, key) pair (torchmetrics' binary AP)."""
    from torchmetrics.functional.classification import binary_average_precision

    return float(binary_average_precision(scores.reshape(-1).float(), targets.reshape(-1).long()))


def frame_probe_ap(fit: tuple[Tensor, Tensor], scored: tuple[Tensor, Tensor], iterations: int = 100) -> float:
    """Frame AP on ``scored`` (frames, keys) of the regression fitted on ``fit`` (frames, keys)."""
    weight, bias, mean, std = fit_multilabel_regression(*fit, iterations=iterations)
    z = (scored[0].to(torch.float64) - mean) / std
    return average_precision(torch.sigmoid(z @ weight + bias), scored[1])


def probe_frames(encoder: Encoder, fit: tuple[Tensor, Tensor], scored: tuple[Tensor, Tensor], iterations: int = 100,
                 device: torch.device | str = "cpu") -> dict[str, float]:
    """``{feature: frame AP}`` of every representation of ``encoder`` (plus ``best``); ``fit`` and
    ``scored``: (windows (N, S), notes (M, 5))."""
    fit_features = frame_features(encoder, *fit, device=device)
    scored_features = frame_features(encoder, *scored, device=device)
    row = {name: frame_probe_ap(fit_features[name], scored_features[name], iterations) for name in fit_features}
    row["best"] = max(row.values())
    return row


def frame_baselines(encoder: Encoder, fit: tuple[Tensor, Tensor], scored: tuple[Tensor, Tensor], seed: int = 0,
                    iterations: int = 100, device: torch.device | str = "cpu") -> dict[str, float]:
    """``{baseline: frame AP}``: the untrained encoder's best representation, log-mel frames at the encoder's
    hop, and the key prior."""
    untrained = untrained_like(encoder, seed).to(device)
    logmel = LogMelEncoder(encoder.hop_samples)
    mel_fit, mel_scored = frame_features(logmel, *fit), frame_features(logmel, *scored)
    name = next(iter(mel_fit))
    keys_fit, keys_scored = mel_fit[name][1], mel_scored[name][1]
    prior = keys_fit.float().mean(dim=0)  # (88,) how often each key sounds in the fit frames
    return {"untrained": probe_frames(untrained, fit, scored, iterations, device)["best"],
            "logmel": frame_probe_ap(mel_fit[name], mel_scored[name], iterations),
            "majority": average_precision(prior.expand_as(keys_scored), keys_scored)}
