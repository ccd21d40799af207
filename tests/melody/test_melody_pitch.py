import numpy as np
import pytest
from melody_synth import sing, tune

from embeddings import pitch


@pytest.fixture(scope="module")
def sung():
    notes = tune(20, seed=1)
    return notes, sing(notes)


def test_yin_tracks_sung_notes(sung):
    notes, audio = sung
    est = pitch.contour(audio, "yin")
    assert len(est) == pitch.n_frames(len(audio))
    scores = pitch.raw_pitch_accuracy(est, pitch.notes_to_contour(notes, len(est)))
    assert scores["raw_pitch_accuracy"] > 0.9
    assert scores["voicing_recall"] > 0.9


def test_pyin_tracks_sung_notes(sung):
    notes, audio = sung
    short = audio[: 3 * pitch.SAMPLE_RATE]
    est = pitch.contour(short, "pyin")
    scores = pitch.raw_pitch_accuracy(est, pitch.notes_to_contour(notes, len(est)))
    assert scores["raw_pitch_accuracy"] > 0.9


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros(5 * 16000, dtype=np.float32),
        (0.1 * np.random.default_rng(0).standard_normal(5 * 16000)).astype(np.float32),
    ],
    ids=["silence", "noise"],
)
def test_silence_and_noise_have_no_melody(audio):
    est = pitch.contour(audio)
    assert np.isfinite(est).mean() < 0.05
    with pytest.raises(pitch.NoMelodyError, match="no melody found"):
        pitch.require_melody(est)


def test_a_constant_tone_is_not_a_melody():
    audio = sing([(0.2, 3.0, 64.0)], vibrato=0.0)
    with pytest.raises(pitch.NoMelodyError):
        pitch.require_melody(pitch.contour(audio))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="mono"):
        pitch.contour(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="unknown pitch tracker"):
        pitch.contour(np.zeros(16000, dtype=np.float32), "crepe")
