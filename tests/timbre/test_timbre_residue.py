"""Robustness to separation residue: voicing scores, weighted track vectors, accompaniment
bleed augmentation, and the gender classifier's pitch input."""

import numpy as np
import pytest
import torch
from timbre_synth import SINGERS, noise, sing

from embeddings.gender import (
    GenderClassifier,
    GenderWeightsError,
    NeighbourGenderClassifier,
    candidates,
    choose_c,
    leave_singers_out_accuracy,
    load_classifier,
    median_pitch,
)
from embeddings.timbre import TimbreConfig, TimbreNet, track_vector
from embeddings.timbre_train import (
    TrainConfig,
    WindowSet,
    anchor_views,
    bleed,
    build_window_set,
    train,
)
from embeddings.voicing import VoicingConfig, voiced_windows, voicing_scores
from embeddings.windows import cut

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = TimbreConfig(n_mels=32, channels=[4, 8, 8, 8], hidden=32, dim=16)


@pytest.fixture(scope="module")
def stem_set(tmp_path_factory):
    """Two songs per synthetic singer: 'separated' vocals (vocals + a little accompaniment),
    the clean stems and the mixture."""
    tracks, singers, mixtures, stems = [], [], [], []
    for i, name in enumerate(SINGERS):
        for k in range(2):
            vocals = sing(name, seconds=6.0, seed=100 * i + k)
            accomp = noise(6.0, seed=7 + 100 * i + k, level=0.05)
            tracks.append(vocals + 0.1 * accomp)
            singers.append(i)
            mixtures.append(vocals + accomp)
            stems.append((vocals, accomp))
    data = build_window_set(tracks, singers, TINY, max_windows_per_track=3, copies=False,
                            mixtures=mixtures, stems=stems)
    path = tmp_path_factory.mktemp("residue") / "set.npz"
    data.save(path)
    return WindowSet.load(path)


def test_voicing_scores_agree_with_voiced_windows():
    track = np.concatenate([np.zeros(48000, np.float32), sing("mid_open", seconds=6.0, seed=3),
                            noise(3.0, level=0.05)])
    w = cut(track)
    scores = voicing_scores(w.audio, track_vocals=track)
    assert scores.dtype == np.float32 and scores.shape == (len(w),)
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(scores >= VoicingConfig().min_voiced_fraction,
                                  voiced_windows(w.audio, track_vocals=track))
    # a window of steady singing scores above one that is half silence
    sung = (w.starts >= 3.0) & (w.ends <= 9.0)
    assert scores[sung].min() > scores[0]
    # vocals carrying almost none of the mixture's energy score 0
    loud = sing("low_dark", seed=1)
    assert voicing_scores(np.stack([loud]), mixture_windows=np.stack([100 * loud]))[0] == 0.0
    assert voicing_scores(np.zeros((0, 48000), np.float32)).shape == (0,)


def test_weighted_track_vector():
    v = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(track_vector(v, weights=np.array([1.0, 0.0, 0.0])), v[0])
    weighted = track_vector(v, weights=np.array([3.0, 1.0, 0.0]))
    np.testing.assert_allclose(weighted, np.array([3, 1, 0]) / np.sqrt(10), rtol=1e-6)
    np.testing.assert_allclose(track_vector(v, weights=np.ones(3)), track_vector(v))
    voiced = np.array([False, True, True])
    np.testing.assert_allclose(track_vector(v, voiced, np.array([5.0, 1.0, 1.0])),
                               track_vector(v[1:]))
    assert track_vector(v, weights=np.zeros(3)) is None
    with pytest.raises(ValueError):
        track_vector(v, weights=np.ones(2))
    with pytest.raises(ValueError):
        track_vector(v, weights=np.array([1.0, -1.0, 1.0]))


def test_window_set_keeps_stems_and_scores(stem_set):
    n = len(stem_set)
    assert n == 4 * 2 * 3
    assert stem_set.clean.shape == stem_set.accomp.shape == stem_set.logmel.shape
    assert stem_set.shifted is None
    assert stem_set.weight.shape == (n,)
    assert (stem_set.weight >= VoicingConfig().min_voiced_fraction).all()
    assert (stem_set.weight <= 1).all()
    both = WindowSet.concat([stem_set, stem_set])
    assert both.clean.shape[0] == 2 * n
    no_stems = WindowSet(stem_set.logmel, stem_set.singer, stem_set.track)
    assert WindowSet.concat([stem_set, no_stems]).clean is None
    with pytest.raises(ValueError):
        build_window_set([np.zeros(48000, np.float32)], [0], TINY, stems=[])


