"""Pitch contours of a singing voice (or a hum): MIDI note numbers every 10 ms, NaN unvoiced.

Three trackers behind one function :func:`contour`:

- ``"yin"``: librosa's YIN for the period, plus our voicing decision (frame energy and
  periodicity at the detected period, then a stability check against the neighbours),
  because YIN itself calls every frame voiced. About 300x real time on one core.
- ``"pyin"``: librosa's probabilistic YIN with its HMM voicing. More accurate on clean
  voice but ~4x real time on this CPU, too slow to run on a whole catalog at ingest.
- ``"cnn"``: a small convolutional net over a harmonic spectrogram, trained on the corpus'
  known notes on clean, separated and hummed voice (:mod:`embeddings.pitch_net`,
  ``recsys train pitch``).

``recsys bench pitch`` measures them against the corpus' known sung notes
(:func:`notes_to_contour`, :func:`raw_pitch_accuracy`); the default is the one chosen there
and on hum search (``recsys bench qbh --pitch``), both on the val split.

:class:`NoMelodyError` / :func:`require_melody` are the one rule for "no melody found".
"""

from __future__ import annotations

from collections.abc import Sequence

import librosa
import numpy as np
import scipy.ndimage

from embeddings.audio import SAMPLE_RATE
from embeddings.windows import CONTOUR_HOP_SECONDS

HOP = int(round(CONTOUR_HOP_SECONDS * SAMPLE_RATE))  # 160 samples
FRAME = 1024  # 64 ms: two periods of the lowest pitch we track
FMIN = 60.0  # below the lowest sung note of a bass (B1 ~ 62 Hz)
FMAX = 1100.0  # above a soprano's C6
METHODS = ("yin", "pyin", "cnn")
DEFAULT_METHOD = "cnn"  # chosen on val: `recsys bench pitch`, `recsys bench qbh --pitch`
# YIN voicing: frame energy within MIN_DB of the loudest frame, and normalised
# autocorrelation at the YIN period above MIN_PERIODICITY (chosen on the train split)
MIN_DB = -45.0
MIN_PERIODICITY = 0.4
BLOCK_FRAMES = 4096  # frames analysed at once (~41 s of audio)

# "No melody found": fewer voiced frames than this in a query.
MIN_VOICED_SECONDS = 1.0
MIN_VOICED_FRACTION = 0.15


class NoMelodyError(ValueError):
    """The audio holds no usable melody (silence, noise, speech-like or too few voiced frames)."""

    code = "no_melody"


def n_frames(n_samples: int) -> int:
    """Number of contour frames for ``n_samples`` of audio (centred frames, 10 ms hop)."""
    return 1 + n_samples // HOP


