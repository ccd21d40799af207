"""The tagger's modules, training stages, baseline and Tagger interface on toy signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from embeddings.base import Tagger
from embeddings.tagging import (
    JetaTagger,
    LogRegTagger,
    TagAutoencoder,
    TaggerConfig,
    TaggerError,
    TaggerWeightsError,
    multi_hot,
    track_tags,
)
from embeddings.tagging_train import (
    Dataset,
    TrainConfig,
    train_no_je,
    train_stage1,
    train_stage2,
)
from embeddings.windows import WINDOW_SAMPLES

TOY_TAGS = ["low tone", "high tone", "noise"]


def tiny_config(joint: bool = True) -> TaggerConfig:
    return TaggerConfig(vocabulary=TOY_TAGS, joint=joint, n_mels=16, channels=[4, 8],
                        h_dim=32, z_dim=8, classifier_dim=16, dropout=0.0)


def toy_windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows that are a random mix of a 200 Hz tone, a 3 kHz tone and noise; the labels
    say which are present (at least one always is)."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW_SAMPLES) / 16000
    labels = rng.random((n, 3)) < 0.5
    labels[labels.sum(1) == 0, rng.integers(0, 3)] = True
    parts = [np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 3000 * t)]
    waves = np.zeros((n, WINDOW_SAMPLES), np.float32)
    for i in range(n):
        for k in range(2):
            if labels[i, k]:
                waves[i] += 0.3 * rng.uniform(0.5, 1.0) * parts[k]
        if labels[i, 2]:
            waves[i] += 0.1 * rng.standard_normal(WINDOW_SAMPLES)
    return waves, labels.astype(np.float32)


def toy_dataset(config: TaggerConfig, n: int, seed: int) -> tuple[Dataset, np.ndarray]:
    waves, labels = toy_windows(n, seed)
    with torch.no_grad():
        mel = JetaTagger(config).logmel(torch.from_numpy(waves)).numpy()
    return Dataset(mel, labels, np.arange(n) // 2), waves


@pytest.fixture(scope="session")
def toy_data():
    cfg = tiny_config()
    return toy_dataset(cfg, 48, seed=1), toy_dataset(cfg, 24, seed=2)


@pytest.fixture(scope="session")
def trained_je(toy_data, tmp_path_factory):
    (train, _), (val, _) = toy_data
    torch.manual_seed(0)
    model = JetaTagger(tiny_config(joint=True))
    cfg = TrainConfig(stage1_epochs=6, stage2_epochs=30, batch_size=8, lr=3e-3,
                      windows_per_track=0)
    train_stage1(model, train, val, cfg)
    train_stage2(model, train, val, cfg)
    path = tmp_path_factory.mktemp("je") / "je.safetensors"
    model.save(path)
    return model, path


def test_tag_autoencoder_reconstructs_multi_hot():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tags = torch.from_numpy((rng.random((32, 10)) < 0.3).astype(np.float32))
    ae = TagAutoencoder(n_tags=10, z_dim=16)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        _, recon = ae(tags)
        loss = torch.nn.functional.mse_loss(recon, tags)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, recon = ae(tags)
    assert loss.item() < 0.01 < first
    assert torch.equal((recon > 0.5).float(), tags)


def test_stage2_leaves_extractor_unchanged(toy_data):
    (train, _), (val, _) = toy_data
    torch.manual_seed(0)
    model = JetaTagger(tiny_config(joint=True))
    cfg = TrainConfig(stage1_epochs=1, stage2_epochs=3, batch_size=8, windows_per_track=0)
    train_stage1(model, train, val, cfg)
    before = {k: v.clone() for k, v in model.extractor.state_dict().items()}
    classifier_before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    train_stage2(model, train, val, cfg)
    after = model.extractor.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert any(not torch.equal(classifier_before[k], v)
               for k, v in model.classifier.state_dict().items())
    assert all(p.requires_grad for p in model.extractor.parameters())


def test_stage1_needs_joint_model(toy_data):
    (train, _), (val, _) = toy_data
    with pytest.raises(TaggerError):
        train_stage1(JetaTagger(tiny_config(joint=False)), train, val, TrainConfig())


def test_joint_tagger_learns_toy_tags(trained_je):
    model, _ = trained_je
    waves, labels = toy_windows(24, seed=3)
    probs, _ = model.predict(waves)
    assert roc_auc_score(labels, probs, average="macro") > 0.9


def test_no_je_tagger_learns_toy_tags(toy_data):
    (train, _), (val, _) = toy_data
    torch.manual_seed(0)
    model = JetaTagger(tiny_config(joint=False))
    history = train_no_je(model, train, val, TrainConfig(no_je_epochs=8, batch_size=8,
                                                         lr=3e-3, windows_per_track=0))
    assert len(history) == 8 and any(h.get("best") for h in history)
    waves, labels = toy_windows(24, seed=3)
    probs, joint = model.predict(waves)
    assert roc_auc_score(labels, probs, average="macro") > 0.9
    # Without the joint embedding the "joint" space is the normalised probability vector.
    assert joint.shape == (24, 3) and model.dim == 3
    np.testing.assert_allclose(joint, probs / np.linalg.norm(probs, axis=1, keepdims=True),
                               rtol=1e-5)


@pytest.mark.parametrize("joint", [True, False])
def test_predict_shapes_and_unit_norms(joint):
    model = JetaTagger(tiny_config(joint=joint))
    assert isinstance(model, Tagger)
    waves, _ = toy_windows(5, seed=4)
    probs, emb = model.predict(waves)
    assert probs.shape == (5, 3) and emb.shape == (5, model.dim)
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    tags = model.embed_tags(np.stack([multi_hot(["noise"], TOY_TAGS),
                                      multi_hot(["low tone", "high tone"], TOY_TAGS)]))
    assert tags.shape == (2, model.dim)
    np.testing.assert_allclose(np.linalg.norm(tags, axis=1), 1.0, rtol=1e-5)
    assert model.predict(np.zeros((0, WINDOW_SAMPLES)))[0].shape == (0, 3)


def test_bad_input_gets_typed_errors():
    model = JetaTagger(tiny_config())
    with pytest.raises(TaggerError):
        model.predict(np.zeros((2, 1000), np.float32))
    with pytest.raises(TaggerError):
        model.predict(np.full((1, WINDOW_SAMPLES), np.nan, np.float32))
    with pytest.raises(TaggerError):
        model.embed_tags(np.ones((1, 7), np.float32))
    with pytest.raises(TaggerError):
        multi_hot(["kazoo"], TOY_TAGS)
    with pytest.raises(TaggerError):
        track_tags(np.zeros((0, 3)), np.zeros((0, 8)))


def test_save_load_round_trip(trained_je, tmp_path):
    model, path = trained_je
    loaded = JetaTagger.load(path, device="cpu")
    assert loaded.version == model.version and loaded.version.startswith("jetatag-je-")
    assert loaded.vocabulary == TOY_TAGS
    waves, _ = toy_windows(4, seed=5)
    for a, b in zip(model.predict(waves), loaded.predict(waves), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(TaggerWeightsError):
        JetaTagger.load(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    (tmp_path / "bad.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(TaggerWeightsError):
        JetaTagger.load(tmp_path / "bad.safetensors")


def test_joint_space_ranks_matching_windows_first(trained_je):
    model, _ = trained_je
    waves, labels = toy_windows(24, seed=6)
    _, joint = model.predict(waves)
    query = model.embed_tags(multi_hot(["noise"], TOY_TAGS)[None])[0]
    top = np.argsort(-(joint @ query))[:5]
    assert labels[top, 2].mean() >= 0.8


def test_track_tags_averages_windows():
    probs = np.array([[0.2, 0.8], [0.4, 0.6]], np.float32)
    joint = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p, j = track_tags(probs, joint)
    np.testing.assert_allclose(p, [0.3, 0.7])
    np.testing.assert_allclose(j, [2**-0.5, 2**-0.5], rtol=1e-6)


def test_logreg_baseline_learns_toy_problem(toy_data, tmp_path):
    (train, _), _ = toy_data
    cfg = tiny_config()
    baseline = LogRegTagger.fit(train.mel, train.labels, TOY_TAGS, n_mels=cfg.n_mels,
                                n_fft=cfg.n_fft, hop=cfg.hop)
    assert isinstance(baseline, Tagger)
    waves, labels = toy_windows(24, seed=7)
    probs, joint = baseline.predict(waves)
    assert roc_auc_score(labels, probs, average="macro") > 0.95
    np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, rtol=1e-5)
    baseline.save(tmp_path / "logreg.safetensors")
    loaded = LogRegTagger.load(tmp_path / "logreg.safetensors")
    np.testing.assert_allclose(loaded.predict(waves)[0], probs, rtol=1e-5)
    assert loaded.version.startswith("logreg-") and loaded.dim == 3


def test_logreg_handles_a_tag_absent_from_training(toy_data):
    (train, _), _ = toy_data
    labels = train.labels.copy()
    labels[:, 1] = 0
    cfg = tiny_config()
    baseline = LogRegTagger.fit(train.mel, labels, TOY_TAGS, n_mels=cfg.n_mels,
                                n_fft=cfg.n_fft, hop=cfg.hop)
    probs = baseline.predict_mel(train.mel)
    assert probs[:, 1].max() < 0.01