def test_bleed_sets_the_vocal_to_accompaniment_ratio():
    gen = torch.Generator().manual_seed(0)
    vocals = torch.log(torch.rand(2, 8, 10, generator=gen) + 0.5)
    accomp = torch.log(torch.rand(2, 8, 10, generator=gen) + 0.5)
    snr = torch.tensor([0.0, 20.0])
    out = bleed(vocals, accomp, snr)
    added = out.exp() - 1e-6 - vocals.exp()
    ratio = vocals.exp().mean(dim=(1, 2)) / added.mean(dim=(1, 2))
    np.testing.assert_allclose(10 * torch.log10(ratio).numpy(), snr.numpy(), atol=1e-3)


def test_anchor_views_and_training_with_bleed(stem_set):
    gen = torch.Generator().manual_seed(0)
    idx = np.arange(len(stem_set))
    plain = anchor_views(stem_set, idx, TrainConfig(), gen)
    np.testing.assert_array_equal(plain.numpy(), stem_set.logmel.astype(np.float32))
    mixed = anchor_views(stem_set, idx, TrainConfig(clean_prob=0.5, residue_prob=0.5), gen)
    changed = (mixed - plain).abs().amax(dim=(1, 2)) > 1e-3
    assert 0 < int(changed.sum()) <= len(idx)
    torch.manual_seed(0)
    cfg = TrainConfig(steps=4, singers_per_batch=2, copies=False, clean_prob=0.4,
                      residue_prob=0.3, eval_every=2, weighted_eval=True)
    history = train(TimbreNet(TINY), stem_set, cfg, val=stem_set)
    assert len(history) == 2 and np.isfinite(history[-1]["map"])
    no_stems = WindowSet(stem_set.logmel, stem_set.singer, stem_set.track)
    with pytest.raises(ValueError, match="stems"):
        train(TimbreNet(TINY), no_stems, cfg)


def test_gender_with_pitch(tmp_path):
    rng = np.random.default_rng(0)
    # vectors say little about gender; the median pitch says a lot
    x = rng.standard_normal((40, 8)).astype(np.float32)
    y = ["male"] * 20 + ["female"] * 20
    pitches = np.concatenate([rng.normal(50, 2, 20), rng.normal(62, 2, 20)])
    pitches[3] = np.nan  # no voiced frame: no pitch evidence, still predicted
    groups = [f"s{i // 5}" for i in range(40)]
    c, scores = choose_c(x, y, groups, pitches)
    assert c in scores and scores[c] >= 0.9
    assert choose_c(x, y, groups)[1][c] < scores[c]
    clf = GenderClassifier.fit(x, y, c=c, pitches=pitches)
    assert clf.uses_pitch and clf.pitch_coef < 0  # higher pitch, less likely male
    labels, probs = clf.predict(x, pitches)
    assert np.mean(np.array(labels) == np.array(y)) >= 0.9
    assert len(clf.predict(x)[0]) == 40  # without pitches: the vectors alone
    clf.save(tmp_path / "g.safetensors", meta={"c": c})
    loaded = GenderClassifier.load(tmp_path / "g.safetensors")
    assert loaded.uses_pitch and loaded.c == c
    np.testing.assert_allclose(loaded.predict_proba(x, pitches), clf.predict_proba(x, pitches),
                               rtol=1e-5)
    with pytest.raises(ValueError):
        clf.predict(x, pitches[:3])
    with pytest.raises(ValueError):
        GenderClassifier.fit(x, y, pitches=np.full(40, np.nan))
    assert np.isnan(median_pitch(np.full(5, np.nan)))
    assert median_pitch(np.array([60.0, np.nan, 62.0, 64.0])) == 62.0


