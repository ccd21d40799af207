"""The singer bench, `recsys train timbre` and `recsys plot singers` on a tiny synthetic
corpus written in the demo corpus's manifest format."""

import json

import numpy as np
import pytest
import soundfile as sf
from timbre_synth import noise, sing
from typer.testing import CliRunner

from embeddings.gender import LABELS, candidates, load_classifier
from embeddings.timbre import TimbreConfig, TimbreNet
from recsys.bench.singer import SYSTEMS, run
from recsys.cli import app

TINY = TimbreConfig(n_mels=32, channels=[4, 8, 8, 8], hidden=32, dim=16)
SINGERS = [  # id, synthetic timbre, gender, split
    ("s_a", "low_dark", "male", "train"),
    ("s_b", "high_bright", "female", "train"),
    ("s_c", "mid_nasal", "male", "test"),
    ("s_d", "mid_open", "female", "test"),
]
SONGS = {"train": 2, "val": 1, "test_seen": 2}  # per training singer; test singers: 2 "test"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("timbre_corpus")
    songs, n = [], 0

    def add(singer, timbre, gender, split):
        nonlocal n
        n += 1
        song_id = f"song{n:02d}"
        folder = root / "songs" / song_id
        folder.mkdir(parents=True)
        vocals = (np.zeros(96000, np.float32) if singer is None
                  else sing(timbre, seconds=6.0, seed=n))
        accompaniment = noise(6.0, seed=1000 + n, level=0.01)
        for name, audio in (("vocals", vocals), ("accompaniment", accompaniment),
                            ("mixture", vocals + accompaniment)):
            sf.write(folder / f"{name}.wav", audio, 16000)
        songs.append({
            "song_id": song_id, "title": song_id, "artist": singer or "band",
            "singer_id": singer, "voice": timbre, "gender": gender, "tags": [],
            "instrumental": singer is None, "split": split, "duration": 6.0,
            "tune_id": f"t{n}", "collection": "synthetic",
            "mixture": f"songs/{song_id}/mixture.wav", "vocals": f"songs/{song_id}/vocals.wav",
            "accompaniment": f"songs/{song_id}/accompaniment.wav", "stems": {}, "notes": [],
        })

    for singer, timbre, gender, split in SINGERS:
        plan = SONGS if split == "train" else {"test": 2}
        for song_split, count in plan.items():
            for _ in range(count):
                add(singer, timbre, gender, song_split)
    add(None, None, None, "test")  # one instrumental
    with (root / "songs.jsonl").open("w") as f:
        f.writelines(json.dumps(s) + "\n" for s in songs)
    with (root / "singers.jsonl").open("w") as f:
        f.writelines(json.dumps({"singer_id": s, "name": s.upper(), "voice": t, "gender": g,
                                 "language": "en", "persona": {}, "split": sp}) + "\n"
                     for s, t, g, sp in SINGERS)
    (root / "queries.jsonl").write_text("")
    (root / "corpus.json").write_text(json.dumps({"version": 1, "seed": 0, "vocabulary": []}))
    return root


