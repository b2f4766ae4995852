"""Audio file I/O: read, down-mix, resample, and check WAV files.

Everything reads through soundfile (libsndfile). We never use ``torchaudio.load``: from
torchaudio 2.9 on it needs torchcodec and FFmpeg.

A truncated WAV is the most common broken file after an interrupted download or
extraction, and libsndfile reads it *silently short*: ``sf.info`` reports the frames that
are on disk, not the frames the header declares. :func:`wav_layout` therefore parses the
RIFF chunks itself and compares the ``data`` chunk size in the header with the bytes that
are really there.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from ..errors import DataError

PathLike = str | os.PathLike

_FIX_HINT = "re-download or re-extract it (or delete it) and run again"


class AudioFileError(DataError):
    """An audio file is unreadable, corrupt, truncated, empty or has the wrong format.

    The message always names the file, says what is wrong and what to do about it.
    """

    def __init__(self, path: PathLike, problem: str, hint: str = _FIX_HINT) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}; {hint}.")


@dataclass(frozen=True)
class WavLayout:
    """What the RIFF header of a WAV file declares, and what is on disk."""

    sample_rate: int
    channels: int
    block_align: int  # bytes per frame (all channels)
    declared_frames: int  # from the data chunk's size field
    frames_on_disk: int  # whole frames actually present after the data chunk header


def wav_layout(path: PathLike) -> WavLayout | None:
    """Parse a RIFF/WAVE header; ``None`` if the file is not a plain RIFF WAV (RF64, AIFF...).

    Raises :class:`AudioFileError` for a WAV whose header is broken (no ``fmt``/``data``).
    A data size of 0 or 0xFFFFFFFF (written by streaming tools) is taken as "unknown" and
    reported as the frames on disk.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        fmt: tuple[int, int, int] | None = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise AudioFileError(path, "WAV header has no 'data' chunk (file is truncated)")
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = f.read(min(csize, 16))
                if len(body) < 16:
                    raise AudioFileError(path, "WAV 'fmt ' chunk is truncated")
                _, channels, rate, _, block_align, _ = struct.unpack("<HHIIHH", body)
                fmt = (rate, channels, block_align)
                f.seek(csize - 16 + (csize & 1), os.SEEK_CUR)
            elif cid == b"data":
                if fmt is None or fmt[2] == 0:
                    raise AudioFileError(path, "WAV 'data' chunk comes before a valid 'fmt ' chunk")
                rate, channels, block_align = fmt
                on_disk = (size - f.tell()) // block_align
                declared = on_disk if csize in (0, 0xFFFFFFFF) else csize // block_align
                return WavLayout(rate, channels, block_align, declared, on_disk)
            else:
                f.seek(csize + (csize & 1), os.SEEK_CUR)


def audio_info(path: PathLike) -> sf._SoundFileInfo:
    """``sf.info`` with errors turned into :class:`AudioFileError`; checks truncation too."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(path, "file not found", "check the data root, or re-download")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "file is empty (0 bytes)")
    layout = wav_layout(path)  # raises on a broken RIFF header
    if layout is not None and layout.frames_on_disk < layout.declared_frames:
        raise AudioFileError(
            path,
            f"WAV is truncated: header declares {layout.declared_frames} frames, "
            f"only {layout.frames_on_disk} are on disk",
        )
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioFileError(path, f"unreadable or corrupt audio ({e})") from e
    if info.frames == 0:
        raise AudioFileError(path, "audio has no samples (empty)")
    return info


def check_header(
    path: PathLike,
    sample_rate: int | None = None,
    channels: int | None = None,
    num_frames: int | None = None,
) -> sf._SoundFileInfo:
    """Check an audio file's header without decoding it; return soundfile's info.

    Raises :class:`AudioFileError` naming the file and "expected X, found Y" for each
    mismatch, or saying it is missing, empty, truncated or unreadable.
    """
    info = audio_info(path)
    wrong = [
        f"{what} expected {want}, found {got}"
        for what, want, got in (
            ("sample rate", sample_rate, info.samplerate),
            ("channels", channels, info.channels),
            ("frames", num_frames, info.frames),
        )
        if want is not None and want != got
    ]
    if wrong:
        raise AudioFileError(path, "wrong format: " + "; ".join(wrong), "replace the file")
    return info


def read_audio(path: PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono in [-1, 1]; multi-channel is averaged.

    Returns ``(wave, sample_rate)`` with ``wave.shape == (n,)``. Raises
    :class:`AudioFileError` (naming the file) if it is missing, empty, truncated, corrupt,
    or decodes to fewer frames than its header declares.
    """
    info = audio_info(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, C)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioFileError(path, f"decoding failed ({e})") from e
    if data.shape[0] < info.frames:
        raise AudioFileError(
            path, f"decoded only {data.shape[0]} of {info.frames} frames (truncated or corrupt)"
        )
    wave = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)  # (n,)
    return np.ascontiguousarray(wave, dtype=np.float32), int(sr)


def resample(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a float32 wave ``(..., n)`` with torchaudio's windowed-sinc filter.

    Output length is ``ceil(n * sr_out / sr_in)``; identity when the rates match.
    """
    if sr_in == sr_out:
        return np.asarray(wave, dtype=np.float32)
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), sr_in, sr_out)
    return out.numpy()
