"""embeddings.audio: every common format decodes; every kind of bad input gets its own error."""

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from embeddings import audio

SR_IN = 44_100


def _tone(seconds: float, sr: int = SR_IN, channels: int = 2, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def _ffmpeg(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    wav = d / "tone.wav"
    sf.write(wav, _tone(3.0), SR_IN)
    out = {"wav": wav, "flac": d / "tone.flac", "ogg": d / "tone.ogg"}
    sf.write(out["flac"], _tone(3.0), SR_IN)
    sf.write(out["ogg"], _tone(3.0), SR_IN)
    if shutil.which("ffmpeg"):
        out["mp3"] = _ffmpeg(wav, d / "tone.mp3")
        out["m4a"] = _ffmpeg(wav, d / "tone.m4a", "-c:a", "aac")
    return out


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_formats_decode_to_16k_mono_float32(files, fmt):
    if fmt not in files:
        pytest.skip("ffmpeg is not installed")
    x = audio.load(files[fmt])
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) / audio.SAMPLE_RATE - 3.0) < 0.1  # codecs pad a few ms
    # the 440 Hz tone survives decoding and resampling
    spectrum = np.abs(np.fft.rfft(x[4000:20000]))
    peak_hz = np.argmax(spectrum) * audio.SAMPLE_RATE / 16000
    assert abs(peak_hz - 440) < 5
    assert 0.3 < np.abs(x).max() < 0.7


def test_bytes_input_equals_path_input(files):
    data = files["flac"].read_bytes()
    np.testing.assert_array_equal(audio.load(data), audio.load(files["flac"]))


def test_block_decoding_matches_one_shot_resampling(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR_IN * 25).astype(np.float32) * 0.1
    path = tmp_path / "noise.wav"
    sf.write(path, x, SR_IN, subtype="FLOAT")
    monkeypatch.setattr(audio, "BLOCK_SECONDS", 1.3)  # many blocks, odd boundaries
    blocked = audio.load(path)
    import soxr

    whole = soxr.resample(x, SR_IN, audio.SAMPLE_RATE, quality="HQ")
    assert len(blocked) == len(whole)
    np.testing.assert_allclose(blocked, whole, atol=1e-4)


def _write(path: Path, data: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, sr, subtype=subtype)
    return path


def _bad_inputs(d: Path, good: Path) -> dict[str, tuple[Path | bytes, type]]:
    png = d / "image.mp3"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    text = d / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    text_flac = d / "notes.flac"  # ffprobe calls it a flac stream with no rate
    text_flac.write_text("this is not audio\n" * 50)
    empty = d / "empty.flac"
    empty.write_bytes(b"")
    truncated = d / "truncated.flac"
    truncated.write_bytes(good.read_bytes()[:30_000])
    nan = _tone(2.0, channels=1)
    nan[1000] = np.nan
    many = np.zeros((16_000 * 2, 10), dtype=np.float32)
    damaged = _tone(2.0, channels=1) * 1e30  # finite, but no audio is 600 dB loud
    return {
        "empty file": (empty, audio.EmptyAudioError),
        "empty bytes": (b"", audio.EmptyAudioError),
        "png renamed .mp3": (png, audio.NotAudioError),
        "text renamed .wav": (text, audio.NotAudioError),
        "text renamed .flac": (text_flac, audio.NotAudioError),
        "truncated stream": (truncated, audio.CorruptAudioError),
        "nan samples": (_write(d / "nan.wav", nan, SR_IN, "FLOAT"), audio.InvalidSamplesError),
        "samples far past full scale": (_write(d / "damaged.wav", damaged, SR_IN, "FLOAT"),
                                        audio.InvalidSamplesError),
        "the same, through ffmpeg": (_ffmpeg(_write(d / "damaged2.wav", damaged, SR_IN, "FLOAT"),
                                             d / "damaged.mka", "-c:a", "pcm_f32le"),
                                     audio.InvalidSamplesError),
        "too short": (_write(d / "short.wav", _tone(0.4), SR_IN), audio.TooShortError),
        "too many channels": (_write(d / "ten.wav", many, 16_000), audio.TooManyChannelsError),
        "rate under 8 kHz": (_write(d / "low.wav", _tone(2, sr=4000), 4000),
                             audio.SampleRateTooLowError),
        "missing file": (d / "does-not-exist.wav", audio.NotAudioError),
        "a folder": (d, audio.NotAudioError),
    }


def test_bad_inputs_each_get_their_typed_error(tmp_path, files):
    for label, (source, error) in _bad_inputs(tmp_path, files["flac"]).items():
        with pytest.raises(error) as info:
            audio.load(source)
        assert isinstance(info.value, audio.AudioError), label
        assert str(info.value), label  # a message a person can read


def test_too_long_is_refused_before_decoding(tmp_path):
    path = tmp_path / "long.wav"
    # a header declaring 30 minutes of 8 kHz audio, written without holding it in memory
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        chunk = np.zeros(8000 * 60, dtype=np.int16).tobytes()
        for _ in range(30):
            w.writeframes(chunk)
    with pytest.raises(audio.TooLongError, match="limit"):
        audio.load(path)
    assert len(audio.load(path, max_seconds=3600)) == 30 * 60 * audio.SAMPLE_RATE


def test_save_is_atomic_and_round_trips(tmp_path):
    x = (np.sin(np.arange(32000) / 10) * 0.5).astype(np.float32)
    target = tmp_path / "out" / "x.wav"
    audio.save(target, x)
    assert [p.name for p in target.parent.iterdir()] == ["x.wav"]
    np.testing.assert_allclose(audio.load(target), x, atol=1e-4)
