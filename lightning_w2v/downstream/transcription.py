"""Polyphonic transcription: MusicNet (88 keys and 11 instruments per frame) and MAESTRO (88 keys)."""
from __future__ import annotations

from ..data.formats import MUSICNET_INSTRUMENTS
from .frames import make_frame_spec

MUSICNET_TRANSCRIPTION = make_frame_spec("musicnet_transcription", MUSICNET_INSTRUMENTS,
                                         demo_config="finetune/demo_transcription",
                                         full_config="finetune/musicnet_transcription")
MAESTRO_TRANSCRIPTION = make_frame_spec("maestro_transcription", full_config="finetune/maestro_transcription")
