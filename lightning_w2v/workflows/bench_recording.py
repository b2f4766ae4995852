"""``lightning-w2v bench --whole-recording SECONDS``: the memory and speed of testing one whole recording.

A frame-level task tests each recording whole, in overlapping windows stitched frame by frame
(:mod:`lightning_w2v.models.windows`), exactly as :class:`~lightning_w2v.tasks.FinetuneModule`
does: the encoder of ``preset`` (untrained: the cost does not depend on the weights) and a
linear frame head over MusicNet's 99 outputs, on ``seconds`` of synthetic 16 kHz audio,
``windows_per_forward`` windows per encoder pass (the module's default, 4).

It reports the process's peak resident memory during the pass above what it held before
(Linux's ``VmHWM``, reset through ``/proc/self/clear_refs``; on CUDA, the peak allocated),
the audio's own size for comparison, and the real-time factor (audio seconds per second of
wall time). Run it once per length, each in its own process, to compare lengths: the peak
above the audio itself should not grow with the recording.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..downstream import task_spec
from ..models.backbone import Wav2Vec2Backbone
from ..models.config import preset_config
from ..models.windows import run_in_windows
from ..tasks.heads import FrameClassifier
from ..vocabulary import SAMPLE_RATE


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


@torch.no_grad()
def whole_recording_benchmark(seconds: float, preset: str = "base", device: str = "auto",
                              window_seconds: float = 10.0, context_seconds: float = 2.5,
                              windows_per_forward: int = 4, seed: int = 0) -> dict[str, Any]:
    """The cost of one whole-recording test pass (see the module docstring); returns the figures."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    torch.manual_seed(seed)
    encoder = Wav2Vec2Backbone(preset_config(preset)).to(dev).eval()
    head = FrameClassifier(encoder.hidden_sizes, task_spec("musicnet_transcription").num_outputs).to(dev).eval()
    audio = 0.1 * torch.randn(1, round(seconds * SAMPLE_RATE), device=dev)

    passes: list[tuple[int, int]] = []  # (windows, samples) of every encoder pass

    def outputs_of(pieces: torch.Tensor) -> torch.Tensor:
        passes.append(tuple(pieces.shape))
        return head(encoder(pieces))

    run_in_windows(outputs_of, audio[:, :round(window_seconds * SAMPLE_RATE)], encoder, window_seconds,
                   context_seconds, windows_per_forward)  # warm up: allocator and kernels at the window's size
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    else:
        _reset_peak()
        before = (_status_kib("VmRSS") or 0) * 1024
    passes.clear()
    started = time.perf_counter()
    outputs = run_in_windows(outputs_of, audio, encoder, window_seconds, context_seconds, windows_per_forward)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        peak = max((_status_kib("VmHWM") or 0), (_status_kib("VmRSS") or 0)) * 1024  # VmHWM may lag behind
    wall = time.perf_counter() - started
    return {"device": dev.type, "preset": preset, "seconds": seconds, "frames": int(outputs.shape[1]),
            "window_seconds": window_seconds, "context_seconds": context_seconds,
            "windows_per_forward": windows_per_forward, "encoder_passes": len(passes),
            "largest_pass": list(max(passes, key=lambda shape: shape[0] * shape[1])),
            "threads": torch.get_num_threads(), "wall_s": wall, "realtime_factor": seconds / wall,
            "memory_before_bytes": int(before), "peak_bytes": int(peak),
            "peak_above_before_bytes": int(peak - before),
            "audio_bytes": int(audio.numel() * audio.element_size()),
            "memory_kind": "cuda_max_memory_allocated" if dev.type == "cuda" else "process VmHWM (peak RSS)"}


def format_recording(result: dict[str, Any]) -> str:
    mib = 2 ** 20
    return (f"whole recording of {result['seconds']:.0f} s ({result['frames']} frames), {result['preset']} on "
            f"{result['device']} ({result['threads']} threads): {result['wall_s']:.1f} s, real-time factor "
            f"{result['realtime_factor']:.1f}; peak memory {result['peak_above_before_bytes'] / mib:.0f} MiB above "
            f"the {result['memory_before_bytes'] / mib:.0f} MiB held before (the audio itself: "
            f"{result['audio_bytes'] / mib:.1f} MiB; {result['memory_kind']})")
