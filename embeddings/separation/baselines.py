"""Yardsticks for the learned separator: mixture-as-estimate, REPET-SIM and the oracle IRM.

- :class:`MixtureAsEstimate` returns the mixture as both sources (the floor any separator
  must beat).
- :class:`RepetSim` is REPET-SIM (Rafii & Pardo 2012) as in librosa's vocal separation
  example: the accompaniment of each frame is the median of its most similar frames
  (``librosa.decompose.nn_filter``), vocals are what does not repeat; soft masks.
- :func:`oracle_irm` applies the ideal ratio mask computed from the true stems (an upper
  bound for any real-valued mask at that STFT; bench only, since it needs the stems).
"""

from __future__ import annotations

import librosa
import numpy as np

from embeddings.audio import SAMPLE_RATE
from embeddings.separation.infer import overlap_add


class MixtureAsEstimate:
    """The mixture itself as the vocals and as the accompaniment."""

    name = "mixture"
    version = "mixture-1"

    def separate(self, mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mixture = np.asarray(mixture, dtype=np.float32)
        return mixture.copy(), mixture.copy()


class RepetSim:
    """REPET-SIM with librosa; runs on 60 s chunks (cross-faded) so memory stays bounded."""

    name = "repet_sim"
    version = "repet_sim-1"

    def __init__(self, n_fft: int = 1024, hop: int = 256, similar_seconds: float = 2.0,
                 margin_i: float = 2.0, margin_v: float = 10.0, power: float = 2.0,
                 chunk_seconds: float = 60.0, overlap_seconds: float = 2.0):
        self.n_fft, self.hop = n_fft, hop
        self.similar_seconds = similar_seconds
        self.margin_i, self.margin_v, self.power = margin_i, margin_v, power
        self.chunk = int(chunk_seconds * SAMPLE_RATE)
        self.overlap = int(overlap_seconds * SAMPLE_RATE)

    def separate_chunk(self, piece: np.ndarray) -> np.ndarray:
        """``(samples,)`` -> ``(2, samples)`` vocals and accompaniment."""
        piece = np.asarray(piece, dtype=np.float32)
        spec = librosa.stft(piece, n_fft=self.n_fft, hop_length=self.hop)
        mag = np.abs(spec)
        width = int(librosa.time_to_frames(self.similar_seconds, sr=SAMPLE_RATE,
                                           hop_length=self.hop))
        if mag.shape[1] <= 2 * width + 2:  # too short to find repetitions: all accompaniment
            return np.stack([np.zeros_like(piece), piece])
        repeating = librosa.decompose.nn_filter(mag, aggregate=np.median, metric="cosine",
                                                width=width)
        repeating = np.minimum(mag, repeating)
        mask_i = librosa.util.softmask(repeating, self.margin_i * (mag - repeating),
                                       power=self.power)
        mask_v = librosa.util.softmask(mag - repeating, self.margin_v * repeating,
                                       power=self.power)
        vocals = librosa.istft(mask_v * spec, hop_length=self.hop, length=len(piece))
        accompaniment = librosa.istft(mask_i * spec, hop_length=self.hop, length=len(piece))
        return np.stack([vocals, accompaniment]).astype(np.float32)

    def separate(self, mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = overlap_add(self.separate_chunk, mixture, self.chunk, self.overlap)
        return out[0], out[1]


def oracle_irm(mixture: np.ndarray, vocals: np.ndarray, accompaniment: np.ndarray,
               n_fft: int = 1024, hop: int = 256, alpha: float = 2.0,
               eps: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Ideal ratio mask ``|V|^a / (|V|^a + |A|^a)`` from the true stems, applied to the mixture.

    All inputs ``(samples,)``; returns ``(vocals, accompaniment)`` estimates, each
    ``(samples,)``. ``alpha=2`` is the Wiener-like power mask of sigsep's oracle IRM2.
    """
    mix = librosa.stft(np.asarray(mixture, dtype=np.float32), n_fft=n_fft, hop_length=hop)
    v = np.abs(librosa.stft(np.asarray(vocals, dtype=np.float32), n_fft=n_fft,
                            hop_length=hop)) ** alpha
    a = np.abs(librosa.stft(np.asarray(accompaniment, dtype=np.float32), n_fft=n_fft,
                            hop_length=hop)) ** alpha
    mask = v / (v + a + eps)
    n = len(mixture)
    est_v = librosa.istft(mask * mix, hop_length=hop, length=n)
    est_a = librosa.istft((1.0 - mask) * mix, hop_length=hop, length=n)
    return est_v.astype(np.float32), est_a.astype(np.float32)
