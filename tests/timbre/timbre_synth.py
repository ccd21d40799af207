"""Synthetic "singers" for the timbre tests: harmonic tones shaped by a formant envelope.

Each singer is a set of formants (centre Hz, bandwidth Hz, gain) and a register; a phrase
is a few notes with vibrato. Different formant sets sound like different voices, which is
what a timbre encoder must tell apart.
"""

from __future__ import annotations

import numpy as np

SR = 16_000

SINGERS = {
    "low_dark": {"formants": [(500, 90, 1.0), (900, 120, 0.6), (2400, 200, 0.25)], "f0": 110},
    "high_bright": {"formants": [(800, 90, 1.0), (1900, 150, 0.8), (3300, 250, 0.5)], "f0": 220},
    "mid_nasal": {"formants": [(300, 60, 1.0), (1300, 100, 0.3), (2800, 150, 0.6)], "f0": 160},
    "mid_open": {"formants": [(700, 120, 1.0), (1200, 130, 0.9), (2600, 300, 0.2)], "f0": 140},
}


def sing(singer: str, seconds: float = 3.0, seed: int = 0, f0_scale: float = 1.0) -> np.ndarray:
    """A phrase of ``seconds`` by ``singer``: random notes around its register, vibrato."""
    rng = np.random.default_rng(seed)
    spec = SINGERS[singer]
    n = int(seconds * SR)
    t = np.arange(n) / SR
    n_notes = max(1, int(seconds * 2))
    semis = rng.integers(-4, 5, n_notes)
    f0 = spec["f0"] * f0_scale * 2 ** (np.repeat(semis, int(np.ceil(n / n_notes)))[:n] / 12)
    f0 = f0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 6)) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    out = np.zeros(n)
    for k in range(1, 60):
        fk = k * f0
        amp = sum(g * np.exp(-0.5 * ((fk - fc) / bw) ** 2) for fc, bw, g in spec["formants"])
        amp = (amp + 0.02) * (fk < SR / 2 - 200)
        out += amp * np.sin(k * phase)
    out += 0.01 * rng.standard_normal(n)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def noise(seconds: float = 3.0, seed: int = 0, level: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * SR))).astype(np.float32)
