"""Training steps, random remix, the energy filter, pseudo-label mining and checkpoints."""

import json

import numpy as np
import pytest
import torch

from embeddings.separation.bsrnn import BSRNN, BSRNNConfig
from embeddings.separation.train import (
    Pools,
    TrainConfig,
    energy_filter,
    epoch_lr,
    mine_pseudo_labels,
    sample_batch,
    sdr,
    separation_loss,
    train,
)

SR = 16000


def _song(rng, seconds=4.0, f0=300.0):
    t = np.arange(int(seconds * SR)) / SR
    vib = 5 * np.sin(2 * np.pi * 5 * t)
    vocals = 0.3 * np.sin(2 * np.pi * (f0 + vib) * t) * (np.sin(2 * np.pi * 0.5 * t) > -0.3)
    accompaniment = 0.1 * rng.standard_normal(len(t)) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    return vocals.astype(np.float32), accompaniment.astype(np.float32)


@pytest.fixture(scope="session")
def tiny_pools():
    rng = np.random.default_rng(0)
    songs = [_song(rng, f0=f) for f in (220.0, 330.0, 440.0)]
    return Pools([s[0] for s in songs], [s[1] for s in songs])


def test_random_remix_batch_shapes_and_gains(tiny_pools):
    cfg = TrainConfig(batch_size=6, segment_seconds=1.0, remix_prob=1.0)
    mix, voc = sample_batch(tiny_pools, cfg, np.random.default_rng(1))
    assert mix.shape == voc.shape == (6, SR)
    acc = mix - voc
    assert np.all(np.abs(voc).max(axis=1) <= 1.25 * 0.3 + 1e-5)
    assert np.all(np.abs(acc).max(axis=1) > 0)


