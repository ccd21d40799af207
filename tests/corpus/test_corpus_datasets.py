"""Loaders for real dataset layouts, each on a tiny fixture built here."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from recsys.datasets import (
    QBSH_FRAME_SECONDS,
    DatasetError,
    load_magnatagatune,
    load_musdb,
    load_qbsh,
    load_singer_folders,
    midi_notes,
    read_pitch_vector,
)


def _wav(path, seconds=0.5, freq=220.0, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.1 * np.sin(2 * np.pi * freq * t), sr)
    return path


def test_musdb_tracks_and_missing_stems(tmp_path):
    for split, name in [("train", "A - One"), ("train", "B - Two"), ("test", "C - Three")]:
        for stem in ("mixture", "vocals", "drums", "bass", "other"):
            _wav(tmp_path / split / name / f"{stem}.wav")
    tracks = load_musdb(tmp_path)
    assert [(t.split, t.name) for t in tracks] == [
        ("train", "A - One"), ("train", "B - Two"), ("test", "C - Three")]
    assert set(tracks[0].stems) == {"vocals", "drums", "bass", "other"}
    assert len(tracks[0].accompaniment) == 3
    assert [t.name for t in load_musdb(tmp_path, "test")] == ["C - Three"]
    (tmp_path / "test" / "C - Three" / "bass.wav").unlink()
    with pytest.raises(DatasetError, match="lacks bass.wav"):
        load_musdb(tmp_path, "test")
    with pytest.raises(DatasetError, match="'train' or 'test'"):
        load_musdb(tmp_path, "valid")
    with pytest.raises(DatasetError, match="not a directory"):
        load_musdb(tmp_path / "nope")


def _mtat(root, n_tags=60, rows=((1, "0/a.mp3"), (2, "0/b.mp3"), (3, "1/c.mp3"))):
    tags = [f"tag{i:02d}" for i in range(n_tags)]
    lines = ["\t".join(['"clip_id"'] + [f'"{t}"' for t in tags] + ['"mp3_path"'])]
    for k, (cid, path) in enumerate(rows):
        on = (np.arange(n_tags) % len(rows) == k).astype(int)  # every tag used at least once
        on[0] = 1  # tag00 is the most frequent
        lines.append("\t".join([f'"{cid}"'] + [f'"{v}"' for v in on] + [f'"{path}"']))
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    return tags


def test_magnatagatune_top_tags_and_missing_audio(tmp_path):
    _mtat(tmp_path)
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "a.mp3").write_bytes(b"x")
    (tmp_path / "0" / "b.mp3").write_bytes(b"x")
    ds = load_magnatagatune(tmp_path, top=50)
    assert len(ds.vocabulary) == 50 and ds.vocabulary[0] == "tag00"
    assert [c.clip_id for c in ds.clips] == [1, 2] and ds.missing_audio == 1
    y = ds.label_matrix()
    assert y.shape == (2, 50) and y[:, 0].tolist() == [1.0, 1.0]
    assert all(set(c.tags) <= set(ds.vocabulary) for c in ds.clips)
    assert len(load_magnatagatune(tmp_path, require_audio=False).clips) == 3


def test_magnatagatune_bad_files(tmp_path):
    with pytest.raises(DatasetError, match="annotations_final.csv not found"):
        load_magnatagatune(tmp_path)
    (tmp_path / "annotations_final.csv").write_text("clip_id,tag,mp3_path\n1,0,a.mp3\n")
    with pytest.raises(DatasetError, match="tab-separated"):
        load_magnatagatune(tmp_path)


def test_singer_folders(tmp_path):
    _wav(tmp_path / "Alice" / "First Song.wav")
    _wav(tmp_path / "Alice" / "Second.flac")
    _wav(tmp_path / "Bob" / "Tune.wav")
    (tmp_path / "Bob" / "notes.txt").write_text("not audio")
    (tmp_path / "Bob" / ".hidden.wav").write_bytes(b"")
    tracks = load_singer_folders(tmp_path)
    assert [(t.artist, t.title) for t in tracks] == [
        ("Alice", "First Song"), ("Alice", "Second"), ("Bob", "Tune")]
    with pytest.raises(DatasetError, match="no audio files"):
        load_singer_folders(tmp_path / "Bob")


def test_mir_qbsh(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for i, p in enumerate([60, 62, 64, 65]):
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=p, start=0.5 * i,
                                           end=0.5 * i + 0.4))
    pm.instruments.append(inst)
    (tmp_path / "midiFile").mkdir()
    pm.write(str(tmp_path / "midiFile" / "00013.mid"))
    wav = _wav(tmp_path / "waveFile" / "year2003" / "person00001" / "00013.wav")
    wav.with_suffix(".pv").write_text("0\n0\n48.5\n48.6\n0\n50.1\n")
    ds = load_qbsh(tmp_path)
    assert list(ds.songs) == ["00013"]
    q = ds.queries[0]
    assert (q.song_id, q.person, q.year) == ("00013", "person00001", "year2003")
    pv = read_pitch_vector(q.pitch_vector)
    assert np.isnan(pv[0]) and pv[2] == pytest.approx(48.5) and len(pv) == 6
    assert QBSH_FRAME_SECONDS == pytest.approx(0.032)
    notes = midi_notes(ds.songs["00013"])
    assert [n[2] for n in notes] == [60, 62, 64, 65] and notes[1][0] == pytest.approx(0.5)
    _wav(tmp_path / "waveFile" / "year2003" / "person00001" / "00099.wav")
    with pytest.raises(DatasetError, match="no MIDI file"):
        load_qbsh(tmp_path)
    (tmp_path / "bad.mid").write_text("not midi")
    with pytest.raises(DatasetError, match="not a readable MIDI"):
        midi_notes(tmp_path / "bad.mid")