def contour(audio: np.ndarray, method: str = DEFAULT_METHOD) -> np.ndarray:
    """``(samples,)`` float audio at 16 kHz -> ``(frames,)`` MIDI pitch, NaN where unvoiced.

    ``frames == n_frames(samples)``; frame ``i`` is centred at ``i * 10 ms``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {audio.shape}")
    check_method(method)
    frames = n_frames(len(audio))
    if len(audio) < FRAME or not np.any(audio):
        return np.full(frames, np.nan, dtype=np.float32)
    if method == "cnn":
        from embeddings.pitch_net import load_pretrained

        return load_pretrained()(audio)
    if method == "pyin":
        f0, voiced, _ = librosa.pyin(
            audio, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE, frame_length=FRAME, hop_length=HOP
        )
        f0 = np.where(voiced, f0, np.nan)
    else:
        f0 = _yin(audio)
    midi = librosa.hz_to_midi(f0).astype(np.float32)
    out = np.full(frames, np.nan, dtype=np.float32)
    out[: min(frames, len(midi))] = midi[:frames]
    return out


# Trackers whose every frame depends only on the audio within LOCAL_CONTEXT_SECONDS of it
# (the learned one), so a clip can be tracked in overlapping pieces with the same result.
# YIN's and pYIN's voicing thresholds look at the whole clip.
LOCAL_METHODS = frozenset({"cnn"})
LOCAL_CONTEXT_SECONDS = 0.5
_CONTEXT_FRAMES = int(LOCAL_CONTEXT_SECONDS * SAMPLE_RATE) // HOP


def is_local(method: str) -> bool:
    return method in LOCAL_METHODS


def split_for_pieces(n_samples: int, at: float) -> tuple[slice, slice, int] | None:
    """How to track ``n_samples`` of audio in two overlapping pieces split near the fraction
    ``at`` of it, for a local tracker: the head's and the tail's sample slices and the
    frame where the tail's frames take over (:func:`join_pieces`). None for a clip too
    short to be worth splitting."""
    context = _CONTEXT_FRAMES * HOP
    split = int(n_samples * at) // HOP * HOP
    if split < 2 * context or n_samples - split < 2 * context:
        return None
    return slice(0, split + context), slice(split - context, n_samples), split // HOP


def join_pieces(head: np.ndarray, tail: np.ndarray, n_samples: int, frame: int) -> np.ndarray:
    """The contour of the whole clip from its pieces' contours (:func:`split_for_pieces`):
    the head's frames before ``frame``, the tail's from there on."""
    out = np.concatenate([head[:frame], tail[_CONTEXT_FRAMES:]])
    return out[: n_frames(n_samples)].astype(np.float32, copy=False)


def check_method(method: str) -> str:
    """``method`` if it names a tracker, else a ValueError listing the ones there are."""
    if method not in METHODS:
        raise ValueError(f"unknown pitch tracker {method!r}; choose one of {METHODS}")
    return method


def tracker_version(method: str = DEFAULT_METHOD) -> str:
    """Version of a tracker's contours (changes whenever its output would): stored beside
    every contour, and a cache key."""
    if check_method(method) == "cnn":
        from embeddings.pitch_net import load_pretrained

        return load_pretrained().version
    if method == "yin":
        return f"yin-{MIN_PERIODICITY}-{MIN_DB}"
    return method


def _yin(audio: np.ndarray, min_periodicity: float = MIN_PERIODICITY,
         min_db: float = MIN_DB) -> np.ndarray:
    # Centred frames (zero padding, as librosa's default), analysed BLOCK_FRAMES at a time so
    # memory stays flat on long files; the voicing decisions below look at the whole track.
    padded = np.pad(audio, FRAME // 2, mode="constant")
    n = 1 + (len(padded) - FRAME) // HOP
    f0, energy, periodicity = np.empty(n), np.empty(n), np.empty(n)
    window = np.hanning(FRAME).astype(np.float32)
    for a in range(0, n, BLOCK_FRAMES):
        b = min(n, a + BLOCK_FRAMES)
        segment = padded[a * HOP: (b - 1) * HOP + FRAME]
        f0[a:b] = librosa.yin(segment, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE,
                              frame_length=FRAME, hop_length=HOP, center=False)
        frames = librosa.util.frame(segment, frame_length=FRAME, hop_length=HOP).T * window
        energy[a:b] = (frames**2).mean(axis=1)
        # normalised autocorrelation at the YIN period says whether the frame is periodic
        spec = np.fft.rfft(frames, n=2 * FRAME, axis=1)
        acf = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :FRAME]
        lag = np.clip(np.round(SAMPLE_RATE / f0[a:b]).astype(int), 1, FRAME - 1)
        rows = np.arange(b - a)
        periodicity[a:b] = (acf[rows, lag] / np.maximum(acf[:, 0], 1e-12)
                            * FRAME / (FRAME - lag))
    loud = energy > max(energy.max() * 10 ** (min_db / 10), 1e-8)
    midi = librosa.hz_to_midi(f0)
    smooth = scipy.ndimage.median_filter(midi, size=5, mode="nearest")
    stable = np.abs(midi - smooth) < 1.0
    voiced = loud & (periodicity > min_periodicity) & stable
    voiced = scipy.ndimage.binary_opening(voiced, structure=np.ones(3))
    return np.where(voiced, librosa.midi_to_hz(smooth), np.nan)


def require_melody(
    pitch: np.ndarray,
    min_voiced_seconds: float = MIN_VOICED_SECONDS,
    min_voiced_fraction: float = MIN_VOICED_FRACTION,
) -> np.ndarray:
    """Return ``pitch`` unchanged if it holds a melody, else raise :class:`NoMelodyError`.

    A melody needs at least ``min_voiced_seconds`` of voiced frames, making up at least
    ``min_voiced_fraction`` of the clip, and more than one distinct note (a drone or a
    constant tone is not a tune).
    """
    pitch = np.asarray(pitch, dtype=np.float32)
    voiced = np.isfinite(pitch)
    seconds = voiced.sum() * CONTOUR_HOP_SECONDS
    if seconds < min_voiced_seconds:
        raise NoMelodyError(
            f"no melody found: only {seconds:.2f} s of voiced pitch "
            f"(at least {min_voiced_seconds:g} s needed); hum or sing louder or longer"
        )
    if voiced.mean() < min_voiced_fraction:
        raise NoMelodyError(
            f"no melody found: only {100 * voiced.mean():.0f}% of the clip is voiced "
            f"(at least {100 * min_voiced_fraction:.0f}% needed)"
        )
    values = pitch[voiced]
    if np.percentile(values, 95) - np.percentile(values, 5) < 1.0:
        raise NoMelodyError("no melody found: the pitch never moves by a semitone")
    return pitch


def notes_to_contour(
    notes: Sequence[tuple[float, float, float]], frames: int
) -> np.ndarray:
    """Reference contour from ``(onset_s, offset_s, midi)`` notes: ``(frames,)``, NaN in rests."""
    out = np.full(frames, np.nan, dtype=np.float32)
    for onset, offset, midi in notes:
        a = max(0, int(round(onset / CONTOUR_HOP_SECONDS)))
        b = min(frames, int(round(offset / CONTOUR_HOP_SECONDS)))
        if b > a:
            out[a:b] = midi
    return out


def raw_pitch_accuracy(
    estimate: np.ndarray, reference: np.ndarray, cents: float = 50.0
) -> dict[str, float]:
    """mir_eval's melody metrics of ``estimate`` vs ``reference`` (both MIDI, NaN unvoiced).

    Returns ``raw_pitch_accuracy`` (voiced reference frames whose estimate lies within
    ``cents``), ``raw_chroma_accuracy`` (the same, octave errors forgiven), ``voicing_recall``,
    ``voicing_false_alarm`` and ``overall_accuracy`` (frames right on both voicing and pitch,
    over all frames).
    """
    import mir_eval

    n = min(len(estimate), len(reference))
    est, ref = np.asarray(estimate[:n], float), np.asarray(reference[:n], float)
    ref_v, est_v = np.isfinite(ref).astype(float), np.isfinite(est).astype(float)
    ref_c = np.where(ref_v > 0, 100.0 * np.nan_to_num(ref), 0.0)
    # mir_eval scores pitch on all reference-voiced frames, also where we said unvoiced
    est_c = np.where(est_v > 0, 100.0 * np.nan_to_num(est), 0.0)
    recall, false_alarm = mir_eval.melody.voicing_measures(ref_v, est_v)
    return {
        "raw_pitch_accuracy": float(
            mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance=cents)
        ),
        "raw_chroma_accuracy": float(
            mir_eval.melody.raw_chroma_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance=cents)
        ),
        "voicing_recall": float(recall),
        "voicing_false_alarm": float(false_alarm),
        "overall_accuracy": float(
            mir_eval.melody.overall_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance=cents)
        ),
    }
