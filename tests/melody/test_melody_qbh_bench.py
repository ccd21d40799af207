"""The QBH bench end to end on a tiny synthetic corpus written in the corpus manifest format."""

import json

import numpy as np
import pytest
from melody_synth import hum_of, sing, tune

from embeddings.audio import save
from recsys.bench import qbh

N_SONGS = 5


def write_corpus(root, numbers, tune_of=lambda i: f"t{i}", split_of=lambda i: "test"):
    """Songs ``s<i>`` (tune ``tune_of(i)``) for ``i`` in ``numbers``, each with a hum query
    of another voice, in the corpus manifest format."""
    songs, queries = [], []
    for i in numbers:
        sid = f"s{i}"
        notes = tune(45, seed=300 + i)
        vocals = sing(notes, seed=i)
        acc = (0.02 * np.random.default_rng(i).standard_normal(len(vocals))).astype(np.float32)
        folder = root / "songs" / sid
        for name, x in (("vocals", vocals), ("accompaniment", acc), ("mixture", vocals + acc)):
            save(folder / f"{name}.wav", x)
        songs.append({
            "song_id": sid, "title": f"tune {i}", "artist": f"singer {i % 2}",
            "singer_id": f"g{i % 2}", "voice": f"voice{i % 2}", "gender": "male",
            "tags": [], "instrumental": False, "split": split_of(i),
            "duration": len(vocals) / 16000, "tune_id": tune_of(i), "collection": "synthetic",
            "mixture": f"songs/{sid}/mixture.wav", "vocals": f"songs/{sid}/vocals.wav",
            "accompaniment": f"songs/{sid}/accompaniment.wav", "stems": {},
            "notes": [list(n) for n in notes],
        })
        first = 6 + 4 * (i % 5)
        hum_notes = hum_of(notes, first, 20, shift=-2.0 + i % 5, tempo=0.9 + 0.05 * (i % 5),
                           seed=i)
        qid = f"q{i}"
        save(root / "queries" / f"{qid}.wav", sing(hum_notes, seed=40 + i, vibrato=0.5))
        queries.append({
            "query_id": qid, "song_id": sid, "path": f"queries/{qid}.wav",
            "start_s": notes[first][0], "end_s": notes[first + 19][1], "voice": "hummer",
            "params": {}, "split": split_of(i), "notes": [list(n) for n in hum_notes],
        })
    return songs, queries


def write_manifests(root, songs, queries):
    for name, rows in (("songs", songs), ("queries", queries), ("singers", [])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "corpus.json").write_text(json.dumps({"version": 1, "seed": 0, "vocabulary": []}))


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("qbh-corpus")
    songs, queries = write_corpus(root, range(N_SONGS))
    # a query by the target's own voice must be left out of the bench
    queries.append({**queries[0], "query_id": "same", "voice": "voice0"})
    silent = root / "queries" / "silent.wav"
    save(silent, np.zeros(16000 * 6, dtype=np.float32))
    queries.append({**queries[1], "query_id": "silent", "path": "queries/silent.wav"})
    write_manifests(root, songs, queries)
    return root


@pytest.fixture(scope="session")
def extra_corpus(tmp_path_factory):
    """Three more songs: s5 (val), s6 (train) on new tunes, s7 on the main corpus' tune t0."""
    root = tmp_path_factory.mktemp("qbh-extra")
    songs, queries = write_corpus(root, range(5, 8), tune_of=lambda i: "t0" if i == 7 else f"t{i}",
                                  split_of=lambda i: "val" if i == 5 else "train")
    write_manifests(root, songs, queries)
    return root


