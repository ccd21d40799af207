"""`recsys train tagger` and `recsys bench tagging` end to end on a tiny corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_audio import toy_audio
from typer.testing import CliRunner

from embeddings.audio import save
from recsys.cli import app
from recsys.corpus import VOCABULARY
from recsys.corpus.manifest import MANIFEST_VERSION, write_json, write_jsonl

# Each toy "instrument" is a signal the tagger can hear: piano a low tone, synth a high one,
# drums noise bursts.
SIGNALS = {"piano": 220.0, "synth": 2500.0, "drums": None}


TEST_SINGER = {"singer_id": "g1", "name": "test singer", "voice": "v1", "gender": "female",
               "language": "en", "persona": {}, "split": "test"}


def write_toy_corpus(root, splits, tune_of=lambda i: f"t{i}", singer_of=lambda i: None,
                     singers=(), seed=0):
    """Toy songs ``s<i>`` in ``splits[i]``, tagged with the toy instruments they contain."""
    rng = np.random.default_rng(seed)
    combos = [["piano"], ["synth"], ["drums"], ["piano", "drums"], ["synth", "drums"],
              ["piano", "synth"]]
    songs = []
    for i, split in enumerate(splits):
        tags = combos[i % len(combos)]
        song_dir = root / "songs" / f"s{i:03d}"
        save(song_dir / "mixture.wav", toy_audio([SIGNALS[t] for t in tags], 6.0, rng))
        rel = f"songs/s{i:03d}/mixture.wav"
        songs.append({
            "song_id": f"s{i:03d}", "title": f"song {i}", "artist": "nobody",
            "singer_id": singer_of(i), "voice": None, "gender": None,
            "tags": [*tags, "no vocals"], "instrumental": True, "split": split,
            "duration": 6.0, "tune_id": tune_of(i), "collection": "toy",
            "mixture": rel, "vocals": rel, "accompaniment": rel, "stems": {}, "notes": [],
        })
    write_jsonl(root / "songs.jsonl", songs)
    write_jsonl(root / "singers.jsonl", list(singers))
    write_jsonl(root / "queries.jsonl", [])
    write_json(root / "corpus.json", {"version": MANIFEST_VERSION, "seed": seed,
                                      "vocabulary": VOCABULARY})
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"),
                            ["train"] * 12 + ["val"] * 6 + ["test"] * 6, singers=[TEST_SINGER])


@pytest.fixture(scope="session")
def extra_corpus(tmp_path_factory):
    """Six train songs (one on the tiny corpus' tune t0, one by its test singer g1), two val."""
    return write_toy_corpus(tmp_path_factory.mktemp("extra"), ["train"] * 6 + ["val"] * 2,
                            tune_of=lambda i: "t0" if i == 0 else f"x{i}",
                            singer_of=lambda i: "g1" if i == 1 else None, seed=1)


@pytest.fixture(scope="session")
def trained_weights(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("weights")
    runner = CliRunner()
    common = ["--data", str(tiny_corpus), "--out", str(out), "--cache", str(out / "cache"),
              "--threads", "1", "--device", "cpu", "--windows-per-track", "0"]
    r = runner.invoke(app, ["train", "tagger", *common, "--stage1-epochs", "2",
                            "--stage2-epochs", "5"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "tagger", *common, "--no-joint", "--epochs", "2"])
    assert r.exit_code == 0, r.output
    return out


def test_train_writes_all_weights(trained_weights):
    names = sorted(p.name for p in trained_weights.iterdir() if p.is_file())
    for stem in ("jetatag", "jetatag_noje", "logreg_tagger"):
        assert f"{stem}.safetensors" in names and f"{stem}.json" in names
    config = json.loads((trained_weights / "jetatag.json").read_text())["config"]
    assert config["vocabulary"] == VOCABULARY and config["joint"] is True
    assert list((trained_weights / "cache").glob("*.npz"))  # features cached for reuse


def test_bench_reports_three_systems(tiny_corpus, trained_weights, tmp_path):
    out = tmp_path / "tagging.json"
    r = CliRunner().invoke(app, ["bench", "tagging", "--corpus", str(tiny_corpus), "--weights",
                                 str(trained_weights), "--json", str(out), "--threads", "1"])
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert result["bench"] == "tagging" and result["split"] == "test" and result["n_items"] == 6
    assert set(result["systems"]) == {"logreg", "no_je", "je"}
    for metrics in result["systems"].values():
        assert set(metrics) == {"roc_auc", "pr_auc", "p_at_10", "p_at_10_joint"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    notes = result["notes"]
    assert set(notes["per_tag"]) == {"piano", "synth", "drums"}
    assert "no vocals" in notes["skipped_tags"] and "guitar" in notes["skipped_tags"]
    assert notes["per_tag"]["piano"]["n_train_positive"] == 6  # train tracks with piano
    assert notes["scored_without_train_positives"] == []
    assert "je_minus_no_je" in notes
    # The baseline hears these toy instruments easily.
    assert result["systems"]["logreg"]["roc_auc"] > 0.9


def test_bad_corpus_gets_a_clear_error(tmp_path):
    r = CliRunner().invoke(app, ["train", "tagger", "--data", str(tmp_path)])
    assert r.exit_code == 2 and "corpus" in r.output.lower()
    assert "Traceback" not in r.output


def test_extra_corpus_joins_training_without_test_singers_or_tunes(tiny_corpus, extra_corpus,
                                                                  tmp_path):
    from recsys.corpus import Corpus, extension_songs

    main, extra = Corpus(tiny_corpus), Corpus(extra_corpus)
    assert [s.song_id for s in extension_songs(main, extra, "train")] == \
        ["s002", "s003", "s004", "s005"]
    assert len(extension_songs(main, extra, "val")) == 2
    r = CliRunner().invoke(app, ["train", "tagger", "--data", str(tiny_corpus), "--extra",
                                 str(extra_corpus), "--baseline", "--out", str(tmp_path),
                                 "--cache", str(tmp_path / "cache"), "--threads", "1"])
    assert r.exit_code == 0, r.output
    training = json.loads((tmp_path / "logreg_tagger.json").read_text())["training"]
    assert training["train_tracks"] == 12 + 4 and training["val_tracks"] == 6 + 2
    assert training["extra"] == [str(extra_corpus)]