def test_singer_bench_runs_every_system(corpus, tmp_path):
    import torch

    torch.manual_seed(0)
    result = run(corpus, encoder=TimbreNet(TINY), separator="mixture", cache=tmp_path,
                 progress=False)
    assert set(result.systems) == set(SYSTEMS)
    assert result.n_items == 4 + 4  # sung test_seen + sung test songs
    for metrics in result.systems.values():
        assert set(metrics) == {"top1_seen", "map_seen", "top1_unseen", "map_unseen",
                                "gender_acc"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    # Two clearly different synthetic timbres per setting: MFCC on clean stems gets them.
    assert result.systems["mfcc_clean"]["top1_seen"] == 1.0
    assert result.notes["separator"] == "mixture-1"
    assert len(list((tmp_path / "vocals" / "mixture-1").glob("song*-*.wav"))) == 4 + 4 + 4
    result.save(tmp_path / "singer.json")
    assert json.loads((tmp_path / "singer.json").read_text())["bench"] == "singer"


def test_train_command_then_gender_refit_and_plot(corpus, tmp_path):
    out = tmp_path / "w" / "timbre-contrastive.safetensors"
    runner = CliRunner()
    res = runner.invoke(app, [
        "train", "timbre", "--data", str(corpus), "--source", "clean", "--steps", "4",
        "--singers-per-batch", "2", "--windows-per-track", "2", "--eval-every", "2",
        "--out", str(out), "--cache", str(tmp_path / "cache"),
    ])
    assert res.exit_code == 0, res.output
    model = TimbreNet.load(out)
    assert model.version.startswith("timbre-contrastive-")
    assert model.meta["source"] == "clean" and "gender_val_acc" in model.meta
    gender = out.with_name("timbre-contrastive-gender.safetensors")
    assert gender.exists() and gender.with_suffix(".json").exists()
    assert json.loads(gender.with_suffix(".json").read_text())["encoder_version"] == \
        model.version

    refit = tmp_path / "refit-gender.safetensors"
    res = runner.invoke(app, [
        "train", "gender", "--data", str(corpus), "--weights", str(out), "--separator",
        "mixture", "--out", str(refit), "--cache", str(tmp_path / "cache"),
    ])
    assert res.exit_code == 0, res.output
    spec = json.loads(refit.with_suffix(".json").read_text())
    assert spec["encoder_version"] == model.version
    meta = spec["meta"]
    assert meta["inputs"] in ("vector", "vector+pitch") and meta["separator"] == "mixture-1"
    # every candidate (both kinds, both input sets, every setting) was cross-validated, and
    # the choice is the best of them
    cv = meta["leave_singers_out_cv_acc_by_candidate"]
    assert set(cv) == set(meta["val_acc_by_candidate"]) == set(candidates(with_pitch=True))
    assert meta["leave_singers_out_cv_acc"] == max(cv.values()) == cv[meta["classifier"]]
    assert spec["kind"] == meta["classifier"].split()[0]
    assert (spec["pitch"] is not None) == (meta["inputs"] == "vector+pitch")
    assert load_classifier(refit).predict(np.zeros((1, model.dim)))[0][0] in LABELS
    res = runner.invoke(app, ["train", "gender", "--data", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "gender", "--data", str(corpus), "--weights",
                              str(tmp_path / "missing.safetensors"), "--separator", "mixture"])
    assert res.exit_code == 2 and "not found" in res.output and "Traceback" not in res.output

    png = tmp_path / "singers.png"
    res = runner.invoke(app, [
        "plot", "singers", "--corpus", str(corpus), "--out", str(png), "--weights", str(out),
        "--separator", "mixture", "--cache", str(tmp_path / "cache"),
    ])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_train_command_rejects_bad_source(corpus):
    res = CliRunner().invoke(app, ["train", "timbre", "--data", str(corpus), "--source", "x"])
    assert res.exit_code != 0 and "clean" in res.output


def test_train_command_rejects_a_missing_corpus(tmp_path):
    res = CliRunner().invoke(app, ["train", "timbre", "--data", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "corpus" in res.output and "Traceback" not in res.output


def test_holdout_singers_are_balanced_by_gender_and_reproducible():
    from types import SimpleNamespace

    import typer

    from recsys.commands.timbre import _holdout

    songs = [SimpleNamespace(singer_id=f"{g[0]}{i}", gender=g)
             for g in ("female", "male") for i in range(5) for _ in range(3)]
    held = _holdout(songs, 4, seed=0)
    assert len(held) == 4 and sum(s.startswith("f") for s in held) == 2
    assert held == _holdout(songs, 4, seed=0)
    with pytest.raises(typer.BadParameter, match="too few"):
        _holdout(songs, 8, seed=0)
