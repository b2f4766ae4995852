"""Polyphonic transcription: MusicNet and MAESTRO in their layouts, frame targets, metrics checked against
mir_eval and independent computations, whole recordings, the CLI, and every bad input's one line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_w2v.commands import main
from lightning_w2v.data.maestro import read_maestro_index, read_midi_notes, sustained_offsets
from lightning_w2v.data.notes import LabelFileError, Notes, read_musicnet_labels
from lightning_w2v.data.transcription import MaestroTranscriptionDataModule, MusicNetTranscriptionDataModule
from lightning_w2v.downstream import task_spec
from lightning_w2v.downstream.frames import (
    FrameAveragePrecision,
    FrameCounts,
    MeanAveragePrecision,
    decode_notes,
    frame_targets,
    midi_to_hz,
    note_scores,
)

mir_eval = pytest.importorskip("mir_eval")
HEADER = "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"


def independent_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision from its definition: the mean, over the positives, of the precision at each one's
    rank (distinct scores, so no ties)."""
    order = np.argsort(-scores)
    hits = labels[order] > 0
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].mean())


# ----------------------------------------------------------------------------- data
def test_musicnet_labels_in_the_archive_layout_load(demo_root):
    module = MusicNetTranscriptionDataModule(str(demo_root / "musicnet"), progress=False)
    module.prepare_data()
    module.setup("fit")
    module.setup("test")
    train, valid, test = (module.datasets[s] for s in ("train", "valid", "test"))
    assert len(valid.index.entries) == 1 and len(test.windows) == 3  # 8% of 8 held out; the 3 demo test pieces
    assert not {e.id for e in valid.index.entries} & {e.id for e in train.index.entries}
    assert all(w.length == module.window for w in train.windows)
    item = train[0]
    assert item["waveform"].shape == (module.window,) and item["notes"].shape[1] == 4
    assert (item["notes"][:, 0] >= 0).all() and (item["notes"][:, 1] <= 10.0 + 1e-9).all()
    again = MusicNetTranscriptionDataModule(str(demo_root / "musicnet"), seed=1, progress=False)
    again.setup("fit")
    assert [w.start for w in again.datasets["train"].windows] != [w.start for w in train.windows]  # other crops


def test_train_minutes_keeps_that_much_labelled_audio(demo_root):
    module = MusicNetTranscriptionDataModule(str(demo_root / "musicnet"), train_minutes=0.5, progress=False)
    module.prepare_data()
    module.setup("fit")
    assert module.datasets["train"].seconds() == pytest.approx(30.0)  # three 10 s windows


def test_maestro_in_its_layout_loads_with_the_sustain_pedal(demo_root):
    performances = read_maestro_index(demo_root / "maestro")
    assert [p.split for p in performances].count("train") == 3 and performances[0].midi.suffix == ".midi"
    module = MaestroTranscriptionDataModule(str(demo_root / "maestro"), progress=False)
    module.prepare_data()
    module.setup("fit")
    assert len(module.datasets["valid"].index.entries) == 1
    notes = read_midi_notes(performances[0].midi)
    assert set(notes.instrument.tolist()) == {1}
    held = (notes.offset > notes.onset + 0.85)  # a key released under the pedal rings until the pedal goes up
    assert held.any() and np.allclose(notes.offset[held].max(), 6.0)  # demo pedal: down at 3.6 s, up at 6 s


def test_the_sustain_convention_extends_offsets_until_the_pedal_or_the_same_key():
    pedal = [(1.0, True), (3.0, False)]
    # released before the pedal; under it (-> 3.0); under it but struck again at 2.5 (-> 2.5); after it
    onsets, offsets, pitches = [0.0, 1.5, 0.5, 2.5, 3.5], [0.8, 2.0, 1.2, 2.8, 4.0], [60, 62, 64, 64, 65]
    assert sustained_offsets(onsets, offsets, pitches, pedal) == [0.8, 3.0, 2.5, 3.0, 4.0]


