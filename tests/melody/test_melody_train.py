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