def test_shifted_vocals_move_in_pitch_and_still_make_the_mixture():
    t = np.arange(4 * SR) / SR
    pools = Pools([(0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)],
                  [np.zeros(len(t), np.float32)])
    for remix in (0.0, 1.0):
        cfg = TrainConfig(batch_size=8, segment_seconds=1.0, remix_prob=remix, gain_low=1.0,
                          gain_high=1.0, shift_prob=1.0, shift_semitones=4.0)
        mix, voc = sample_batch(pools, cfg, np.random.default_rng(2))
        assert mix.shape == voc.shape == (8, SR)
        assert np.allclose(mix, voc)  # silent accompaniment: the mixture is the vocals
        spectrum = np.abs(np.fft.rfft(voc[:, SR // 4: 3 * SR // 4], axis=1))
        semitones = 12 * np.log2(spectrum.argmax(axis=1) * 2 / 220.0)  # 0.5 s: 2 Hz bins
        assert np.all(np.abs(semitones) <= 4.1) and np.ptp(semitones) > 1.0
    plain = sample_batch(pools, TrainConfig(batch_size=2, segment_seconds=1.0),
                         np.random.default_rng(2))[1]
    assert np.allclose(np.abs(np.fft.rfft(plain[:, :SR // 2], axis=1)).argmax(axis=1) * 2, 220)


def test_a_few_training_steps_lower_the_loss(tiny_pools):
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.named("tiny"))
    cfg = TrainConfig(batch_size=2, segment_seconds=0.5)
    mix, voc = sample_batch(tiny_pools, cfg, np.random.default_rng(2))
    mix_t, voc_t = torch.from_numpy(mix), torch.from_numpy(voc)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(separation_loss(model, model(mix_t), voc_t))
    for _ in range(8):
        loss = separation_loss(model, model(mix_t), voc_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(separation_loss(model, model(mix_t), voc_t))
    assert after < 0.8 * before


def test_train_writes_checkpoints_and_resumes(tiny_pools, tmp_path):
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.named("tiny"))
    val = [(tiny_pools.vocals[0][:SR] + tiny_pools.accompaniment[0][:SR],
            tiny_pools.vocals[0][:SR])]
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, segment_seconds=0.5)
    history = train(model, tiny_pools, val, cfg, tmp_path, meta={"version": "t"})
    assert len(history) == 1 and np.isfinite(history[0]["val_sdr"])
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.json").exists()
    cfg.epochs = 2
    history = train(BSRNN(BSRNNConfig.named("tiny")), tiny_pools, val, cfg, tmp_path,
                    resume=True)
    assert [h["epoch"] for h in history] == [1, 2]


def test_energy_filter_keeps_and_drops_the_right_windows():
    rng = np.random.default_rng(3)
    w = SR
    loud = 0.3 * rng.standard_normal(w)
    faint = loud * 10 ** (-35 / 20)  # 35 dB down: passes a 30 dB margin
    close = loud * 10 ** (-20 / 20)  # 20 dB down: does not
    silent = np.zeros(w)
    target = np.concatenate([loud, faint, loud, close, silent]).astype(np.float32)
    residual = np.concatenate([faint, loud, close, loud, silent]).astype(np.float32)
    clean_t, clean_r = energy_filter(target, residual, w, threshold_db=30.0)
    assert clean_t.tolist() == [True, False, False, False, False]
    assert clean_r.tolist() == [False, True, False, False, False]


def test_mine_pseudo_labels_uses_the_separator_and_the_filter():
    rng = np.random.default_rng(4)
    w = SR
    mixture = (0.2 * rng.standard_normal(4 * w)).astype(np.float32)

    def separate(x):  # vocals only in the second window, accompaniment only in the fourth
        v, a = np.zeros_like(x), np.zeros_like(x)
        v[w : 2 * w], a[3 * w :] = x[w : 2 * w], x[3 * w :]
        v[2 * w : 3 * w], a[2 * w : 3 * w] = 0.5 * x[2 * w : 3 * w], 0.5 * x[2 * w : 3 * w]
        return v, a

    vocals, accompaniment, stats = mine_pseudo_labels(separate, [mixture], w)
    assert stats == {"windows": 4, "clean_vocals": 1, "clean_accompaniment": 1}
    np.testing.assert_array_equal(vocals[0], mixture[w : 2 * w])
    np.testing.assert_array_equal(accompaniment[0], mixture[3 * w :])


def test_pseudo_pools_are_drawn_from(tiny_pools):
    marker = np.full(SR, 0.5, dtype=np.float32)
    pools = Pools(tiny_pools.vocals, tiny_pools.accompaniment, pseudo_vocals=[marker])
    cfg = TrainConfig(batch_size=32, segment_seconds=1.0, pseudo_prob=1.0)
    _, voc = sample_batch(pools, cfg, np.random.default_rng(5))
    assert np.all(np.ptp(voc, axis=1) < 1e-6)  # every target is the (scaled) constant window


def test_sdr_is_higher_for_better_estimates():
    rng = np.random.default_rng(6)
    ref = rng.standard_normal(SR)
    good = sdr(ref, ref + 0.01 * rng.standard_normal(SR))
    assert good > sdr(ref, ref + 0.5 * rng.standard_normal(SR))


def test_cosine_schedule_runs_from_lr_to_lr_final():
    cfg = TrainConfig(epochs=11, lr=1e-3, lr_final=1e-4)
    rates = [epoch_lr(cfg, e) for e in range(cfg.epochs)]
    assert rates[0] == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-4)
    assert rates[5] == pytest.approx(5.5e-4)
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    assert epoch_lr(TrainConfig(epochs=11, lr=1e-3), 7) == 1e-3


def test_remix_takes_the_accompaniment_of_another_song():
    n = 2 * SR
    vocals = [np.full(n, 0.1 * (k + 1), np.float32) for k in range(3)]
    accompaniment = [np.full(n, float(k + 1), np.float32) for k in range(3)]
    cfg = TrainConfig(batch_size=64, segment_seconds=0.5, remix_prob=1.0, gain_low=1.0,
                      gain_high=1.0)
    mix, voc = sample_batch(Pools(vocals, accompaniment), cfg, np.random.default_rng(4))
    song_of_vocals = np.rint(voc[:, 0] * 10).astype(int)
    song_of_accompaniment = np.rint((mix - voc)[:, 0]).astype(int)
    assert np.all(song_of_vocals != song_of_accompaniment)
    assert len(set(song_of_accompaniment)) == 3


def test_resuming_keeps_the_starting_weights_as_the_best_to_beat(tiny_pools, tmp_path):
    # a learning rate this high makes every epoch worse than the start, which stays the best
    torch.manual_seed(0)
    val = [(tiny_pools.vocals[0][:SR] + tiny_pools.accompaniment[0][:SR],
            tiny_pools.vocals[0][:SR])]
    cfg = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=2, segment_seconds=0.5, lr=0.5)
    train(BSRNN(BSRNNConfig.named("tiny")), tiny_pools, val, cfg, tmp_path)
    best = json.loads((tmp_path / "best.json").read_text())
    cfg.epochs = 3
    history = train(BSRNN(BSRNNConfig.named("tiny")), tiny_pools, val, cfg, tmp_path,
                    resume=True)
    assert best["epoch"] == 0 and all(h["val_sdr"] < best["val_sdr"] for h in history)
    assert json.loads((tmp_path / "best.json").read_text()) == best  # not a worse epoch