def test_neighbour_gender_classifier_tells_unseen_personas_of_known_voices(tmp_path):
    rng = np.random.default_rng(1)
    # four voices, five singers each: a voice's singers lie near it; the men's voices sit on
    # opposite sides of the women's (+-e0 vs +-e1), as no single direction could tell apart
    voices = 2.0 * np.eye(8)[[0, 1, 0, 1]] * np.array([1, 1, -1, -1])[:, None]
    genders = ["male", "female", "male", "female"]
    x, y, groups, pitches = [], [], [], []
    for v in range(4):
        for singer in range(5):
            centre = voices[v] + 0.3 * rng.standard_normal(8)
            for _ in range(6):
                x.append(centre + 0.05 * rng.standard_normal(8))
                y.append(genders[v])
                groups.append(f"v{v}s{singer}")
                pitches.append(rng.normal(52 if genders[v] == "male" else 60, 3))
    x = np.array(x, np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pitches = np.array(pitches)
    options = candidates(with_pitch=True)
    knn = leave_singers_out_accuracy(options["neighbours vector k=5"], x, y, groups, pitches)
    linear = leave_singers_out_accuracy(options["logistic vector C=1.0"], x, y, groups, pitches)
    assert knn == 1.0 and linear < 0.8
    clf = NeighbourGenderClassifier.fit(x, y, k=5, pitches=pitches, pitch_weight=0.4)
    assert clf.uses_pitch and clf.predict(x, pitches)[0] == y
    unknown = pitches.copy()
    unknown[:3] = np.nan  # no pitch evidence: the training mean
    assert clf.predict(x, unknown)[0] == y and len(clf.predict(x)[0]) == len(y)
    clf.save(tmp_path / "knn.safetensors", meta={"classifier": "neighbours"})
    loaded = load_classifier(tmp_path / "knn.safetensors")
    assert isinstance(loaded, NeighbourGenderClassifier) and loaded.k == 5
    np.testing.assert_array_equal(loaded.predict_proba(x, pitches), clf.predict_proba(x, pitches))
    assert loaded.meta == {"classifier": "neighbours"}
    with pytest.raises(GenderWeightsError, match="neighbours"):
        GenderClassifier.load(tmp_path / "knn.safetensors")  # not the logistic kind
    assert NeighbourGenderClassifier.fit(x[:4], y[:2] + ["female"] * 2, k=9).k == 3
    with pytest.raises(ValueError, match="odd"):
        NeighbourGenderClassifier.fit(x, y, k=4)
    with pytest.raises(ValueError):
        clf.predict(x[:, :4])
    assert clf.digest() != NeighbourGenderClassifier.fit(x, y, k=3).digest()


def test_a_logistic_classifier_saved_before_kinds_existed_still_loads(tmp_path):
    import json

    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    y = ["male"] * 10 + ["female"] * 10
    clf = GenderClassifier.fit(x, y, pitches=rng.normal(55, 4, 20))
    clf.save(tmp_path / "old.safetensors")
    spec = json.loads((tmp_path / "old.json").read_text())
    del spec["kind"]  # as written by the first releases
    (tmp_path / "old.json").write_text(json.dumps(spec))
    loaded = load_classifier(tmp_path / "old.safetensors")
    assert isinstance(loaded, GenderClassifier) and loaded.uses_pitch
    np.testing.assert_allclose(loaded.predict_proba(x, np.full(20, 55.0)),
                               clf.predict_proba(x, np.full(20, 55.0)), rtol=1e-5)
    spec["kind"], spec["k"] = "neighbours", None  # damaged: a clear error, not a crash
    (tmp_path / "old.json").write_text(json.dumps(spec))
    with pytest.raises(GenderWeightsError):
        load_classifier(tmp_path / "old.safetensors")


def test_joint_gender_loss(stem_set):
    # synthetic singers 0 and 1 "male", 2 and 3 "female"
    labelled = WindowSet(stem_set.logmel, stem_set.singer, stem_set.track,
                         gender=(stem_set.singer < 2).astype(np.int64))
    cfg = TrainConfig(steps=3, singers_per_batch=2, copies=False, gender_weight=0.5,
                      eval_every=3)
    torch.manual_seed(0)
    assert len(train(TimbreNet(TINY), labelled, cfg, val=labelled)) == 1
    with pytest.raises(ValueError, match="gender"):
        train(TimbreNet(TINY), WindowSet(stem_set.logmel, stem_set.singer, stem_set.track), cfg)
