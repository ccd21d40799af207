"""The contrastive encoder, its MFCC baseline and the singer-vector helpers."""

import numpy as np
import pytest
import torch
from timbre_synth import SINGERS, sing

from embeddings.base import TimbreEncoder
from embeddings.timbre import (
    MfccBaseline,
    TimbreConfig,
    TimbreNet,
    TimbreWeightsError,
    artist_vector,
    track_vector,
)
from embeddings.timbre_train import same_singer_retrieval

TINY = TimbreConfig(n_mels=32, channels=[4, 8, 8, 8], hidden=32, dim=16)


@pytest.fixture(scope="module")
def windows():
    return np.stack([sing(s, seed=i) for i, s in enumerate(SINGERS)])


def test_encoder_unit_norm_and_deterministic(windows):
    torch.manual_seed(0)
    model = TimbreNet(TINY)
    assert isinstance(model, TimbreEncoder)
    a = model.embed(windows)
    b = model.embed(windows[::-1].copy())[::-1]
    assert a.shape == (len(windows), TINY.dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # Eval mode: a window's vector does not depend on the rest of the batch.
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert model.embed(np.zeros((0, 48000), np.float32)).shape == (0, TINY.dim)


def test_encoder_save_load_roundtrip(tmp_path, windows):
    torch.manual_seed(1)
    model = TimbreNet(TINY, version="timbre-test-1")
    model.save(tmp_path / "enc.safetensors", meta={"steps": 0})
    loaded = TimbreNet.load(tmp_path / "enc.safetensors")
    assert loaded.version == "timbre-test-1" and loaded.meta == {"steps": 0}
    np.testing.assert_allclose(model.embed(windows), loaded.embed(windows), atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))


def test_encoder_errors(tmp_path):
    with pytest.raises(TimbreWeightsError):
        TimbreNet.load(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TimbreWeightsError):
        TimbreNet.load(tmp_path / "bad.safetensors")
    model = TimbreNet(TINY)
    with pytest.raises(ValueError):
        model.embed(np.zeros(48000, np.float32))
    with pytest.raises(ValueError):
        model.embed(np.full((1, 48000), np.nan, np.float32))


def test_mfcc_baseline_separates_two_timbres():
    base = MfccBaseline()
    assert isinstance(base, TimbreEncoder)
    names = ["low_dark", "high_bright"]
    x = np.stack([sing(s, seed=10 + k) for s in names for k in range(4)])
    labels = np.repeat([0, 1], 4)
    v = base.embed(x)
    assert v.shape == (8, base.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    same = sims[labels[:, None] == labels[None, :]].mean()
    other = sims[labels[:, None] != labels[None, :]].mean()
    assert same > other + 0.1
    assert same_singer_retrieval(v, labels)["top1"] == 1.0


def test_track_and_artist_vectors():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 8)).astype(np.float32)
    voiced = np.array([True, False, True, False, False])
    t = track_vector(w, voiced)
    expected = w[[0, 2]].mean(0)
    np.testing.assert_allclose(t, expected / np.linalg.norm(expected), rtol=1e-5)
    assert track_vector(w, np.zeros(5, bool)) is None  # instrumental: no singer vector
    with pytest.raises(ValueError):
        track_vector(w, np.ones(3, bool))
    tracks = rng.standard_normal((3, 8)).astype(np.float32)
    tracks /= np.linalg.norm(tracks, axis=1, keepdims=True)
    a2, a3 = artist_vector(tracks[:2]), artist_vector(tracks)
    # Adding a track moves the artist vector towards it; removing it moves it back.
    assert a3 @ tracks[2] > a2 @ tracks[2]
    np.testing.assert_allclose(artist_vector(tracks[:2]), a2)
    with pytest.raises(ValueError):
        artist_vector(np.zeros((0, 8)))


def test_same_singer_retrieval_metrics():
    v = np.eye(4, dtype=np.float32)
    v[1] = v[0]
    v[3] = np.array([0.9, 0, 0.1, 0.0])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    labels = np.array([0, 0, 1, 1])
    m = same_singer_retrieval(v, labels)
    # Queries 0, 1 find each other; 2's nearest is 3 (right); 3's nearest is 0 (wrong,
    # its relevant item 2 is ranked 3rd -> AP 1/3).
    assert m["n_queries"] == 4
    assert m["top1"] == pytest.approx(0.75)
    assert m["map"] == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)
