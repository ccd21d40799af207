"""Sung-like test signals: harmonic tones with vibrato following a note list."""

from __future__ import annotations

import numpy as np

SR = 16_000


def sing(notes, seed: int = 0, noise: float = 0.003, vibrato: float = 0.25, tail: float = 0.3):
    """``[(onset_s, offset_s, midi)]`` -> float32 audio at 16 kHz: 7 decaying harmonics with
    5.5 Hz vibrato, 25 ms fades and a little noise."""
    rng = np.random.default_rng(seed)
    end = max(n[1] for n in notes) + tail
    freq = np.zeros(int(end * SR))
    amp = np.zeros_like(freq)
    for onset, offset, midi in notes:
        a, b = int(onset * SR), int(offset * SR)
        freq[a:b] = 440.0 * 2 ** ((midi - 69) / 12)
        amp[a:b] = 1.0
    t = np.arange(len(freq)) / SR
    freq = freq * 2 ** (vibrato / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(freq) / SR
    tone = sum(0.6**k * np.sin(k * phase) for k in range(1, 8))
    env = np.convolve(amp, np.ones(400) / 400, mode="same")
    return (0.2 * tone * env + noise * rng.standard_normal(len(freq))).astype(np.float32)


def tune(n_notes: int, seed: int, note_s: float = 0.4, base: int = 60):
    """A random stepwise tune of ``n_notes`` notes: ``[(onset, offset, midi)]``."""
    rng = np.random.default_rng(seed)
    midi, m = [], base
    for step in rng.choice([-4, -3, -2, -1, 1, 2, 3, 5], size=n_notes):
        m = m + step if abs(m + step - base) <= 7 else m - step  # reflect at the range's ends
        midi.append(m)
    return [(i * note_s, i * note_s + 0.9 * note_s, float(m)) for i, m in enumerate(midi)]


def hum_of(notes, first: int, count: int, shift: float, tempo: float, seed: int = 0):
    """Notes ``first .. first+count`` transposed by ``shift`` semitones, played ``tempo``
    times as fast, with small per-note pitch errors; onsets start at 0.2 s."""
    rng = np.random.default_rng(seed)
    part = notes[first : first + count]
    t0 = part[0][0]
    return [
        (0.2 + (a - t0) / tempo, 0.2 + (b - t0) / tempo, m + shift + rng.normal(0, 0.15))
        for a, b, m in part
    ]