def test_bench_finds_hummed_tunes(mini_corpus, tmp_path):
    result = qbh.run(mini_corpus, separator="clean", model="pitch_dtw",
                     scale_songs=(10,), cache=tmp_path / "cache")
    assert result.bench == "qbh" and result.n_items == N_SONGS + 1
    assert set(result.systems) == {"dtw", "tcae", "tcae_dtw", "tcae_key_dtw", "tcae_screen_dtw"}
    assert result.notes["queries_dropped_same_voice"] == 1
    assert result.notes["queries_without_melody"] == 1
    # 5 real hums found first by DTW; the silent one is a miss, not a random answer
    assert result.systems["dtw"]["top1"] == pytest.approx(N_SONGS / (N_SONGS + 1), abs=1e-3)
    assert result.systems["tcae_dtw"]["top10"] >= result.systems["tcae_dtw"]["top1"]
    # every track is a candidate of the key-profile path: the re-rank sees all six songs
    assert result.systems["tcae_key_dtw"]["top1"] == result.systems["dtw"]["top1"]
    assert result.systems["tcae_screen_dtw"]["top1"] == result.systems["dtw"]["top1"]
    for metrics in result.systems.values():
        assert metrics["p95_ms"] >= metrics["p50_ms"] > 0
    assert result.notes["scaling"]["10_songs"]["windows"] > 0
    result.save(tmp_path / "qbh.json")
    assert json.loads((tmp_path / "qbh.json").read_text())["systems"]["dtw"]["mrr"] > 0.8


def test_pitch_bench_scores_trackers_against_sung_notes(mini_corpus, tmp_path):
    from recsys.bench import pitch as pitch_bench

    result = pitch_bench.run(mini_corpus, split="test", separator="clean", max_songs=2,
                             max_queries=2, max_seconds=6.0, methods=("yin",),
                             cache=tmp_path / "cache")
    assert set(result.systems) == {"yin_clean", "yin_separated", "yin_hum"}
    assert result.systems["yin_clean"]["raw_pitch_accuracy"] > 0.85
    assert result.systems["yin_clean"]["realtime_factor"] > 1.0


def test_extra_corpus_joins_the_catalog_without_shared_tunes(mini_corpus, extra_corpus,
                                                             tmp_path):
    test = qbh.run(mini_corpus, separator="clean", model="pitch_dtw", scale_songs=(10,),
                   cache=tmp_path / "cache", extra=(extra_corpus,))
    # s7 shares tune t0 with the main corpus: left out with its query
    assert test.notes["catalog_songs"] == N_SONGS + 2
    assert test.notes["extra_catalogs"][0]["songs"] == 2
    # the extra corpus is held out: its non-val query (s6) serves the test split
    assert test.n_items == N_SONGS + 1 + 1
    assert test.systems["dtw"]["top1"] == pytest.approx(6 / 7, abs=1e-3)
    val = qbh.run(mini_corpus, split="val", separator="clean", model="pitch_dtw",
                  scale_songs=(10,), cache=tmp_path / "cache", extra=(extra_corpus,))
    assert val.n_items == 1 and val.systems["dtw"]["top1"] == 1.0


def test_hums_can_be_kept_by_whether_their_singer_was_heard_in_training(mini_corpus, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(qbh, "heard_singers", lambda: {"g0"})  # s0, s2, s4 are g0's songs
    runs = {singers: qbh.run(mini_corpus, split="all", separator="clean", model="pitch_dtw",
                             scale_songs=(), cache=tmp_path / "cache", singers=singers)
            for singers in ("heard", "unseen")}
    assert runs["heard"].n_items == 3  # q0, q2, q4 (g0's own voice humming s0 is dropped)
    assert runs["unseen"].n_items == 3  # q1, q3 and the silent hum of s1
    assert runs["unseen"].notes["singers"] == "unseen"
    assert runs["heard"].systems["dtw"]["top1"] == 1.0
    from recsys.bench.report import render

    assert "## Query-by-humming (issue: TCAE melody encoder) — all, unseen singers" in render(
        [runs["unseen"]])
    monkeypatch.setattr(qbh, "heard_tunes", lambda: {"t3"})  # a corpus models trained on
    with pytest.raises(ValueError, match="no model trained on"):
        qbh.run(mini_corpus, split="all", separator="clean", model="pitch_dtw",
                cache=tmp_path / "cache")
    with pytest.raises(ValueError, match="singers"):
        qbh.run(mini_corpus, separator="clean", model="pitch_dtw", cache=tmp_path / "cache",
                singers="some")
