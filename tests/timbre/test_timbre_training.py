"""A toy contrastive run on synthetic voices: pitch-shifted copies get pushed away."""

import numpy as np
import pytest
import torch
from timbre_synth import SINGERS, sing

from embeddings.timbre import TimbreConfig, TimbreNet
from embeddings.timbre_train import (
    TrainConfig,
    WindowSet,
    augment,
    build_window_set,
    contrastive_loss,
    evaluate,
    train,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = TimbreConfig(n_mels=32, channels=[4, 8, 8, 8], hidden=32, dim=16)


@pytest.fixture(scope="session")
def toy_set(tmp_path_factory):
    tracks, singers = [], []
    for i, name in enumerate(SINGERS):
        for k in range(2):
            tracks.append(sing(name, seconds=6.0, seed=100 * i + k))
            singers.append(i)
    data = build_window_set(tracks, singers, TINY, max_windows_per_track=3, seed=0)
    path = tmp_path_factory.mktemp("timbre") / "toy.npz"
    data.save(path)
    return WindowSet.load(path)


def _trained(data, copies):
    torch.manual_seed(0)
    model = TimbreNet(TINY)
    cfg = TrainConfig(steps=150, singers_per_batch=4, lr=3e-3, copies=copies, eval_every=150)
    history = train(model, data, cfg, val=data)
    return model, history[-1]


def test_window_set_shapes(toy_set):
    n = len(toy_set)
    assert n == 4 * 2 * 3
    assert toy_set.logmel.shape == (n, TINY.n_mels, TINY.frames())
    assert toy_set.shifted.shape == toy_set.logmel.shape == toy_set.stretched.shape
    assert set(toy_set.singer) == {0, 1, 2, 3} and len(set(toy_set.track)) == 8


def test_pitch_shifted_copies_pushed_away(toy_set):
    _, plain = _trained(toy_set, copies=False)
    model, contrastive = _trained(toy_set, copies=True)
    assert contrastive["top1"] == 1.0
    # With the copies as negatives, a pitch-shifted window looks less like its original
    # than another song of the same singer does, and less than without those negatives.
    assert contrastive["cos_shifted"] < contrastive["cos_same_singer"] - 0.2
    assert contrastive["cos_shifted"] < plain["cos_shifted"] - 0.1
    assert contrastive["cos_stretched"] < plain["cos_stretched"]
    assert evaluate(model, toy_set)["top1"] == contrastive["top1"]  # eval is deterministic


def test_loss_and_augment():
    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    neg = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    loss = contrastive_loss(z, labels, neg, 0.1)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # Perfectly clustered anchors with far negatives give a lower loss.
    good = torch.nn.functional.normalize(torch.eye(4)[[0, 0, 1, 1, 2, 2]] + 1e-3, dim=1)
    assert contrastive_loss(good, labels, -good[:3], 0.1) < loss
    x = torch.randn(2, 8, 20)
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert np.abs((y - x).numpy()).mean() < 3.0
