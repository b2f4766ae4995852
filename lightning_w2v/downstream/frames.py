"""Frame-level multi-label tasks (polyphonic transcription): targets at the encoder's frames, and the metrics.

- **Targets.** A batch carries notes (onset, offset in seconds, MIDI pitch, instrument); at
  each of the encoder's frames (its own centres, ``Encoder.frame_times``) a pitch is active
  when a note of it sounds there (``onset <= t < offset``), and so is its instrument. The
  outputs are the 88 piano keys (MIDI 21..108), then, for MusicNet, its 11 instruments.
- **Frame metrics** (MusicNet's convention, Thickstun et al. 2017): ``frame_ap`` is the
  micro-averaged average precision over all (frame, pitch) pairs; ``frame_precision``,
  ``frame_recall``, ``frame_f1`` count (frame, pitch) pairs at probability >= 0.5, as
  ``mir_eval.multipitch`` does on the same frames (the tests check it).
- **Notes.** :func:`decode_notes` is a frame-threshold decoder: per pitch, every run of frames
  whose probability is >= 0.5 is one note, from the first frame's time to the time of the
  frame after the run; runs shorter than ``min_frames`` are dropped. Notes are scored with
  ``mir_eval.transcription.precision_recall_f1_overlap`` against the annotated notes:
  ``note_f1`` with a 50 ms onset tolerance and offsets ignored, ``note_with_offset_f1`` with
  offsets too (within 20% of the note's length or 50 ms). Both are per recording, averaged
  over the test recordings.
- **Instruments** (MusicNet): ``instrument_map`` is the mean over instruments of the average
  precision of their frame activity, over the instruments present in the test frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAveragePrecision

from ..data.formats import PIANO_KEYS, pitch_name
from .spec import FRAMES, TaskSpec

THRESHOLD = 0.5
NUM_KEYS = PIANO_KEYS[1] - PIANO_KEYS[0] + 1  # 88


def frame_targets(notes: Tensor, batch: int, times: Tensor, instruments: tuple[int, ...]) -> Tensor:
    """(N, 5) notes [item, onset, offset, pitch, program] and (T,) frame centres in seconds ->
    (B, T, 88 + len(instruments)) multi-hot targets (pitches outside the 88 keys, and instruments
    not listed, are left out)."""
    count = NUM_KEYS + len(instruments)
    targets = torch.zeros(batch, len(times), count, device=times.device)
    if len(notes) == 0:
        return targets
    notes = notes.to(times.device)
    item, onset, offset, pitch, program = notes.unbind(-1)
    active = (times[None, :] >= onset[:, None]) & (times[None, :] < offset[:, None])  # (N, T)
    key = pitch.long() - PIANO_KEYS[0]
    rows, frames = active.nonzero(as_tuple=True)
    item = item.long()[rows]
    on_keys = (key[rows] >= 0) & (key[rows] < NUM_KEYS)
    targets[item[on_keys], frames[on_keys], key[rows][on_keys]] = 1.0
    if instruments:
        lookup = torch.full((int(program.max().item()) + 2,), -1, dtype=torch.long, device=times.device)
        for position, code in enumerate(instruments):
            if code < len(lookup):
                lookup[code] = position
        slot = lookup[program.long()[rows]]
        known = slot >= 0
        targets[item[known], frames[known], NUM_KEYS + slot[known]] = 1.0
    return targets


class FrameCounts(Metric):
    """Precision, recall and F1 of (frame, output) pairs at a probability threshold.

    ``update(probabilities, targets, valid)``: (B, T, K) probabilities and 0/1 targets of the
    outputs it scores, and the (B, T) frames to count.
    """

    full_state_update = False

    def __init__(self, which: str, threshold: float = THRESHOLD, **kwargs) -> None:
        super().__init__(**kwargs)
        self.which, self.threshold = which, threshold
        for name in ("true_positives", "predicted", "actual"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probabilities: Tensor, targets: Tensor, valid: Tensor) -> None:
        predicted = (probabilities >= self.threshold) & valid[..., None]
        actual = (targets > 0.5) & valid[..., None]
        self.true_positives += (predicted & actual).sum()
        self.predicted += predicted.sum()
        self.actual += actual.sum()

    def compute(self) -> Tensor:
        precision = self.true_positives / self.predicted.clamp_min(1)
        recall = self.true_positives / self.actual.clamp_min(1)
        if self.which == "precision":
            return precision.float()
        if self.which == "recall":
            return recall.float()
        return (2 * precision * recall / (precision + recall).clamp_min(1e-12)).float()


class FrameAveragePrecision(Metric):
    """Micro-averaged average precision over every (frame, output) pair of the outputs it scores
    (torchmetrics' binary AP, which keeps every pair: the test frames of a data set fit in memory)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.average_precision = BinaryAveragePrecision()

    def update(self, probabilities: Tensor, targets: Tensor, valid: Tensor) -> None:
        keep = valid[..., None].expand_as(probabilities)
        self.average_precision.update(probabilities[keep].float(), targets[keep].long())

    def compute(self) -> Tensor:
        return self.average_precision.compute()

    def reset(self) -> None:
        super().reset()
        self.average_precision.reset()


class MeanAveragePrecision(Metric):
    """Mean over outputs of each output's average precision over the frames, among the outputs with
    at least one active frame (an instrument absent from the frames has no AP)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("probabilities", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, probabilities: Tensor, targets: Tensor, valid: Tensor) -> None:
        self.probabilities.append(probabilities[valid].float())
        self.targets.append(targets[valid].float())

    def compute(self) -> Tensor:
        from torchmetrics.functional.classification import binary_average_precision

        probabilities = torch.cat(self.probabilities) if isinstance(self.probabilities, list) else self.probabilities
        targets = torch.cat(self.targets) if isinstance(self.targets, list) else self.targets
        present = [k for k in range(targets.shape[-1]) if targets[:, k].sum() > 0]
        if not present:
            return torch.tensor(float("nan"))
        per_output = [binary_average_precision(probabilities[:, k], targets[:, k].long()) for k in present]
        return torch.stack(per_output).mean()


class Slice(Metric):
    """Feeds one slice of the outputs (e.g. the 88 keys) to a metric."""

    full_state_update = False

    def __init__(self, metric: Metric, start: int, stop: int) -> None:
        super().__init__()
        self.metric, self.start, self.stop = metric, start, stop

    def update(self, probabilities: Tensor, targets: Tensor, valid: Tensor) -> None:
        self.metric.update(probabilities[..., self.start:self.stop], targets[..., self.start:self.stop], valid)

    def compute(self) -> Tensor:
        return self.metric.compute()

    def reset(self) -> None:
        super().reset()
        self.metric.reset()


def decode_notes(probabilities: np.ndarray, times: np.ndarray, frame_period: float,
                 threshold: float = THRESHOLD, min_frames: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(T, 88) key probabilities and (T,) frame centres -> note intervals (N, 2) in seconds and MIDI pitches (N,).

    Every run of frames at or above ``threshold`` of one key is a note from its first frame's time to
    the time of the frame after its last (one ``frame_period`` later)."""
    intervals, pitches = [], []
    active = probabilities >= threshold
    for key in range(active.shape[1]):
        column = np.concatenate([[False], active[:, key], [False]])
        edges = np.flatnonzero(np.diff(column.astype(np.int8)))
        for start, stop in zip(edges[0::2], edges[1::2]):
            if stop - start >= min_frames:
                intervals.append((times[start], times[stop - 1] + frame_period))
                pitches.append(PIANO_KEYS[0] + key)
    return np.array(intervals, dtype=np.float64).reshape(-1, 2), np.array(pitches, dtype=np.int64)


def midi_to_hz(pitch: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def note_scores(probabilities: np.ndarray, times: np.ndarray, frame_period: float,
                reference: np.ndarray) -> dict[str, float]:
    """``note_f1`` (onsets within 50 ms) and ``note_with_offset_f1`` of the decoded notes of one recording
    against its annotated notes (``reference``: (N, 4) onset, offset, pitch, program), by mir_eval."""
    import mir_eval

    intervals, pitches = decode_notes(probabilities, times, frame_period)
    keys = (reference[:, 2] >= PIANO_KEYS[0]) & (reference[:, 2] <= PIANO_KEYS[1]) if len(reference) else []
    ref_intervals = reference[keys][:, :2] if len(reference) else np.zeros((0, 2))
    ref_pitches = midi_to_hz(reference[keys][:, 2]) if len(reference) else np.zeros(0)
    est_pitches = midi_to_hz(pitches)
    scores = {}
    for name, offset_ratio in (("note_f1", None), ("note_with_offset_f1", 0.2)):
        if len(ref_intervals) == 0 and len(intervals) == 0:
            scores[name] = 1.0
        elif len(ref_intervals) == 0 or len(intervals) == 0:
            scores[name] = 0.0
        else:
            _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
                ref_intervals, ref_pitches, intervals, est_pitches, onset_tolerance=0.05, offset_ratio=offset_ratio)
            scores[name] = float(f1)
    return scores


@dataclass(frozen=True)
class FrameTaskSpec(TaskSpec):
    """A frame-level transcription task: 88 key outputs, then one per listed instrument (``instruments``:
    General MIDI programs, MusicNet's 11; none for MAESTRO's piano)."""

    instruments: tuple[int, ...] = ()
    instrument_names: tuple[str, ...] = field(default=())

    @property
    def num_keys(self) -> int:
        return NUM_KEYS

    def targets(self, batch: dict, frame_times: Tensor | None = None) -> Tensor:
        return frame_targets(batch["notes"], batch["waveforms"].shape[0], frame_times, self.instruments)

    def metric_inputs(self, outputs: Tensor, targets: Tensor, valid: Tensor | None) -> tuple:
        if valid is None:
            valid = torch.ones(outputs.shape[:2], dtype=torch.bool, device=outputs.device)
        return (torch.sigmoid(outputs.float()), targets, valid)

    def loss(self, outputs: Tensor, targets: Tensor, valid: Tensor | None = None) -> Tensor:
        losses = nn.functional.binary_cross_entropy_with_logits(outputs.float(), targets, reduction="none")
        if valid is None:
            return losses.mean()
        weights = valid[..., None].expand_as(losses).float()
        return (losses * weights).sum() / weights.sum().clamp_min(1)

    def metrics(self, stage: str) -> MetricCollection:
        keys = (0, NUM_KEYS)
        metrics: dict[str, Any] = {"frame_f1": Slice(FrameCounts("f1"), *keys)}
        if stage != "train":  # AP keeps every (frame, key) pair: only for the smaller splits
            metrics["frame_ap"] = Slice(FrameAveragePrecision(), *keys)
        if stage == "test":
            metrics["frame_precision"] = Slice(FrameCounts("precision"), *keys)
            metrics["frame_recall"] = Slice(FrameCounts("recall"), *keys)
            if self.instruments:
                metrics["instrument_map"] = Slice(MeanAveragePrecision(), NUM_KEYS, NUM_KEYS + len(self.instruments))
        return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)

    def recording_scores(self, probabilities: np.ndarray, times: np.ndarray, frame_period: float,
                         notes: np.ndarray) -> dict[str, float]:
        """Scores of one whole test recording (note F1s), averaged over recordings by the module."""
        return note_scores(probabilities[:, :NUM_KEYS], times, frame_period, notes)


def key_names() -> tuple[str, ...]:
    return tuple(pitch_name(m) for m in range(PIANO_KEYS[0], PIANO_KEYS[1] + 1))


def make_frame_spec(name: str, instruments: dict[int, str] | None = None, demo_config: str = "",
                    full_config: str = "") -> FrameTaskSpec:
    instruments = instruments or {}
    return FrameTaskSpec(name=name, label_kind=FRAMES, num_outputs=NUM_KEYS + len(instruments),
                         class_names=key_names() + tuple(instruments.values()), axis_label="MIDI note",
                         demo_config=demo_config, full_config=full_config, primary_metric="frame_ap",
                         budget_arg="train_minutes", budget_unit="minutes of labelled audio", monitor="frame_ap",
                         report_metrics=("frame_ap", "frame_f1", "note_f1", "note_with_offset_f1", "instrument_map"),
                         instruments=tuple(instruments), instrument_names=tuple(instruments.values()))
