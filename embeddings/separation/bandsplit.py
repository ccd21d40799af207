"""The band split of the spectrogram and its inverse, the per-band mask estimator.

Band-Split RNN (Luo & Yu, TASLP 2023) cuts the spectrum into hand-made subbands, narrow
where the target's energy is detailed. Its best vocal scheme (V7) uses fine bands below
1 kHz; here it is adapted to a 16 kHz signal (8 kHz Nyquist): 100 Hz bands below 1 kHz,
250 Hz bands to 4 kHz, 500 Hz bands to 8 kHz.
"""

from __future__ import annotations

import torch
from torch import nn

# (upper edge in Hz, band width in Hz) of each region, low to high.
VOCAL_SCHEME_16K: tuple[tuple[float, float], ...] = ((1000.0, 100.0), (4000.0, 250.0),
                                                     (8000.0, 500.0))


def band_widths(n_fft: int, sample_rate: int,
                scheme: tuple[tuple[float, float], ...] = VOCAL_SCHEME_16K) -> list[int]:
    """Number of STFT bins in each band, low to high; they sum to ``n_fft // 2 + 1``.

    A bin belongs to the band whose ``[low, high)`` range holds its centre frequency; the
    Nyquist bin joins the last band, so every bin lies in exactly one band.
    """
    n_bins = n_fft // 2 + 1
    edges = [0.0]
    for upper, width in scheme:
        while edges[-1] + width <= upper + 1e-6:
            edges.append(edges[-1] + width)
        if edges[-1] < upper:
            edges.append(upper)
    freqs = torch.arange(n_bins, dtype=torch.float64) * sample_rate / n_fft
    widths = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        last = high >= edges[-1]
        inside = (freqs >= low) & ((freqs <= high) if last else (freqs < high))
        widths.append(int(inside.sum()))
    widths = [w for w in widths if w > 0]
    if sum(widths) != n_bins:
        raise ValueError(f"band scheme covers {sum(widths)} of {n_bins} bins; "
                         f"it must reach the Nyquist frequency {sample_rate / 2:g} Hz")
    return widths


class BandSplit(nn.Module):
    """Complex spectrogram -> one N-dimensional feature per band and frame.

    Input ``(batch, freq, frames, 2)`` (real and imaginary parts); output
    ``(batch, bands, frames, N)``. Each band is normalised (LayerNorm over its ``2 * width``
    values) and projected to N features by its own linear layer.
    """

    def __init__(self, widths: list[int], features: int):
        super().__init__()
        self.widths = list(widths)
        self.norms = nn.ModuleList(nn.LayerNorm(2 * w) for w in self.widths)
        self.fcs = nn.ModuleList(nn.Linear(2 * w, features) for w in self.widths)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        batch, _, frames, _ = spec.shape
        out = []
        for band, norm, fc in zip(spec.split(self.widths, dim=1), self.norms, self.fcs,
                                  strict=True):
            # (batch, width, frames, 2) -> (batch, frames, 2 * width)
            x = band.permute(0, 2, 1, 3).reshape(batch, frames, -1)
            out.append(fc(norm(x)))
        return torch.stack(out, dim=1)


class MaskEstimation(nn.Module):
    """One N-dimensional feature per band and frame -> complex mask over all bins.

    Input ``(batch, bands, frames, N)``; output ``(batch, freq, frames, 2)`` (real and
    imaginary mask). Each band has its own MLP: LayerNorm, Linear(N, hidden), tanh,
    Linear(hidden, 4 * width), GLU -> ``2 * width`` values.
    """

    def __init__(self, widths: list[int], features: int, hidden: int):
        super().__init__()
        self.widths = list(widths)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(features), nn.Linear(features, hidden), nn.Tanh(),
                          nn.Linear(hidden, 4 * w), nn.GLU(dim=-1))
            for w in self.widths
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, frames, _ = z.shape
        masks = []
        for k, (w, mlp) in enumerate(zip(self.widths, self.mlps, strict=True)):
            m = mlp(z[:, k])  # (batch, frames, 2 * width)
            masks.append(m.reshape(batch, frames, w, 2).permute(0, 2, 1, 3))
        return merge_bands(masks)


def merge_bands(masks: list[torch.Tensor]) -> torch.Tensor:
    """Per-band ``(batch, width_k, frames, 2)`` tensors -> ``(batch, freq, frames, 2)``."""
    return torch.cat(masks, dim=1)


def apply_mask(spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Complex product of ``(batch, freq, frames, 2)`` spectrogram and mask, same shape."""
    sr, si = spec.unbind(-1)
    mr, mi = mask.unbind(-1)
    return torch.stack([sr * mr - si * mi, sr * mi + si * mr], dim=-1)
