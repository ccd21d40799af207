"""Which 3 s windows of (separated) vocals hold singing.

Only voiced windows enter a track's singer vector; a track with none is instrumental and
gets no timbre vector. A window is voiced when enough of its frames are both

- **loud relative to the track's vocals** (separated vocals of instrumental passages are
  quiet leakage, far below the sung parts), and
- **periodic**: the frame's normalised autocorrelation peaks above ``periodicity`` at a lag
  inside the singing range (Boersma's window-corrected autocorrelation, as in Praat). Noise,
  breaths and silence are aperiodic.

When the mixture windows are given as well, the vocals must also carry a minimum share of
the mixture's energy, which rejects separator leakage on instrumental tracks.

Cost: one 2048-point FFT per 32 ms frame, about 1000x real time on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embeddings.audio import SAMPLE_RATE

BATCH_WINDOWS = 32


@dataclass
class VoicingConfig:
    frame: int = 1024  # 64 ms analysis frame
    hop: int = 512
    fmin: float = 70.0  # lowest sung f0 considered (Hz)
    fmax: float = 1000.0
    periodicity: float = 0.5  # autocorrelation peak a voiced frame must reach
    rel_energy_db: float = -30.0  # frame level vs the track's loud (95th percentile) frames
    min_voiced_fraction: float = 0.25  # share of voiced frames a voiced window needs
    min_vocal_share_db: float = -20.0  # window vocal energy vs mixture energy (if given)


def frame_features(
    audio: np.ndarray, config: VoicingConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, samples)`` windows -> ``(rms (n, frames), periodicity (n, frames))``."""
    c = config or VoicingConfig()
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if audio.shape[1] < c.frame:
        audio = np.pad(audio, ((0, 0), (0, c.frame - audio.shape[1])))
    n_frames = 1 + (audio.shape[1] - c.frame) // c.hop
    idx = np.arange(c.frame)[None, :] + c.hop * np.arange(n_frames)[:, None]
    frames = audio[:, idx]  # (n, frames, frame)
    frames = frames - frames.mean(axis=2, keepdims=True)
    rms = np.sqrt((frames**2).mean(axis=2))

    window = np.hanning(c.frame).astype(np.float32)
    n_fft = 2 * c.frame
    acf = np.fft.irfft(np.abs(np.fft.rfft(frames * window, n=n_fft)) ** 2, n=n_fft)
    acf_w = np.fft.irfft(np.abs(np.fft.rfft(window, n=n_fft)) ** 2, n=n_fft)
    lo, hi = int(SAMPLE_RATE / c.fmax), int(SAMPLE_RATE / c.fmin)
    hi = min(hi, c.frame // 2)  # beyond half a frame the window correction blows up
    norm = acf[..., lo:hi] / np.maximum(acf[..., :1], 1e-12) / (acf_w[lo:hi] / acf_w[0])
    periodicity = norm.max(axis=2)
    return rms.astype(np.float32), periodicity.astype(np.float32)


def frame_rms(audio: np.ndarray, config: VoicingConfig | None = None) -> np.ndarray:
    """``(samples,)`` -> ``(frames,)`` RMS of the mean-removed frames, as in
    :func:`frame_features` (without its autocorrelation, so it is cheap on long audio)."""
    c = config or VoicingConfig()
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < c.frame:
        audio = np.pad(audio, (0, c.frame - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, c.frame)[:: c.hop]
    mean = frames.mean(axis=1, keepdims=True)
    return np.sqrt(np.maximum((frames**2).mean(axis=1, keepdims=True) - mean**2, 0.0))[:, 0]


def voiced_windows(
    vocal_windows: np.ndarray,
    track_vocals: np.ndarray | None = None,
    mixture_windows: np.ndarray | None = None,
    config: VoicingConfig | None = None,
) -> np.ndarray:
    """Whether each window holds singing.

    ``vocal_windows (n, samples)``: windows of the (separated) vocals, as cut by
    :func:`embeddings.windows.cut`. ``track_vocals (samples,)``: the whole vocal track,
    used as the loudness reference (default: the windows themselves). ``mixture_windows
    (n, samples)``: the same windows of the mixture (optional). Returns ``(n,)`` bool.
    """
    c = config or VoicingConfig()
    return voicing_scores(vocal_windows, track_vocals, mixture_windows, c) >= c.min_voiced_fraction


def voicing_scores(
    vocal_windows: np.ndarray,
    track_vocals: np.ndarray | None = None,
    mixture_windows: np.ndarray | None = None,
    config: VoicingConfig | None = None,
) -> np.ndarray:
    """How much singing each window holds: ``(n,)`` float in [0, 1], the share of its
    frames that are both loud and periodic (see the module docstring), or 0 where the
    vocals carry too small a share of the mixture. A window is voiced when its score
    reaches ``config.min_voiced_fraction``; the score also weighs windows in a track's
    singer vector (:func:`embeddings.timbre.track_vector`). Arguments as
    :func:`voiced_windows`."""
    c = config or VoicingConfig()
    vocal_windows = np.atleast_2d(np.asarray(vocal_windows, dtype=np.float32))
    if len(vocal_windows) == 0:
        return np.zeros(0, dtype=np.float32)
    if not np.isfinite(vocal_windows).all():
        raise ValueError("vocal windows contain NaN or infinite samples")
    # a few windows at a time: the per-frame FFTs of a long track would not fit in memory
    parts = [frame_features(vocal_windows[i: i + BATCH_WINDOWS], c)
             for i in range(0, len(vocal_windows), BATCH_WINDOWS)]
    rms = np.concatenate([p[0] for p in parts])
    periodicity = np.concatenate([p[1] for p in parts])
    reference_rms = rms if track_vocals is None else frame_rms(track_vocals, c)
    reference = float(np.percentile(reference_rms, 95))
    if reference <= 1e-6:  # digital silence throughout
        return np.zeros(len(vocal_windows), dtype=np.float32)
    loud = rms >= reference * 10 ** (c.rel_energy_db / 20)
    score = (loud & (periodicity >= c.periodicity)).mean(axis=1).astype(np.float32)
    if mixture_windows is not None:
        mixture_windows = np.atleast_2d(np.asarray(mixture_windows, dtype=np.float32))
        if mixture_windows.shape != vocal_windows.shape:
            raise ValueError(
                f"mixture windows {mixture_windows.shape} do not match vocal windows "
                f"{vocal_windows.shape}"
            )
        share = (vocal_windows**2).mean(axis=1) / np.maximum((mixture_windows**2).mean(axis=1),
                                                             1e-12)
        score[share < 10 ** (c.min_vocal_share_db / 10)] = 0.0
    return score
