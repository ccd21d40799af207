"""`recsys train tagger --mtat` and `recsys bench tagging --mtat` on a tiny MagnaTagATune folder.

The fixture has MTAT's layout: ``annotations_final.csv`` (tab-separated, quoted, ``clip_id``,
one 0/1 column per tag, ``mp3_path``) and short synthetic mp3 clips in the hex folders that
decide the split (0-b train, c val, d-f test), plus an empty mp3 as the real dataset has.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from toy_audio import SR, toy_audio
from typer.testing import CliRunner

from recsys.cli import app
from recsys.datasets import DatasetError, load_magnatagatune, mtat_split

# Each tag is a sound a tiny tagger can hear: a low tone, a high tone, noise bursts.
SIGNALS = {"classical": 220.0, "techno": 2500.0, "drums": None}
COMBOS = [["classical"], ["techno"], ["drums"], ["classical", "drums"], ["techno", "drums"]]
FOLDERS = ["0", "1", "2", "5", "a", "b"] * 2 + ["c"] * 5 + ["d", "e", "f", "d", "e"]
TAG_COLUMNS = ["classical", "techno", "drums", "opera"]  # "opera" is never used


def _annotations(root, rows) -> None:
    """MTAT's tab-separated, fully quoted annotations_final.csv."""
    lines = ["\t".join(f'"{h}"' for h in ["clip_id", *TAG_COLUMNS, "mp3_path"])]
    for clip_id, tags, rel in rows:
        cells = [str(clip_id), *("1" if t in tags else "0" for t in TAG_COLUMNS), rel]
        lines.append("\t".join(f'"{c}"' for c in cells))
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def mtat_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtat")
    rng = np.random.default_rng(0)
    rows = []
    for i, folder in enumerate(FOLDERS):
        tags = COMBOS[i % len(COMBOS)]
        rel = f"{folder}/artist_{i}-album-01-song_{i}-0-29.mp3"
        (root / folder).mkdir(exist_ok=True)
        sf.write(root / rel, toy_audio([SIGNALS[t] for t in tags], 4.0, rng), SR)
        rows.append((i, tags, rel))
    for folder in ("0", "f"):  # MTAT ships a few empty mp3s, in train and in test
        rel = f"{folder}/broken-0-29.mp3"
        (root / rel).write_bytes(b"")
        rows.append((len(rows), ["classical"], rel))
    rows.append((len(rows), ["techno"], "3/never_downloaded-0-29.mp3"))  # missing audio
    _annotations(root, rows)
    return root


def test_mtat_split_convention(mtat_dir):
    assert [mtat_split(f"{d}/x.mp3") for d in "0bcdF"] == ["train", "train", "val", "test",
                                                           "test"]
    with pytest.raises(DatasetError, match="0-b train, c val, d-f test"):
        mtat_split("g/x.mp3")
    ds = load_magnatagatune(mtat_dir)
    assert ds.vocabulary == ["drums", "classical", "techno"]  # by frequency; "opera" unused
    assert ds.missing_audio == 1
    assert {c.path.parent.name for c in ds.split("val")} == {"c"}
    assert {c.path.parent.name for c in ds.split("test")} == {"d", "e", "f"}
    assert len(ds.split("train")) == 13  # 12 clips + the empty one
    with pytest.raises(DatasetError, match="split"):
        ds.split("valid")


