"""Audio reading, down-mixing, resampling and broken-file detection."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lightning_w2v.data.audio import AudioFileError, check_header, read_audio, resample, wav_layout


def _write(path, frames=4410, sr=44100, channels=2, subtype="PCM_16"):
    rng = np.random.default_rng(0)
    x = np.clip(0.2 * rng.standard_normal((frames, channels)), -0.99, 0.99).astype(np.float32)
    sf.write(path, x, sr, subtype=subtype)
    return x


def test_read_audio_downmixes_to_float32_mono(tmp_path):
    x = _write(tmp_path / "s.wav", frames=1000, channels=2)
    wave, sr = read_audio(tmp_path / "s.wav")
    assert sr == 44100 and wave.dtype == np.float32 and wave.shape == (1000,)
    # 16-bit quantisation of each channel, then the mean
    np.testing.assert_allclose(wave, x.mean(1), atol=2 / 32768)


def test_resample_44k1_stereo_to_16k_mono_length(tmp_path):
    _write(tmp_path / "s.wav", frames=44100 * 3 + 7, channels=2)
    wave, sr = read_audio(tmp_path / "s.wav")
    out = resample(wave, sr, 16000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert len(out) == int(np.ceil((44100 * 3 + 7) * 16000 / 44100))  # 48003
    assert len(resample(wave, 16000, 16000)) == len(wave)  # same rate: unchanged


def test_resample_keeps_a_tone():
    sr_in, f = 44100, 440.0
    t = np.arange(sr_in) / sr_in
    out = resample(np.sin(2 * np.pi * f * t).astype(np.float32), sr_in, 16000)
    spec = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spec) * 16000 / len(out) - f) < 2.0


def test_truncated_wav_is_named(tmp_path):
    _write(tmp_path / "full.wav", frames=44100)
    data = (tmp_path / "full.wav").read_bytes()
    bad = tmp_path / "cut.wav"
    bad.write_bytes(data[: len(data) // 2])
    # libsndfile alone reads it silently short:
    assert sf.info(str(bad)).frames < 44100
    layout = wav_layout(bad)
    assert layout.declared_frames == 44100 and layout.frames_on_disk < 44100
    with pytest.raises(AudioFileError, match=r"cut\.wav.*truncated.*44100"):
        read_audio(bad)
    with pytest.raises(AudioFileError, match="truncated"):
        check_header(bad)


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "empty"), (b"garbage" * 50, "unreadable or corrupt"), (None, "not found")],
)
def test_broken_files_are_named(tmp_path, content, problem):
    p = tmp_path / "broken.wav"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(AudioFileError, match=rf"broken\.wav.*{problem}") as e:
        read_audio(p)
    assert e.value.path == str(p)


def test_header_cut_inside_fmt_is_named(tmp_path):
    _write(tmp_path / "full.wav")
    p = tmp_path / "head.wav"
    p.write_bytes((tmp_path / "full.wav").read_bytes()[:30])
    with pytest.raises(AudioFileError, match=r"head\.wav"):
        read_audio(p)


def test_check_header_reports_expected_and_found(tmp_path):
    _write(tmp_path / "a.wav", frames=1000, sr=22050, channels=2)
    info = check_header(tmp_path / "a.wav", sample_rate=22050, channels=2, num_frames=1000)
    assert info.frames == 1000
    with pytest.raises(AudioFileError) as e:
        check_header(tmp_path / "a.wav", sample_rate=16000, channels=1, num_frames=64000)
    msg = str(e.value)
    assert "a.wav" in msg
    for part in ("sample rate expected 16000, found 22050", "channels expected 1, found 2",
                 "frames expected 64000, found 1000"):  # fmt: skip
        assert part in msg


def test_float_wav_and_flac_read(tmp_path):
    _write(tmp_path / "f.wav", frames=500, channels=1, subtype="FLOAT")
    _write(tmp_path / "f.flac", frames=500, channels=1, subtype="PCM_16")
    assert read_audio(tmp_path / "f.wav")[0].shape == (500,)
    assert wav_layout(tmp_path / "f.flac") is None
    assert read_audio(tmp_path / "f.flac")[0].shape == (500,)
