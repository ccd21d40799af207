"""Cutting audio into the fixed analysis windows every encoder sees (3 s, 1.5 s hop)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embeddings.audio import SAMPLE_RATE

WINDOW_SECONDS = 3.0
HOP_SECONDS = 1.5
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)
HOP_SAMPLES = int(HOP_SECONDS * SAMPLE_RATE)
CONTOUR_HOP_SECONDS = 0.01
# A query clip (a hum, an example) is cut twice as densely as a catalog track, so one of
# its windows lines up with each catalog window to within a quarter window hop. In a val
# sweep (62 hums, 1,008 songs; an ad-hoc script, not a bench command) TCAE recall of the
# right song in the top 30 tracks went 0.66 -> 0.74 (0.5 s: 0.69; 0.375 s: 0.74 at twice
# the embedding time).
QUERY_HOP_SAMPLES = int(HOP_SECONDS / 2 * SAMPLE_RATE)


@dataclass(frozen=True)
class Windows:
    """A batch of windows and where they sit in the track."""

    audio: np.ndarray  # (n, WINDOW_SAMPLES) float32
    starts: np.ndarray  # (n,) seconds
    ends: np.ndarray  # (n,) seconds

    def __len__(self) -> int:
        return len(self.starts)


def cut(
    audio: np.ndarray,
    window: int = WINDOW_SAMPLES,
    hop: int = HOP_SAMPLES,
) -> Windows:
    """Cut ``(samples,)`` audio into ``(n, window)`` frames every ``hop`` samples.

    The last window is aligned to the end so the tail is covered; audio shorter than one
    window is zero-padded into a single window.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) <= window:
        padded = np.zeros(window, dtype=np.float32)
        padded[: len(audio)] = audio
        starts = np.array([0])
        frames = padded[None]
        ends = np.array([len(audio)])
    else:
        starts = np.arange(0, len(audio) - window + 1, hop)
        if starts[-1] + window < len(audio):
            starts = np.append(starts, len(audio) - window)
        frames = np.stack([audio[s : s + window] for s in starts])
        ends = starts + window
    return Windows(frames, starts / SAMPLE_RATE, ends / SAMPLE_RATE)