@pytest.fixture(scope="module")
def mtat_weights(mtat_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mtat-weights")
    common = ["--mtat", str(mtat_dir), "--out", str(out), "--cache", str(out / "cache"),
              "--threads", "1", "--device", "cpu", "--windows-per-track", "0"]
    runner = CliRunner()
    r = runner.invoke(app, ["train", "tagger", *common, "--stage1-epochs", "2",
                            "--stage2-epochs", "3"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 unreadable" in r.output and "1 annotated MagnaTagATune clips" in r.output
    r = runner.invoke(app, ["train", "tagger", *common, "--no-joint", "--epochs", "2"])
    assert r.exit_code == 0, r.output
    return out


def test_train_on_mtat_writes_mtat_vocabulary(mtat_dir, mtat_weights):
    from embeddings.tagging import JetaTagger, LogRegTagger
    from embeddings.windows import WINDOW_SAMPLES

    vocabulary = load_magnatagatune(mtat_dir).vocabulary
    for name in ("jetatag", "jetatag_noje", "logreg_tagger"):
        meta = json.loads((mtat_weights / f"{name}.json").read_text())
        assert meta["config"]["vocabulary"] == vocabulary
        assert meta["training"]["dataset"] == "magnatagatune"
        assert meta["training"]["train_tracks"] == 12 and meta["training"]["val_tracks"] == 5
    stage2 = json.loads((mtat_weights / "jetatag.json").read_text())["training"]["stage2"]
    assert stage2["epochs_run"] == 3 and 1 <= stage2["kept_epoch"] <= 3
    cached = sorted(p.name.split("-")[1] for p in (mtat_weights / "cache").glob("mtat-*.npz"))
    assert cached == ["train", "val"]
    model = JetaTagger.load(mtat_weights / "jetatag.safetensors", device="cpu")
    probs, joint = model.predict(np.zeros((2, WINDOW_SAMPLES), np.float32))
    assert model.vocabulary == vocabulary and probs.shape == (2, len(vocabulary))
    assert LogRegTagger.load(mtat_weights / "logreg_tagger.safetensors").dim == len(vocabulary)


def test_bench_on_mtat_test_folders(mtat_dir, mtat_weights, tmp_path):
    out = tmp_path / "tagging-mtat.json"
    r = CliRunner().invoke(app, ["bench", "tagging", "--mtat", str(mtat_dir), "--weights",
                                 str(mtat_weights), "--json", str(out), "--threads", "1"])
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert result["split"] == "test" and result["n_items"] == 5  # d, e, f minus the empty mp3
    assert [p.rsplit("/", 2)[-2:] for p in result["notes"]["unreadable"]] == [
        ["f", "broken-0-29.mp3"]]
    assert set(result["systems"]) == {"logreg", "no_je", "je"}
    assert set(result["notes"]["per_tag"]) == {"drums", "classical", "techno"}
    assert result["notes"]["per_tag"]["drums"]["n_train_positive"] == 6  # folders 0-b
    assert result["notes"]["scored_without_train_positives"] == []
    assert result["systems"]["logreg"]["roc_auc"] > 0.9  # the toy sounds are easy


def _fails(args, match):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert match in r.output and "Traceback" not in r.output


def test_bad_mtat_folders_get_clear_errors(mtat_dir, tmp_path):
    train = ["train", "tagger", "--threads", "1", "--out", str(tmp_path / "w"), "--mtat"]
    _fails([*train, str(tmp_path / "nope")], "not a directory")
    _fails([*train, str(tmp_path)], "annotations_final.csv not found")
    (tmp_path / "annotations_final.csv").write_text("clip_id,classical,mp3_path\n1,1,0/a.mp3\n")
    _fails([*train, str(tmp_path)], "tab-separated")
    _annotations(tmp_path, [(1, ["classical"], "0/a.mp3")])
    _fails([*train, str(tmp_path)], "none of the 1 annotated clips")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "a.mp3").write_bytes(b"")
    _annotations(tmp_path, [(1, ["classical"], "g/a.mp3")])
    _fails([*train, str(tmp_path)], "not under a folder 0-f")
    _fails(["train", "tagger", "--mtat", str(mtat_dir), "--data", str(tmp_path)],
           "exactly one of --data")
    # The shipped weights know the corpus' tags, not MagnaTagATune's.
    _fails(["bench", "tagging", "--mtat", str(mtat_dir), "--threads", "1"],
           "another tag vocabulary")
