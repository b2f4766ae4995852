"""Linear probes of an encoder's layers, and the baselines a probe must beat.

A probe answers: how much pitch (or instrument family) can a linear classifier read off a
representation? Here every representation is the mean over time of one layer's output for
one note (the feature encoder's output where the encoder has one, e.g. wav2vec 2.0's CNN, and
each hidden state: for wav2vec 2.0, 0 = Transformer input, i = layer i). The
classifier is a full-batch multinomial logistic regression on standardised features
(train-set mean and std), fitted with L-BFGS for a fixed number of iterations in float64
on the CPU: the same notes and features always give the same accuracy.

Baselines on the same notes, with the same regression:

- ``untrained``: an encoder of the same architecture, freshly initialised with a fixed seed;
- ``logmel``: the mean and standard deviation over time of a 128-band log-mel spectrogram;
- ``majority``: always answer the training notes' most frequent class.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
import torchaudio
from torch import Tensor

from ..encoders import untrained_like
from ..models.encoder import Encoder
from ..vocabulary import SAMPLE_RATE

# Updates between the probes of a pre-training run by default (LinearProbe): one probe of `tiny`
# costs about 56 of its CPU steps (BENCHMARKS.md), so this keeps its share under 3%; a larger
# model's steps cost more against the same regressions, so its share is smaller.
DEFAULT_PROBE_INTERVAL = 2000

CNN = "cnn"


def layer_names(num_hidden_states: int, frontend: bool = True) -> list[str]:
    """Feature names of :func:`pooled_layer_features`: ``cnn`` (with a frontend), ``layer_0`` ..
    ``layer_{n-1}`` for ``n`` hidden states."""
    return ([CNN] if frontend else []) + [f"layer_{i}" for i in range(num_hidden_states)]


@torch.no_grad()
def layer_outputs(encoder: Encoder, waveforms: Tensor, batch_size: int, device: torch.device | str = "cpu",
                  per_batch: Callable[[Tensor], Tensor] = lambda value: value) -> dict[str, Tensor]:
    """(N, S) equal-length audio -> ``{name: per_batch of each (B, T, D) output, concatenated}`` for the
    frontend output and every hidden state, in batches of ``batch_size``.

    The encoder runs in eval mode (no dropout, no layerdrop, no masking) and is put back in
    the mode it was in.
    """
    was_training = encoder.training
    encoder.eval()
    names = layer_names(encoder.num_hidden_states, encoder.has_frontend)
    parts: dict[str, list[Tensor]] = {}
    try:
        for start in range(0, len(waveforms), batch_size):
            out = encoder(waveforms[start:start + batch_size].to(device), output_hidden_states=True)
            values = ([out.frontend] if encoder.has_frontend else []) + list(out.hidden_states)  # each (B, T, D)
            for name, value in zip(names, values):
                parts.setdefault(name, []).append(per_batch(value.float()).cpu())
    finally:
        encoder.train(was_training)
    return {name: torch.cat(pieces) for name, pieces in parts.items()}


def pooled_layer_features(encoder: Encoder, waveforms: Tensor, batch_size: int = 16,
                          device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """(N, S) equal-length notes -> ``{name: (N, D)}`` mean-pooled frontend output and hidden states
    (see :func:`layer_outputs`)."""
    return layer_outputs(encoder, waveforms, batch_size, device, per_batch=lambda value: value.mean(dim=1))


def logmel_statistics(waveforms: Tensor, n_mels: int = 128, batch_size: int = 64) -> Tensor:
    """(N, S) notes at 16 kHz -> (N, 2 * n_mels): mean and std over time of the log-mel bands."""
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=n_mels)
    out = []
    for start in range(0, len(waveforms), batch_size):
        logmel = torch.log(mel(waveforms[start:start + batch_size].float()) + 1e-6)  # (B, M, frames)
        out.append(torch.cat([logmel.mean(dim=-1), logmel.std(dim=-1)], dim=-1))
    return torch.cat(out)


def fit_logistic_regression(x: Tensor, y: Tensor, num_classes: int, iterations: int = 100,
                            l2: float = 1e-3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Full-batch multinomial logistic regression on standardised ``x`` (N, D), labels ``y`` (N,).

    Returns ``(weight (D, K), bias (K,), mean (D,), std (D,))``, the last two the
    standardisation. L-BFGS with strong-Wolfe line search, ``iterations`` steps, L2 penalty
    ``l2`` on the weights; float64 on the CPU, so the result depends only on the inputs.
    """
    x = x.detach().to("cpu", torch.float64)
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
    z = (x - mean) / std
    labels = y.detach().to("cpu", torch.long)
    weight = torch.zeros(z.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, labels) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach(), mean, std


def probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, iterations: int = 100,
                   l2: float = 1e-3) -> float:
    """Test accuracy of :func:`fit_logistic_regression` fitted on the training notes."""
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    weight, bias, mean, std = fit_logistic_regression(train_x, train_y, num_classes, iterations, l2)
    z = (test_x.detach().to("cpu", torch.float64) - mean) / std
    predicted = (z @ weight + bias).argmax(dim=1)
    return float((predicted == test_y.cpu()).double().mean())


def majority_accuracy(train_y: Tensor, test_y: Tensor) -> float:
    """Test accuracy of always answering the most frequent training class."""
    most = int(torch.bincount(train_y.cpu()).argmax())
    return float((test_y.cpu() == most).double().mean())


def probe_all(train: dict[str, Tensor], test: dict[str, Tensor], train_labels: dict[str, Tensor],
              test_labels: dict[str, Tensor], iterations: int = 100, l2: float = 1e-3) -> dict[str, dict[str, float]]:
    """``{task: {feature: accuracy}}`` for every task and every feature (plus ``best``)."""
    results: dict[str, dict[str, float]] = {}
    for task in train_labels:
        row = {name: probe_accuracy(train[name], train_labels[task], test[name], test_labels[task], iterations, l2)
               for name in train}
        row["best"] = max(row.values())
        results[task] = row
    return results


def baseline_accuracies(backbone: Encoder, train_waves: Tensor, test_waves: Tensor,
                        train_labels: dict[str, Tensor], test_labels: dict[str, Tensor], seed: int = 0,
                        iterations: int = 100, device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """``{baseline: {task: accuracy}}``: the untrained encoder's best layer, log-mel statistics, majority."""
    untrained = untrained_like(backbone, seed).to(device)
    probes = probe_all(pooled_layer_features(untrained, train_waves, device=device),
                       pooled_layer_features(untrained, test_waves, device=device),
                       train_labels, test_labels, iterations)
    mel_train, mel_test = logmel_statistics(train_waves), logmel_statistics(test_waves)
    out: dict[str, dict[str, float]] = {"untrained": {t: r["best"] for t, r in probes.items()}}
    out["logmel"] = {t: probe_accuracy(mel_train, train_labels[t], mel_test, test_labels[t], iterations)
                     for t in train_labels}
    out["majority"] = {t: majority_accuracy(train_labels[t], test_labels[t]) for t in train_labels}
    return out


def as_rows(results: dict[str, dict[str, float]], **columns: object) -> Iterable[dict[str, object]]:
    """Flatten ``{task: {feature: accuracy}}`` into CSV rows, with extra ``columns`` on each."""
    for task, row in results.items():
        for feature, accuracy in row.items():
            yield {**columns, "task": task, "feature": feature, "accuracy": round(accuracy, 6)}


def label_arrays(records: list[dict]) -> dict[str, Tensor]:
    """NSynth records -> ``{"pitch": MIDI (N,), "family": (N,)}`` label tensors."""
    return {"pitch": torch.as_tensor(np.array([r["pitch"] for r in records]), dtype=torch.long),
            "family": torch.as_tensor(np.array([r["instrument_family"] for r in records]), dtype=torch.long)}
