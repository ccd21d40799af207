"""`recsys train melody` end to end on a tiny corpus: extra hums, selection on val, and no
test song ever read."""

import json

import numpy as np
from melody_synth import sing
from typer.testing import CliRunner

from embeddings.audio import save
from embeddings.melody import load_pretrained
from recsys.cli import app


def _corpus(root):
    songs = []
    for i, split in enumerate(("train", "train", "val", "test")):
        sid = f"s{i}"
        notes = [(0.5 + 0.45 * k, 0.9 + 0.45 * k, float(52 + (k * (3 + i)) % 10))
                 for k in range(26)]
        if split != "test":  # test songs' audio does not exist: reading it would fail
            vocals = sing(notes, seed=i)
            acc = 0.02 * np.random.default_rng(i).standard_normal(len(vocals))
            for name, x in (("vocals", vocals), ("accompaniment", acc), ("mixture", vocals + acc)):
                save(root / "songs" / sid / f"{name}.wav", x.astype(np.float32))
        songs.append({
            "song_id": sid, "title": f"tune {i}", "artist": "a", "singer_id": "g",
            "voice": "kal_diphone", "gender": "male", "tags": [], "instrumental": False,
            "split": split, "duration": 12.5, "tune_id": f"t{i}", "collection": "synthetic",
            "mixture": f"songs/{sid}/mixture.wav", "vocals": f"songs/{sid}/vocals.wav",
            "accompaniment": f"songs/{sid}/accompaniment.wav", "stems": {},
            "notes": [list(n) for n in notes],
        })
    for name, rows in (("songs", songs), ("queries", []), ("singers", [])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "corpus.json").write_text(json.dumps({"version": 1, "seed": 0, "vocabulary": []}))


def test_train_melody_generates_hums_and_selects_on_val(tmp_path):
    corpus = tmp_path / "corpus"
    _corpus(corpus)
    out = tmp_path / "w" / "tcae-test"
    result = CliRunner().invoke(app, [
        "train", "melody", "--data", str(corpus), "--out", str(out), "--separator", "clean",
        "--steps", "4", "--eval-every", "2", "--batch", "4", "--channels", "8",
        "--layers", "2", "--hums-per-song", "1", "--val-hums-per-song", "2",
        "--hum-cache", str(tmp_path / "hums"), "--checkpoint", str(tmp_path / "ckpt"),
    ])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())["meta"]
    assert meta["train_songs"] == 2 and meta["train_hums"] == 2
    assert meta["val"]["best_step"] in (2, 4)
    assert meta["val"]["best"]["queries"] == 2 and meta["val"]["best"]["tracks"] == 3
    assert meta["history"]["eval_steps"] == [2, 4]
    assert load_pretrained(out, device="cpu").model.config.frontend == "interval"
    hum_files = sorted(p.name for p in (tmp_path / "hums").rglob("*.wav"))
    assert hum_files == ["s0-h0.wav", "s1-h0.wav", "s2-h0.wav", "s2-h1.wav"]


def test_train_melody_keeps_weights_that_select_better_on_val(tmp_path):
    corpus = tmp_path / "corpus"
    _corpus(corpus)
    out = tmp_path / "w" / "tcae-test"
    args = ["train", "melody", "--data", str(corpus), "--out", str(out), "--separator", "clean",
            "--steps", "2", "--eval-every", "2", "--batch", "4", "--channels", "8",
            "--layers", "2", "--hums-per-song", "1", "--val-hums-per-song", "1",
            "--hum-cache", str(tmp_path / "hums")]
    first = CliRunner().invoke(app, [*args, "--checkpoint", str(tmp_path / "c1")])
    assert first.exit_code == 0, first.output
    shipped = out.with_suffix(".safetensors").read_bytes()
    # the same run again scores the same on val: it does not beat the weights at --out
    again = CliRunner().invoke(app, [*args, "--checkpoint", str(tmp_path / "c2")])
    assert again.exit_code == 0, again.output
    candidate = out.with_name(out.name + "-candidate")
    assert candidate.with_suffix(".safetensors").exists()
    assert out.with_suffix(".safetensors").read_bytes() == shipped
    forced = CliRunner().invoke(app, [*args, "--checkpoint", str(tmp_path / "c3"),
                                      "--seed", "1", "--overwrite"])
    assert forced.exit_code == 0, forced.output
    assert out.with_suffix(".safetensors").read_bytes() != shipped
