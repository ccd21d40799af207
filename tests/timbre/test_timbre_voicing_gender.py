"""Voiced-window detection and the gender classifier."""

import numpy as np
import pytest
from timbre_synth import noise, sing

from embeddings.gender import GenderClassifier, GenderWeightsError, predict_gender
from embeddings.voicing import voiced_windows
from embeddings.windows import cut


def test_singing_vs_noise_and_silence():
    track = np.concatenate([
        np.zeros(48000, np.float32),  # 0-3 s silence
        sing("mid_open", seconds=6.0, seed=3),  # 3-9 s singing
        noise(3.0, level=0.05),  # 9-12 s breathy noise
    ])
    w = cut(track)
    flags = voiced_windows(w.audio, track_vocals=track)
    expected = (w.starts >= 2.9) & (w.ends <= 9.1)
    assert flags.dtype == bool and flags.shape == (len(w),)
    np.testing.assert_array_equal(flags[expected], True)
    np.testing.assert_array_equal(flags[(w.ends <= 3.0) | (w.starts >= 9.0)], False)


def test_quiet_leakage_and_mixture_share():
    loud = sing("low_dark", seed=1)
    leak = 0.003 * sing("high_bright", seed=2)  # separator leakage, -40 dB
    flags = voiced_windows(np.stack([loud, leak]))
    assert flags.tolist() == [True, False]
    # Audible vocals that carry almost none of the mixture's energy are not singing.
    mixture = np.stack([loud, 100 * loud])
    assert voiced_windows(np.stack([loud, loud]), mixture_windows=mixture).tolist() == [True,
                                                                                       False]
    assert voiced_windows(np.zeros((2, 48000), np.float32)).tolist() == [False, False]
    assert voiced_windows(np.zeros((0, 48000), np.float32)).shape == (0,)
    with pytest.raises(ValueError):
        voiced_windows(np.full((1, 48000), np.inf, np.float32))


def test_gender_classifier_toy(tmp_path):
    rng = np.random.default_rng(0)
    axis = np.zeros(16, np.float32)
    axis[0] = 1
    male = rng.standard_normal((20, 16)) * 0.3 + axis
    female = rng.standard_normal((20, 16)) * 0.3 - axis
    x = np.concatenate([male, female])
    y = ["male"] * 20 + ["female"] * 20
    clf = GenderClassifier.fit(x, y)
    labels, probs = clf.predict(x)
    assert labels == y
    assert ((probs >= 0.5) & (probs <= 1)).all()
    clf.save(tmp_path / "g.safetensors")
    loaded = GenderClassifier.load(tmp_path / "g.safetensors")
    assert predict_gender(x, loaded)[0] == y
    np.testing.assert_allclose(loaded.predict_proba(x), clf.predict_proba(x), rtol=1e-5)
    with pytest.raises(ValueError):
        GenderClassifier.fit(x, ["male"] * 40)
    with pytest.raises(ValueError):
        GenderClassifier.fit(x, ["man"] * 40)
    with pytest.raises(ValueError):
        clf.predict(np.zeros((1, 3)))
    with pytest.raises(GenderWeightsError):
        GenderClassifier.load(tmp_path / "none.safetensors")