def test_frame_targets_follow_the_encoders_frame_times():
    notes = torch.tensor([[0, 0.10, 0.35, 60, 41], [1, 0.0, 0.05, 21, 1], [0, 0.2, 0.3, 120, 74]])
    times = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
    targets = frame_targets(notes, 2, times, instruments=(1, 41, 74))
    assert targets.shape == (2, 5, 88 + 3)
    assert targets[0, :, 60 - 21].tolist() == [0, 1, 1, 1, 0]  # onset <= t < offset
    assert targets[0, :, 88 + 1].tolist() == [0, 1, 1, 1, 0]  # violin active with it
    assert targets[1, :, 0].tolist() == [1, 0, 0, 0, 0] and targets[1, :, 88].tolist() == [1, 0, 0, 0, 0]
    assert targets[0, :, 88 + 2].tolist() == [0, 0, 1, 0, 0]  # a pitch off the keyboard still marks its instrument
    assert targets.sum() == 3 + 3 + 1 + 1 + 1


# ----------------------------------------------------------------------------- metrics
def test_frame_precision_recall_f1_equal_mir_eval_multipitch():
    rng = np.random.default_rng(0)
    probabilities = rng.random((40, 88)) ** 3
    targets = (rng.random((40, 88)) < 0.05).astype(np.float32)
    targets[5:9, 10] = 1
    probabilities[5:9, 10] = 0.9
    valid = torch.ones(1, 40, dtype=torch.bool)
    ours = {}
    for which in ("precision", "recall", "f1"):
        metric = FrameCounts(which)
        metric.update(torch.from_numpy(probabilities)[None], torch.from_numpy(targets)[None], valid)
        ours[which] = float(metric.compute())
    times = np.arange(40) * 0.02
    as_freqs = [lambda roll: [midi_to_hz(21 + np.flatnonzero(row)) for row in roll]][0]
    scores = mir_eval.multipitch.metrics(times, as_freqs(targets > 0), times, as_freqs(probabilities >= 0.5))
    assert ours["precision"] == pytest.approx(scores[0], abs=1e-6)
    assert ours["recall"] == pytest.approx(scores[1], abs=1e-6)
    assert ours["f1"] == pytest.approx(2 * scores[0] * scores[1] / (scores[0] + scores[1]), abs=1e-6)


def test_frame_ap_and_instrument_map_equal_independent_computations():
    rng = np.random.default_rng(1)
    probabilities = rng.random((2, 30, 5))
    targets = (rng.random((2, 30, 5)) < 0.3).astype(np.float32)
    targets[..., 4] = 0  # an instrument that never plays has no AP and is left out of the mean
    valid = torch.ones(2, 30, dtype=torch.bool)
    valid[1, 25:] = False  # padding frames are not counted
    ap = FrameAveragePrecision()
    mean_ap = MeanAveragePrecision()
    for metric in (ap, mean_ap):
        metric.update(torch.from_numpy(probabilities), torch.from_numpy(targets), valid)
    keep = valid.numpy()
    assert float(ap.compute()) == pytest.approx(independent_ap(probabilities[keep].ravel(), targets[keep].ravel()),
                                                abs=1e-6)
    per_output = [independent_ap(probabilities[keep][:, k], targets[keep][:, k]) for k in range(4)]
    assert float(mean_ap.compute()) == pytest.approx(np.mean(per_output), abs=1e-6)


