import numpy as np
import pytest
from melody_synth import hum_of, sing, tune

from embeddings.audio import save
from embeddings.melody import TCAEConfig, load_pretrained
from embeddings.melody_train import HumPair, MelodyTrainingError, TrainConfig, train

TINY = TCAEConfig(channels=16, latent=32, layers=4)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("melody-train")
    songs, hums = [], []
    for i in range(4):
        notes = tune(30, seed=200 + i)
        vocals, acc = root / f"v{i}.wav", root / f"a{i}.wav"
        audio = sing(notes, seed=i)
        save(vocals, audio)
        rng = np.random.default_rng(i)
        save(acc, (0.05 * rng.standard_normal(len(audio))).astype(np.float32))
        songs.append((vocals, acc))
        hum_notes = hum_of(notes, 5, 12, shift=-3.0, tempo=0.9, seed=i)
        hum = root / f"h{i}.wav"
        save(hum, sing(hum_notes, seed=50 + i, vibrato=0.5))
        # the hum covers notes 5..16 of the song: 2.0 s .. 6.76 s
        hums.append(HumPair(hum, i, 2.0, 6.76))
    return songs, hums


def test_training_runs_lowers_the_loss_and_saves(tiny_data, tmp_path):
    songs, hums = tiny_data
    config = TrainConfig(steps=40, batch=8, log_every=10, threads=1, lr=3e-3)
    model, history = train(songs, hums, TINY, config, val_songs=songs[:2], val_hums=hums[:2],
                           checkpoint=tmp_path / "ckpt")
    assert history.steps == [10, 20, 30, 40]
    assert all(np.isfinite(history.loss))
    assert history.recon[-1] < history.recon[0]
    assert len(history.val_pair_top1) == 4 and 0.0 <= history.val_pair_top1[-1] <= 1.0
    encoder = load_pretrained(tmp_path / "ckpt", device="cpu")
    assert encoder.dim == 32


def test_training_without_songs_is_refused():
    with pytest.raises(MelodyTrainingError):
        train([], [], TINY, TrainConfig(steps=1))


INTERVAL = TCAEConfig(channels=16, latent=32, layers=4, frontend="interval", lags=(2, 4, 8))


def test_frame_labels_follow_the_notes():
    from embeddings.melody_train import UNKNOWN, UNVOICED, frame_labels

    config = TCAEConfig(frontend="interval")
    fps = 16000 / config.hop  # 62.5 frames per second
    labels = frame_labels([(1.0, 2.0, 60.0), (3.0, 3.5, 62.4)], 300, config)
    assert labels[int(1.5 * fps)] == 60 - config.pitch_min
    assert labels[int(3.2 * fps)] == 62 - config.pitch_min
    assert labels[int(0.5 * fps)] == UNVOICED and labels[int(2.5 * fps)] == UNVOICED
    # played twice as fast, 12 semitones up
    fast = frame_labels([(1.0, 2.0, 60.0)], 300, config, rate=2.0, shift=12.0)
    assert fast[int(0.75 * fps)] == 72 - config.pitch_min and fast[int(1.5 * fps)] == UNVOICED
    assert (frame_labels([], 10, config) == UNKNOWN).all()


def test_time_map_follows_the_hum_note_by_note():
    from embeddings.melody_train import time_map

    song = [(10.0, 11.0, 60.0), (11.0, 12.0, 62.0), (12.0, 14.0, 64.0), (14.0, 15.0, 65.0)]
    # the hum starts on the song's 2nd note after a 0.8 s lead-in, at half speed, and
    # breathes 0.5 s before its last note
    hum = [(0.8, 2.8, 62.0), (2.8, 6.8, 64.0), (7.3, 9.3, 65.0)]
    pair = HumPair("h.wav", 0, 11.0, 15.0, hum, first_note=1)
    h, s = time_map(pair, song, 10.0)
    assert np.interp(1.8, h, s) == pytest.approx(11.5)
    assert np.interp(4.8, h, s) == pytest.approx(13.0)
    assert np.interp(8.3, h, s) == pytest.approx(14.5)
    # without notes: the whole hum onto the span
    h, s = time_map(HumPair("h.wav", 0, 11.0, 15.0), song, 10.0)
    assert np.interp(5.0, h, s) == pytest.approx(13.0)


def test_interval_training_uses_pitch_labels_and_keeps_the_best_evaluation(tmp_path):
    from embeddings.melody_train import TrainSong

    songs, hums, root = [], [], tmp_path
    for i in range(3):
        notes = tune(30, seed=400 + i)
        save(root / f"v{i}.wav", sing(notes, seed=i))
        songs.append(TrainSong(root / f"v{i}.wav", None, None, notes))
        hum_notes = hum_of(notes, 4, 12, shift=2.0, tempo=1.1, seed=i)
        save(root / f"h{i}.wav", sing(hum_notes, seed=60 + i, vibrato=0.5))
        hums.append(HumPair(root / f"h{i}.wav", i, notes[4][0], notes[15][1], hum_notes, 4))
    scores = iter([0.2, 0.9, 0.1, 0.3])
    seen_steps = []

    def evaluate(model):
        seen_steps.append(model.training)
        return {"mrr": next(scores)}

    config = TrainConfig(steps=40, batch=6, log_every=10, eval_every=10, threads=1, lr=3e-3)
    model, history = train(songs, hums, INTERVAL, config, evaluate=evaluate)
    assert history.eval_steps == [10, 20, 30, 40] and history.best_step == 20
    assert seen_steps == [False] * 4  # evaluated in eval mode
    assert all(np.isfinite(history.pitch)) and history.pitch[-1] < history.pitch[0]
    assert 0.0 <= history.pitch_accuracy[-1] <= 1.0


def test_hum_pointing_outside_the_song_list_is_refused(tiny_data):
    songs, hums = tiny_data
    bad = [HumPair(hums[0].hum, 7, 0.0, 1.0)]
    with pytest.raises(MelodyTrainingError, match="outside"):
        train(songs[:2], bad, TINY, TrainConfig(steps=1, threads=1))
