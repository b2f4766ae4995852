"""Long audio through an encoder that attends over its whole input: overlapping windows, stitched frame by frame.

An attention encoder's memory grows with the square of its input, so a long recording runs as
windows of ``window_seconds`` whose starts are whole multiples of the encoder's hop: frame i
of a window starting at frame s *is* global frame s + i. Windows overlap by
``2 * context_seconds``, and each frame is taken from the window in which it has the most
context on both sides (the first and last window count the audio's own edges as full
context). The output has exactly the frames of a whole-input pass, each seeing at least
``context_seconds`` of audio either side where the audio has it, and the memory a window
needs, whatever the recording's length. Encoders whose frames are independent of each other
(``needs_windows`` False: CREPE, PESTO) run whole.

The HEAR API and the whole-recording test of frame-level tasks both run through
:func:`run_in_windows`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .encoder import Encoder


def window_owners(num_frames: int, window: int, context: int) -> tuple[list[int], Tensor]:
    """Window starts (frames) covering ``num_frames``, and (T,) the window each frame is taken from."""
    hop = window - 2 * context
    starts = list(range(0, num_frames - window, hop))
    starts.append(num_frames - window)  # the last window ends with the audio
    t = torch.arange(num_frames)
    s = torch.tensor(starts)[:, None]  # (K, 1)
    inf = torch.tensor(num_frames + 1)
    left = torch.where(s == 0, inf, t - s)
    right = torch.where(s + window >= num_frames, inf, s + window - 1 - t)
    inside = (t >= s) & (t < s + window)
    score = torch.where(inside, torch.minimum(left, right), torch.tensor(-1))
    return starts, score.argmax(dim=0)


def window_frames(encoder: Encoder, window_seconds: float, context_seconds: float) -> tuple[int, int]:
    """(frames per window, frames of context) at the encoder's own rate; ValueError if no frame is left."""
    window = encoder.num_frames(round(window_seconds * encoder.sample_rate), encoder.sample_rate)
    context = round(context_seconds * encoder.sample_rate / encoder.hop_samples)
    if window - 2 * context < 1:
        raise ValueError("the window must exceed 2 * context_seconds by at least one frame")
    return window, context


def run_in_windows(fn: Callable[[Tensor], Tensor], audio: Tensor, encoder: Encoder, window_seconds: float | None,
                   context_seconds: float, max_windows_per_forward: int = 16) -> Tensor:
    """(n, samples) audio at ``encoder.sample_rate`` -> (n, T, D): ``fn`` maps (m, samples) audio to
    (m, frames, D) per-frame outputs of ``encoder`` (embeddings, a head's logits). ``window_seconds``
    None, or an encoder without ``needs_windows``: one pass over the whole input."""
    if audio.shape[1] < encoder.min_samples:
        audio = nn.functional.pad(audio, (0, encoder.min_samples - audio.shape[1]))
    num_frames = encoder.num_frames(audio.shape[1], encoder.sample_rate)
    if window_seconds is None or not encoder.needs_windows:
        return fn(audio)
    window, context = window_frames(encoder, window_seconds, context_seconds)
    if num_frames <= window:
        return fn(audio)
    starts, owner = window_owners(num_frames, window, context)
    window_samples = (window - 1) * encoder.hop_samples + encoder.min_samples
    n = audio.shape[0]
    out = None
    for k0 in range(0, len(starts), max_windows_per_forward):
        ks = list(range(k0, min(k0 + max_windows_per_forward, len(starts))))
        pieces = torch.stack([audio[:, starts[k] * encoder.hop_samples:][:, :window_samples] for k in ks], 1)
        outputs = fn(pieces.reshape(n * len(ks), window_samples))  # (n*k, window, D)
        assert outputs.shape[1] == window, "window frames must match the frame arithmetic"
        outputs = outputs.reshape(n, len(ks), window, -1)
        if out is None:
            out = outputs.new_empty(n, num_frames, outputs.shape[-1])
        for j, k in enumerate(ks):
            frames = torch.nonzero(owner == k).squeeze(1)
            out[:, frames] = outputs[:, j, frames - starts[k]]
    return out
