"""scripts/pack_corpus.py: the transport copy of a corpus for a GPU machine keeps every row,
codes the training stems, keeps validation audio bit-exact, and splits into tar parts."""

import importlib.util
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

from recsys.corpus import Corpus

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pack_corpus.py"


def _script():
    spec = importlib.util.spec_from_file_location("pack_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _with_sung_val_songs(corpus: Path, out: Path) -> Path:
    """A copy of ``corpus`` whose first two sung train songs are relabelled val (the tiny
    corpus' val split holds only an instrumental song)."""
    shutil.copytree(corpus, out)
    rows = [json.loads(line) for line in (out / "songs.jsonl").read_text().splitlines()]
    sung_train = [r for r in rows if r["split"] == "train" and r.get("singer_id")]
    for row in sung_train[:2]:
        row["split"] = "val"
    (out / "songs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_pack_keeps_rows_codes_train_stems_and_keeps_val_exact(tiny_corpus, tmp_path):
    pack = _script()
    source = _with_sung_val_songs(tiny_corpus, tmp_path / "source")
    out = tmp_path / "packed"
    report = pack.pack(source, out, None, val_songs=2, quality=0.9)
    original, packed = Corpus(source), Corpus(out)
    assert [s.song_id for s in packed.songs()] == [s.song_id for s in original.songs()]
    train = {s.song_id: s for s in original.songs("train")}
    val = [s for s in original.songs("val") if not s.instrumental][:2]
    assert report["train_songs"] == len(train) > 0 and report["val_songs"] == len(val) > 0
    for song in packed.songs():
        if song.song_id in train:
            assert Path(song.vocals).suffix == ".ogg" == Path(song.accompaniment).suffix
            coded, _ = sf.read(song.vocals, dtype="float32")
            clean, _ = sf.read(train[song.song_id].vocals, dtype="float32")
            n = min(len(coded), len(clean))
            snr = 10 * np.log10(np.sum(clean[:n] ** 2) / np.sum((clean[:n] - coded[:n]) ** 2))
            assert snr > 15, snr  # lossy, but close enough to train on
    by_id = {s.song_id: s for s in packed.songs()}
    for song in val:
        for key in ("mixture", "vocals"):
            path = getattr(by_id[song.song_id], key)
            assert Path(path).suffix == ".flac"
            np.testing.assert_array_equal(sf.read(path, dtype="int16")[0],
                                          sf.read(getattr(song, key), dtype="int16")[0])


def test_parts_stay_under_the_limit_and_unpack_to_the_same_tree(tiny_corpus, tmp_path):
    pack = _script()
    out = tmp_path / "packed"
    pack.pack(tiny_corpus, out, None, val_songs=2, quality=0.9)
    parts = pack.write_parts(out, limit_mib=0.25)
    assert len(parts) > 1
    assert all(p.stat().st_size <= 0.25 * 2**20 for p in parts)
    unpacked = tmp_path / "unpacked"
    for part in parts:
        with tarfile.open(part) as tar:
            tar.extractall(unpacked, filter="data")
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert sorted(p.relative_to(unpacked / "packed")
                  for p in (unpacked / "packed").rglob("*") if p.is_file()) == files
    for rel in files:
        assert (unpacked / "packed" / rel).read_bytes() == (out / rel).read_bytes()
