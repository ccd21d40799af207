"""Extra training hums: rendered by the corpus' hum generator, train/val tunes only."""

import json

import numpy as np
import pytest

from embeddings.audio import load
from recsys.corpus import Corpus
from recsys.corpus.training_hums import TrainingHumError, generate

SPLITS = ("train", "val", "test", "test_seen")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hum-corpus")
    songs = []
    for i, split in enumerate(SPLITS):
        sid = f"s{i}"
        notes = [[0.5 + 0.5 * k, 0.95 + 0.5 * k, float(55 + (k * 5 + i) % 9)] for k in range(24)]
        songs.append({
            "song_id": sid, "title": f"tune {i}", "artist": "a", "singer_id": "g",
            "voice": "kal_diphone", "gender": "male", "tags": [], "instrumental": False,
            "split": split, "duration": 13.0, "tune_id": f"t{i}", "collection": "synthetic",
            "mixture": f"songs/{sid}/mixture.wav", "vocals": f"songs/{sid}/vocals.wav",
            "accompaniment": f"songs/{sid}/accompaniment.wav", "stems": {}, "notes": notes,
        })
    for name, rows in (("songs", songs), ("queries", []), ("singers", [])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "corpus.json").write_text(json.dumps({"version": 1, "seed": 0, "vocabulary": []}))
    return Corpus(root)


@pytest.mark.parametrize("split", ["test", "test_seen"])
def test_test_tunes_are_refused(corpus, tmp_path, split):
    with pytest.raises(TrainingHumError, match="unseen"):
        generate(corpus, split, 1, tmp_path)


def test_hums_come_from_the_split_and_are_cached(corpus, tmp_path):
    hums = generate(corpus, "train", 2, tmp_path)
    assert [h.song_id for h in hums] == ["s0", "s0"]
    train_song = corpus.song("s0")
    for h in hums:
        assert h.split == "train" and h.voice != train_song.voice
        y = load(h.path)
        assert 5.0 < len(y) / 16000 < 20.0 and np.abs(y).max() > 0.1
        # the hum's notes imitate the song's, from first_note on, transposed
        sung = [n[2] for n in train_song.notes[h.first_note: h.first_note + len(h.notes)]]
        steps_song, steps_hum = np.diff(sung), np.diff([n[2] for n in h.notes])
        assert np.mean(np.abs(steps_hum - steps_song) < 0.6) > 0.7
        assert h.start_s == pytest.approx(train_song.notes[h.first_note][0], abs=1e-3)
    assert hums[0].notes != hums[1].notes  # two different renditions
    stamp = hums[0].path.stat().st_mtime_ns
    again = generate(corpus, "train", 2, tmp_path)
    assert again == hums and hums[0].path.stat().st_mtime_ns == stamp
    assert [h.song_id for h in generate(corpus, "val", 1, tmp_path)] == ["s1"]