def test_the_decoder_and_note_f1_on_a_hand_made_roll():
    probabilities = np.zeros((20, 88))
    probabilities[2:6, 39] = 0.9  # C4 from frame 2 to 5
    probabilities[10:12, 43] = 0.7  # E4
    probabilities[15, 50] = 0.4  # below the threshold: no note
    times = np.arange(20) * 0.1
    intervals, pitches = decode_notes(probabilities, times, 0.1)
    assert pitches.tolist() == [60, 64]
    np.testing.assert_allclose(intervals, [[0.2, 0.6], [1.0, 1.2]])
    reference = np.array([[0.21, 0.6, 60, 1], [1.2, 1.5, 64, 1], [1.6, 1.8, 67, 1]])  # E4 too late, G4 missed
    scores = note_scores(probabilities, times, 0.1, reference)
    assert scores["note_f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    expected = mir_eval.transcription.precision_recall_f1_overlap(
        reference[:, :2], midi_to_hz(reference[:, 2]), intervals, midi_to_hz(pitches), offset_ratio=0.2)[2]
    assert scores["note_with_offset_f1"] == pytest.approx(expected)


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def transcription_run(demo_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("transcription") / "run"
    code = main(["fit", "--config", "finetune/demo_transcription", "--config", "finetune/policy/fe",
                 "--model.init_args.encoder.source", "random", "--model.init_args.encoder.preset", "tiny",
                 "--data.init_args.root", str(demo_root / "musicnet"), "--trainer.max_epochs=3",
                 f"--trainer.default_root_dir={run}", "--trainer.enable_progress_bar=false"])
    assert code == 0
    return run


def test_fit_writes_the_five_metrics_and_predictions_that_recompute_them(transcription_run):
    summary = json.loads((transcription_run / "test_metrics.json").read_text())
    assert summary["task"] == "musicnet_transcription" and summary["encoder"] == "random"
    metrics = summary["metrics"]
    for name in ("frame_ap", "frame_f1", "frame_precision", "frame_recall", "note_f1", "note_with_offset_f1",
                 "instrument_map"):
        assert 0.0 <= metrics[f"test/{name}"] <= 1.0, name
    files = sorted((transcription_run / "test_predictions").glob("*.npz"))
    assert [f.stem for f in files] == ["test_1759", "test_1819", "test_2106"]
    probs, targets = [], []
    for file in files:
        with np.load(file) as saved:
            assert saved["probs"].shape == saved["targets"].shape and saved["probs"].shape[1] == 99
            assert float(saved["frame_rate"]) == 50.0
            probs.append(saved["probs"][:, :88].ravel())
            targets.append(saved["targets"][:, :88].ravel())
    assert metrics["test/frame_ap"] == pytest.approx(independent_ap(np.concatenate(probs), np.concatenate(targets)),
                                                     abs=1e-5)
    assert (transcription_run / "piano_roll.png").stat().st_size > 10_000


def test_the_results_command_prints_a_transcription_table(transcription_run, capsys):
    assert main(["results", str(transcription_run)]) == 0
    printed = capsys.readouterr().out
    assert "Transcription" in printed and "| w2v2 random FE |" in printed


# ----------------------------------------------------------------------------- bad input
def _copy_musicnet(demo_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "musicnet"
    shutil.copytree(demo_root / "musicnet", root, ignore=shutil.ignore_patterns("cache_16k", ".lightning-w2v*"))
    return root


@pytest.mark.parametrize("case, content, message", [
    ("empty", "", "the file is empty"),
    ("header", "onset,offset,instrument,note\n", "line 1: header"),
    ("not a number", HEADER + "100,abc,1,60,0,1,Quarter\n", "line 2: start_time, end_time, instrument and note"),
    ("end before start", HEADER + "100,200,1,60,0,1,Quarter\n900,800,1,60,0,1,Quarter\n",
     "line 3: end_time 800 is not after start_time 900"),
    ("unknown instrument", HEADER + "100,200,13,60,0,1,Quarter\n", "line 2: instrument 13 is not one of MusicNet's"),
    ("beyond the end", HEADER + "100,200,1,60,0,1,Quarter\n100,99999999,1,62,0,1,Quarter\n",
     "line 3: the note 0.00-2267.57 s lies beyond the end"),
])
def test_a_bad_label_file_is_one_line_naming_file_and_line(demo_root, tmp_path, case, content, message, capsys):
    root = _copy_musicnet(demo_root, tmp_path)
    label = root / "musicnet" / "train_labels" / "1727.csv"
    label.write_text(content)
    with pytest.raises(LabelFileError, match=message.replace("(", r"\(")) as error:
        read_musicnet_labels(label, duration=40.0)
    assert str(label) in str(error.value) and "\n" not in str(error.value)
    code = main(["fit", "--config", "finetune/demo_transcription", "--config", "finetune/policy/fe",
                 "--model.init_args.encoder.source", "random", "--model.init_args.encoder.preset", "tiny",
                 "--data.init_args.root", str(root), f"--trainer.default_root_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(label) in err[0]
    assert not (tmp_path / "run").exists()  # before training: nothing written


def test_a_recording_without_labels_and_a_missing_label_file(demo_root, tmp_path):
    root = _copy_musicnet(demo_root, tmp_path)
    (root / "musicnet" / "test_labels" / "1819.csv").unlink()
    module = MusicNetTranscriptionDataModule(str(root), progress=False)
    with pytest.raises(LabelFileError, match="1819.wav has no labels: expected .*test_labels/1819.csv"):
        module.prepare_data()
    with pytest.raises(LabelFileError, match="label file not found"):
        read_musicnet_labels(root / "nowhere.csv")


def test_bad_maestro_files_are_named(demo_root, tmp_path):
    root = tmp_path / "maestro"
    shutil.copytree(demo_root / "maestro", root)
    index = root / "maestro-v3.0.0" / "maestro-v3.0.0.csv"
    original = index.read_text()
    index.write_text(original.replace("split,", "part,"))
    with pytest.raises(LabelFileError, match=r"line 1: no split column"):
        read_maestro_index(root)
    index.write_text(original.replace("DEMO--piece_02.wav", "DEMO--piece_99.wav"))
    with pytest.raises(LabelFileError, match=r"line 3: names .*DEMO--piece_99.wav, which does not exist"):
        read_maestro_index(root)
    index.write_text(original)
    midi = root / "maestro-v3.0.0" / "2018" / "DEMO--piece_01.midi"
    midi.write_bytes(b"not a midi file")
    with pytest.raises(LabelFileError, match=r"DEMO--piece_01.midi: not a readable MIDI file"):
        read_midi_notes(midi)


def test_notes_outside_a_window_are_clipped_to_it():
    notes = Notes.of([0.5, 2.0, 9.5], [1.5, 3.0, 12.0], [60, 62, 64], [1, 1, 1])
    inside = notes.window(1.0, 10.0)
    np.testing.assert_allclose(inside.onset, [0.0, 1.0, 8.5])
    np.testing.assert_allclose(inside.offset, [0.5, 2.0, 9.0])


def test_transcription_specs():
    musicnet, maestro = task_spec("musicnet_transcription"), task_spec("maestro_transcription")
    assert musicnet.per_frame and musicnet.num_outputs == 99 and musicnet.class_names[0] == "A0"
    assert maestro.num_outputs == 88 and "instrument_map" not in maestro.metrics("test")


def test_the_whole_recording_benchmark_runs_windows_of_a_long_recording():
    from lightning_w2v.workflows.bench_recording import whole_recording_benchmark

    result = whole_recording_benchmark(30.0, preset="tiny", device="cpu", window_seconds=4.0, context_seconds=1.0)
    assert result["frames"] == (30 * 16000 - 400) // 320 + 1  # exactly a whole pass's frames
    window = (199 - 1) * 320 + 400  # the samples of 4 s of frames: no pass sees more than 4 windows of it
    assert result["encoder_passes"] > 1 and result["largest_pass"] == [4, window]
    assert result["realtime_factor"] > 1.0 and result["peak_bytes"] > 0


def test_a_bf16_mixed_fit_step_of_the_transcription_module(demo_root, tmp_path):
    """The GPU configs' precision, on the CPU: one FT2 step of a frame head through the CLI."""
    code = main(["fit", "--config", "finetune/demo_transcription", "--config", "finetune/policy/ft2",
                 "--model.init_args.encoder.source=random", "--model.init_args.encoder.preset=tiny",
                 f"--data.init_args.root={demo_root / 'musicnet'}", "--trainer.precision=bf16-mixed",
                 "--trainer.fast_dev_run=1", f"--trainer.default_root_dir={tmp_path}"])
    assert code == 0
