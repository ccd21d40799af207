"""Audio a tiny tagger can learn to hear, shared by the tagging tests: each "instrument"
is a steady tone (its frequency in Hz) or, for ``None``, noise bursts twice a second."""

import numpy as np

SR = 16000


def toy_audio(sounds: list[float | None], seconds: float, rng) -> np.ndarray:
    """The sum of ``sounds`` (tone frequencies, ``None`` for noise bursts): ``(samples,)``."""
    t = np.arange(int(seconds * SR)) / SR
    audio = np.zeros_like(t)
    for freq in sounds:
        if freq is None:
            audio += 0.2 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0)
        else:
            audio += 0.3 * np.sin(2 * np.pi * freq * t)
    return audio.astype(np.float32)
