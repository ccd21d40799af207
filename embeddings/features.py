"""Spectral features shared by the models, in torch so they batch and run on the GPU."""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

from embeddings.audio import SAMPLE_RATE


class LogMel(nn.Module):
    """Log-compressed mel spectrogram.

    Input ``(batch, samples)`` float waveform at ``sample_rate``; output
    ``(batch, n_mels, frames)`` with ``frames = samples // hop + 1`` (centred STFT).
    """

    def __init__(
        self,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop: int = 256,
        sample_rate: int = SAMPLE_RATE,
        fmin: float = 0.0,
        fmax: float | None = None,
    ):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("filters", torch.from_numpy(fb.astype(np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave, self.n_fft, self.hop, window=self.window, center=True, return_complex=True
        )
        power = spec.abs().pow(2)
        return torch.log(self.filters @ power + 1e-6)
