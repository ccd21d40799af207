"""Audio input and output: decode any common format to 16 kHz mono float32, or fail clearly.

``load`` accepts a path or raw bytes. WAV, FLAC, OGG and MP3 go through libsndfile
(soundfile); anything libsndfile cannot open (m4a/aac, odd containers) goes through
ffmpeg. Decoding and resampling run block by block into one preallocated output array,
so peak memory is the 16 kHz result plus one block, whatever the input's length or rate.

Every failure is an :class:`AudioError` subclass with a message meant for a person.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
MAX_CHANNELS = 8
MIN_SOURCE_RATE = 8_000
DEFAULT_MAX_SECONDS = 20 * 60.0
DEFAULT_MIN_SECONDS = 1.0
# floating-point files may go past full scale (1.0), but not by 60 dB: such samples are
# damage, and their squares overflow the float32 spectra every model computes
MAX_PEAK = 1000.0
BLOCK_SECONDS = 10.0


class AudioError(ValueError):
    """Base class of every audio input error; ``code`` is a stable machine-readable name."""

    code = "audio_error"


class EmptyAudioError(AudioError):
    code = "empty"


class NotAudioError(AudioError):
    code = "not_audio"


class CorruptAudioError(AudioError):
    code = "corrupt"


class InvalidSamplesError(AudioError):
    code = "invalid_samples"


class TooShortError(AudioError):
    code = "too_short"


class TooLongError(AudioError):
    code = "too_long"


class TooManyChannelsError(AudioError):
    code = "too_many_channels"


class SampleRateTooLowError(AudioError):
    code = "sample_rate_too_low"


@dataclass(frozen=True)
class AudioInfo:
    """What a file declares before decoding."""

    samplerate: int
    channels: int
    duration: float
    decoder: str  # "soundfile" or "ffmpeg"


Source = str | os.PathLike | bytes


def load(
    source: Source,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    name: str | None = None,
) -> np.ndarray:
    """Decode ``source`` (a path or the bytes of a file) to float32 mono at 16 kHz.

    Returns an array of shape ``(samples,)``. Raises an :class:`AudioError` subclass for
    empty, non-audio, corrupt, non-finite, too short, too long, >8-channel or <8 kHz input.
    ``name`` is used in messages (defaults to the file name).
    """
    with _as_path(source) as path:
        label = name or (path.name if not isinstance(source, bytes) else "upload")
        info = probe(path, name=label)
        _check_declared(info, label, max_seconds=max_seconds, min_seconds=min_seconds)
        if info.decoder == "soundfile":
            audio = _decode_soundfile(path, info, label)
        else:
            audio = _decode_ffmpeg(path, info, label)
    duration = len(audio) / SAMPLE_RATE
    if duration < min_seconds:
        raise TooShortError(
            f"{label}: only {duration:.2f} s of audio could be decoded; "
            f"at least {min_seconds:g} s is needed"
        )
    if duration > max_seconds + 1.0:
        raise TooLongError(f"{label}: {duration:.0f} s is longer than the {max_seconds:g} s limit")
    return audio


def probe(source: Source, *, name: str | None = None) -> AudioInfo:
    """Read the declared rate, channels and duration without decoding the samples."""
    with _as_path(source) as path:
        label = name or path.name
        if not path.exists():
            raise NotAudioError(f"{label}: no such file")
        if path.is_dir():
            raise NotAudioError(f"{label}: is a folder, not an audio file")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{label}: the file is empty")
        try:
            with sf.SoundFile(str(path)) as f:
                if f.frames > 0 and f.samplerate > 0:
                    return AudioInfo(f.samplerate, f.channels, f.frames / f.samplerate, "soundfile")
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
            pass
        return _probe_ffmpeg(path, label)


def save(path: str | os.PathLike, audio: np.ndarray, samplerate: int = SAMPLE_RATE) -> None:
    """Write a 16-bit WAV atomically (temporary file, then rename): never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".wav")
    os.close(fd)
    try:
        sf.write(tmp, np.asarray(audio, dtype=np.float32), samplerate, subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _as_path(source: Source) -> Iterator[Path]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise EmptyAudioError("upload: the file is empty")
        fd, tmp = tempfile.mkstemp(prefix="recsys-audio-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            yield Path(tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)
    else:
        yield Path(source)


def _check_declared(info: AudioInfo, label: str, *, max_seconds: float, min_seconds: float):
    if info.channels > MAX_CHANNELS:
        raise TooManyChannelsError(
            f"{label}: {info.channels} channels; at most {MAX_CHANNELS} are supported"
        )
    if info.samplerate < MIN_SOURCE_RATE:
        raise SampleRateTooLowError(
            f"{label}: sample rate {info.samplerate} Hz is below the {MIN_SOURCE_RATE} Hz minimum"
        )
    if info.duration > max_seconds:
        raise TooLongError(
            f"{label}: {info.duration:.0f} s is longer than the {max_seconds:g} s limit"
        )
    if 0 < info.duration < min_seconds:
        raise TooShortError(
            f"{label}: {info.duration:.2f} s is shorter than the {min_seconds:g} s minimum"
        )


def _decode_soundfile(path: Path, info: AudioInfo, label: str) -> np.ndarray:
    expected = int(np.ceil(info.duration * SAMPLE_RATE)) + SAMPLE_RATE
    out = np.empty(expected, dtype=np.float32)
    filled = 0
    resampler = (
        soxr.ResampleStream(info.samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        if info.samplerate != SAMPLE_RATE
        else None
    )
    block = max(1, int(BLOCK_SECONDS * info.samplerate))
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                chunk = f.read(block, dtype="float32", always_2d=True)
                last = len(chunk) < block
                filled = _append(out, filled, _mono_checked(chunk, label), resampler, last)
                if last:
                    break
    except sf.LibsndfileError as e:
        raise CorruptAudioError(f"{label}: the audio stream is corrupt ({e})") from None
    decoded = filled / SAMPLE_RATE
    if decoded < 0.9 * info.duration - 0.5:
        raise CorruptAudioError(
            f"{label}: the stream is truncated ({decoded:.1f} s decoded of "
            f"{info.duration:.1f} s declared)"
        )
    return out[:filled].copy() if filled < 0.9 * len(out) else out[:filled]


def _mono_checked(chunk: np.ndarray, label: str) -> np.ndarray:
    mono = chunk.mean(axis=1, dtype=np.float32) if chunk.shape[1] > 1 else chunk[:, 0]
    _check_samples(mono, label)
    return mono


def _check_samples(mono: np.ndarray, label: str) -> None:
    if not np.isfinite(mono).all():
        raise InvalidSamplesError(f"{label}: the audio contains NaN or infinite samples")
    peak = float(np.abs(mono).max()) if len(mono) else 0.0
    if peak > MAX_PEAK:
        raise InvalidSamplesError(f"{label}: samples reach {peak:.3g}, far beyond full scale "
                                  "(1.0); the file looks damaged")


def _append(out, filled, mono, resampler, last) -> int:
    data = resampler.resample_chunk(mono, last=last) if resampler is not None else mono
    end = filled + len(data)
    if end > len(out):
        raise CorruptAudioError("the stream holds more audio than its header declares")
    out[filled:end] = data
    return end


def _ffmpeg_tools() -> tuple[str, str]:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        raise NotAudioError(
            "this format needs ffmpeg, which is not installed (run `make setup` or "
            "`apt-get install ffmpeg`)"
        )
    return ffmpeg, ffprobe


def _probe_ffmpeg(path: Path, label: str) -> AudioInfo:
    _, ffprobe = _ffmpeg_tools()
    cmd = [ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
           str(path)]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    try:
        meta = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        meta = {}
    # ffprobe names a codec from the extension alone (text saved as .flac is a "flac"
    # stream), so a stream without a rate or channels is no audio either
    streams = [s for s in meta.get("streams", []) if s.get("codec_type") == "audio"
               and int(s.get("sample_rate") or 0) > 0 and int(s.get("channels") or 0) > 0]
    if not streams:
        raise NotAudioError(
            f"{label}: no audio stream could be read (not an audio file, or damaged)"
        )
    stream = streams[0]
    duration = float(stream.get("duration") or meta.get("format", {}).get("duration") or 0.0)
    return AudioInfo(
        samplerate=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
        duration=duration,
        decoder="ffmpeg",
    )


def _decode_ffmpeg(path: Path, info: AudioInfo, label: str) -> np.ndarray:
    ffmpeg, _ = _ffmpeg_tools()
    channels = max(info.channels, 1)
    # ffmpeg keeps the channels (its own downmix is not a plain mean); we average them here
    cmd = [ffmpeg, "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0",
           "-f", "f32le", "-ac", str(channels), "-ar", str(SAMPLE_RATE), "pipe:1"]
    capacity = int(np.ceil(max(info.duration, 1.0) * SAMPLE_RATE)) + SAMPLE_RATE
    out = np.empty(capacity, dtype=np.float32)
    filled = 0
    frame_bytes = 4 * channels
    block_bytes = int(BLOCK_SECONDS * SAMPLE_RATE) * frame_bytes
    with tempfile.TemporaryFile() as err, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=err
    ) as proc:
        pending = b""
        while True:
            raw = proc.stdout.read(block_bytes)
            if not raw:
                break
            raw = pending + raw
            usable = len(raw) - len(raw) % frame_bytes
            pending = raw[usable:]
            frames = np.frombuffer(raw[:usable], dtype=np.float32).reshape(-1, channels)
            chunk = frames.mean(axis=1, dtype=np.float32)
            try:
                _check_samples(chunk, label)
            except InvalidSamplesError:
                proc.kill()
                raise
            if filled + len(chunk) > len(out):  # duration was unknown or understated
                out = np.concatenate([out[:filled], np.empty(len(out), dtype=np.float32)])
            out[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        code = proc.wait()
        err.seek(0)
        message = err.read().decode(errors="replace").strip().splitlines()
    if code != 0 or (filled == 0 and message):
        reason = message[-1] if message else f"ffmpeg exited with {code}"
        raise CorruptAudioError(f"{label}: the audio stream is corrupt ({reason})")
    if info.duration > 0 and filled / SAMPLE_RATE < 0.9 * info.duration - 0.5:
        raise CorruptAudioError(
            f"{label}: the stream is truncated ({filled / SAMPLE_RATE:.1f} s decoded of "
            f"{info.duration:.1f} s declared)"
        )
    return out[:filled].copy()
