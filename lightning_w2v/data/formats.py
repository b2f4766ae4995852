"""The on-disk facts of NSynth and MusicNet as distributed, each defined once (REFERENCE.md section 3)."""
from __future__ import annotations

from ..vocabulary import NSYNTH_TASKS as TASKS  # noqa: F401 - the NSynth data module's choices
from ..vocabulary import SAMPLE_RATE

# --------------------------------------------------------------------------- NSynth (jsonwav)
NSYNTH_SPLITS = ("train", "valid", "test")
NSYNTH_COUNTS = {"train": 289_205, "valid": 12_678, "test": 4_096}  # notes per official split
NSYNTH_SAMPLE_RATE = SAMPLE_RATE  # NSynth is distributed at wav2vec 2.0's 16 kHz
NSYNTH_NUM_SAMPLES = 64_000  # 4 s, mono, 16-bit PCM
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed",
            "string", "synth_lead", "vocal")  # instrument_family index order  # fmt: skip
SOURCES = ("acoustic", "electronic", "synthetic")
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced")  # fmt: skip
REQUIRED_KEYS = ("note_str", "pitch", "velocity", "instrument_str", "instrument_family")
MIN_PITCH, MAX_PITCH = 9, 120  # the paper's pitch range: class 0 is MIDI 9
NUM_CLASSES = {"pitch": MAX_PITCH - MIN_PITCH + 1, "instrument": len(FAMILIES)}  # 112 and 11
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def pitch_name(midi: int) -> str:
    """MIDI number -> note name, e.g. 60 -> C4."""
    return f"{_NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def class_names(task: str) -> list[str]:
    """Display names of a task's classes: family names, or the note names of MIDI 9..120."""
    if task == "instrument":
        return list(FAMILIES)
    return [pitch_name(m) for m in range(MIN_PITCH, MAX_PITCH + 1)]


# --------------------------------------------------------------------------- MusicNet
MUSICNET_SPLITS = ("train", "test")
MUSICNET_COUNTS = {"train": 320, "test": 10}  # recordings per split
MUSICNET_SAMPLE_RATE = 44_100
MUSICNET_TEST_IDS = (1759, 1819, 2106, 2191, 2298, 2303, 2382, 2416, 2556, 2628)
MUSICNET_LABEL_HEADER = ("start_time", "end_time", "instrument", "note", "start_beat", "end_beat", "note_value")
MUSICNET_METADATA_HEADER = ("id", "composer", "composition", "movement", "ensemble", "source", "transcriber",
                            "catalog_name", "seconds")
# General MIDI programs of MusicNet's 11 instruments (the label CSVs' `instrument` column), in output order
MUSICNET_INSTRUMENTS = {1: "piano", 7: "harpsichord", 41: "violin", 42: "viola", 43: "cello", 44: "contrabass",
                        61: "horn", 69: "oboe", 71: "bassoon", 72: "clarinet", 74: "flute"}
PIANO_KEYS = (21, 108)  # MIDI A0..C8: the 88 keys, the pitch outputs of transcription

# --------------------------------------------------------------------------- MAESTRO v3.0.0
MAESTRO_CSV = "maestro-v3.0.0.csv"
MAESTRO_COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename",
                   "duration")
MAESTRO_SPLITS = ("train", "validation", "test")
MAESTRO_COUNTS = {"train": 962, "validation": 137, "test": 177}  # performances per split
SUSTAIN_CONTROL, SUSTAIN_THRESHOLD = 64, 64  # CC64 >= 64: the pedal is down and holds the notes
