"""The demo corpus builder: determinism, exact stem sums, pitch, singers, splits, manifests."""

from __future__ import annotations

import json
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recsys.corpus import SPLITS, VOCABULARY, Corpus, CorpusError
from recsys.corpus.build import BuildError, BuildParams, build, plan
from recsys.corpus.singers import SR, all_singers, sing, vibrato
from recsys.corpus.tunes import Tune, parse_tune

TINY = BuildParams(songs=4, seed=3, song_seconds=8.0, queries_per_song=1.0)


@pytest.fixture(scope="session")
def tune_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tune-cache")


@pytest.fixture(scope="session")
def corpus_dirs(tmp_path_factory, tune_cache) -> tuple[Path, Path]:
    """The same tiny corpus built twice, with different worker counts."""
    a = build(tmp_path_factory.mktemp("c") / "a", TINY, workers=2, cache_dir=tune_cache)
    b = build(tmp_path_factory.mktemp("c") / "b", TINY, workers=1, cache_dir=tune_cache)
    return a, b


@pytest.fixture(scope="session")
def corpus(corpus_dirs) -> Corpus:
    return Corpus(corpus_dirs[0])


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "cache" not in p.parts}


def test_same_seed_gives_identical_bytes(corpus_dirs):
    a, b = (_files(d) for d in corpus_dirs)
    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k] != b[k]]
    assert not different, f"files differ between two builds: {different[:5]}"
    assert any(k.endswith("mixture.wav") for k in a) and any(k.startswith("queries/") for k in a)


def test_manifest_round_trip(corpus, corpus_dirs):
    assert len(corpus) == TINY.songs
    assert corpus.vocabulary == VOCABULARY and len(VOCABULARY) <= 50
    assert "instrumental" not in VOCABULARY and "no vocals" in VOCABULARY
    assert sum(len(corpus.songs(s)) for s in SPLITS) == TINY.songs
    raw = [json.loads(line) for line in (corpus_dirs[0] / "songs.jsonl").read_text().splitlines()]
    for r, s in zip(raw, corpus.songs(), strict=True):
        assert s.song_id == r["song_id"] and s.tags == r["tags"] and s.notes == [
            tuple(n) for n in r["notes"]]
        assert s.mixture == corpus.root / r["mixture"] and s.mixture.is_file()
        assert set(s.tags) <= set(VOCABULARY)
        assert ("no vocals" in s.tags) == s.instrumental
        if not s.instrumental:
            assert f"{s.gender} vocal" in s.tags and s.artist and s.voice
        info = sf.info(s.mixture)
        assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.duration - TINY.song_seconds) < 1e-3
    for q in corpus.queries():
        song = corpus.song(q.song_id)
        assert q.path.is_file() and q.split == song.split and q.voice != song.voice
        assert 0 <= q.start_s < q.end_s <= song.duration and q.end_s - q.start_s <= 15
        for key in ("transpose_semitones", "tempo_factor", "timing_jitter_s", "wrong_notes",
                    "breath_gaps_before_notes", "noise", "snr_db"):
            assert key in q.params
        assert 0.7 <= q.params["tempo_factor"] <= 1.4


def test_stems_sum_exactly_to_mixture(corpus):
    for s in corpus.songs():
        mix = sf.read(s.mixture, dtype="int16")[0].astype(np.int32)
        voc = sf.read(s.vocals, dtype="int16")[0].astype(np.int32)
        acc = sf.read(s.accompaniment, dtype="int16")[0].astype(np.int32)
        stems = sum(sf.read(p, dtype="int16")[0].astype(np.int32) for p in s.stems.values())
        assert np.array_equal(stems, acc)
        assert np.array_equal(voc + acc, mix)
        assert np.abs(mix).max() > 1000  # not silence
        if s.instrumental:
            assert not voc.any()
        else:
            assert np.abs(voc).max() > 1000


def _pitch_errors_cents(audio: np.ndarray, notes) -> np.ndarray:
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=1000, sr=SR, frame_length=1024,
                                     hop_length=160)
    t = np.arange(len(f0)) * 0.01
    errors = []
    for on, off, midi in notes:
        sel = (t >= on) & (t < off) & voiced
        errors.append(1200 * np.log2(f0[sel] / (440.0 * 2 ** ((midi - 69) / 12))))
    return np.abs(np.concatenate(errors))


def test_sung_pitch_follows_the_tune(corpus):
    sung = [s for s in corpus.songs() if not s.instrumental]
    assert sung
    for s in sung:
        y = sf.read(s.vocals, dtype="float32")[0]
        err = _pitch_errors_cents(y, s.notes)
        frames = sum(int((off - on) * 100) for on, off, _ in s.notes)
        assert len(err) > 0.7 * frames, "most of each note should be voiced"
        assert np.median(err) < 50, f"{s.song_id}: median pitch error {np.median(err):.0f} cents"


def test_each_singer_keeps_one_voice_and_persona(corpus):
    singers = {s.singer_id: s for s in corpus.singers()}
    by_singer = defaultdict(list)
    for s in corpus.songs():
        if s.singer_id:
            by_singer[s.singer_id].append(s)
    assert by_singer
    for sid, songs in by_singer.items():
        assert {x.voice for x in songs} == {singers[sid].voice}
        assert all(x.persona == singers[sid].persona for x in songs)
        assert {x.artist for x in songs} == {singers[sid].name}
        assert {x.gender for x in songs} == {singers[sid].gender}


def test_persona_table_is_fixed_and_consistent():
    a, b = all_singers(), all_singers()
    assert a == b and len(a) == 30
    assert Counter(s.gender for s in a) == {"female": 15, "male": 15}
    assert len({s.name for s in a}) == 30 and len({s.singer_id for s in a}) == 30
    for s in a:  # personas stay within their sex's range (see singers module docstring)
        assert 0.92 <= s.persona.formant <= 1.08
        assert (s.persona.register < 60) == (s.gender == "male")


def _fake_tunes(n: int) -> list[Tune]:
    notes = [(float(i), 1.0, 60 + i % 5) for i in range(16)]
    return [Tune(f"fake/{i}", "fake", f"tune {i}", notes, 16.0, 4.0, 4, 0, "major")
            for i in range(n)]


@pytest.mark.parametrize("n", [8, 40, 320])
def test_splits_never_leak_tests_into_training(n):
    plans, singer_split = plan(BuildParams(songs=n, seed=0), _fake_tunes(n))
    assert Counter(p.split for p in plans).keys() <= set(SPLITS)
    train = [p for p in plans if p.split == "train"]
    test = [p for p in plans if p.split == "test"]
    assert train and test
    train_singers = {p.singer.singer_id for p in train if p.singer}
    test_singers = {p.singer.singer_id for p in test if p.singer}
    assert not train_singers & test_singers
    assert all(singer_split[s] == "test" for s in test_singers)
    for p in plans:
        if p.split in ("val", "test_seen") and p.singer:
            assert singer_split[p.singer.singer_id] == "train"
    train_tunes = {p.tune.tune_id for p in plans if p.split in ("train", "val")}
    assert not train_tunes & {p.tune.tune_id for p in plans if p.split in ("test", "test_seen")}
    assert len({p.tune.tune_id for p in plans}) == n  # every song its own tune
    counts = Counter(p.singer.singer_id for p in plans if p.singer)
    if n >= 40:
        assert min(counts.values()) >= 6
        genders = Counter(p.singer.gender for p in plans if p.singer)
        assert abs(genders["male"] - genders["female"]) <= 0.2 * sum(genders.values())
        instrumental = sum(p.singer is None for p in plans)
        assert 0.05 * n <= instrumental <= 0.15 * n
    if n >= 320:
        assert len(counts) == 30 and {p.split for p in plans} == set(SPLITS)


def test_plan_is_a_function_of_the_seed():
    tunes = _fake_tunes(40)
    a, _ = plan(BuildParams(songs=40, seed=5), tunes)
    b, _ = plan(BuildParams(songs=40, seed=5), tunes)
    c, _ = plan(BuildParams(songs=40, seed=6), tunes)
    key = [(p.split, p.singer and p.singer.singer_id, p.template, p.tune.tune_id) for p in a]
    assert key == [(p.split, p.singer and p.singer.singer_id, p.template, p.tune.tune_id)
                   for p in b]
    assert key != [(p.split, p.singer and p.singer.singer_id, p.template, p.tune.tune_id)
                   for p in c]


def test_formant_shift_keeps_the_written_pitch():
    notes = [(0.1, 0.6, 57.0), (0.6, 1.1, 60.0), (1.1, 1.6, 64.0)]
    for a in (0.93, 1.07):
        y = sing(notes, "kal_diphone", ["la", "la", "la"], formant=a)
        assert abs(len(y) / SR - 1.6) < 0.1
        assert np.median(_pitch_errors_cents(y, notes)) < 30


def test_vibrato_depth_is_as_asked():
    import librosa

    t = np.arange(2 * SR) / SR
    tone = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    y = vibrato(tone, 5.0, 50.0)
    f0 = librosa.yin(y, fmin=150, fmax=300, sr=SR, frame_length=1024, hop_length=80)[10:-10]
    cents = 1200 * np.log2(f0 / 220)
    assert 35 < np.percentile(np.abs(cents), 99) < 65


ABC = """X:1
T:Test Tune
M:4/4
L:1/8
K:G
GABc d2B2|c2A2 B2G2|GABc d2B2|A2F2 G4|
"""


def test_parse_tune_reads_notes_key_and_bars():
    tune = parse_tune("fake/x.abc#1", ABC)
    assert isinstance(tune, Tune)
    assert tune.title == "Test Tune" and tune.bar_ql == 4.0 and tune.length_ql == 16.0
    assert (tune.tonic, tune.mode) == (7, "major")
    assert tune.notes[0] == (0.0, 0.5, 67) and len(tune.notes) == 19
    assert parse_tune("fake/y.abc#1", "X:1\nT:Short\nM:4/4\nL:1/4\nK:C\nCDEF|\n") == "too few notes"


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(CorpusError, match="not a complete corpus"):
        Corpus(tmp_path)
    (tmp_path / "corpus.json").write_text("{not json")
    with pytest.raises(CorpusError, match="not valid JSON"):
        Corpus(tmp_path)


def test_reader_rejects_unknown_split(corpus):
    with pytest.raises(CorpusError, match="unknown split"):
        corpus.songs("testing")


def test_build_refuses_a_different_existing_corpus(corpus_dirs, tune_cache):
    with pytest.raises(BuildError, match="other parameters"):
        build(corpus_dirs[0], BuildParams(songs=5, seed=3, song_seconds=8.0),
              cache_dir=tune_cache)
    with pytest.raises(BuildError, match="--songs"):
        build(corpus_dirs[0], BuildParams(songs=0, seed=3))


def test_cli_info_and_bad_build(corpus_dirs, tmp_path):
    from typer.testing import CliRunner

    from recsys.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["corpus", "info", str(corpus_dirs[0])])
    assert r.exit_code == 0, r.output
    assert "train" in r.output and "singers" in r.output
    r = runner.invoke(app, ["corpus", "info", str(tmp_path)])
    assert r.exit_code == 2 and "not a complete corpus" in r.output
    (tmp_path / "junk.txt").write_text("x")
    r = runner.invoke(app, ["corpus", "build", "--out", str(tmp_path), "--songs", "2"])
    assert r.exit_code == 2 and "not empty" in r.output


def test_hum_spans_are_8_to_15_seconds():
    from recsys.corpus.hum import choose_span

    notes = [(0.37 * i, 0.37 * i + 0.3, 60.0 + i % 7) for i in range(200)]
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = choose_span(notes, rng)
        assert idx == list(range(idx[0], idx[-1] + 1))
        span = notes[idx[-1]][1] - notes[idx[0]][0]
        assert 8.0 <= span <= 15.0


def test_tune_offset_builds_a_corpus_on_other_tunes(corpus, tune_cache, tmp_path):
    from dataclasses import replace

    from recsys.corpus.tunes import tune_table

    params = replace(TINY, songs=2, queries_per_song=0.0, tune_offset=TINY.songs)
    other = Corpus(build(tmp_path / "other", params, workers=1, cache_dir=tune_cache))
    table = [t.tune_id for t in tune_table(TINY.songs + 2, tune_cache)]
    assert {s.tune_id for s in corpus.songs()} == set(table[:TINY.songs])
    assert {s.tune_id for s in other.songs()} == set(table[TINY.songs:])
    with pytest.raises(BuildError, match="tune-offset"):
        replace(TINY, tune_offset=-1).check()


def test_timeline_repeats_the_tune_and_a_late_first_note_still_fits():
    from recsys.corpus.build import _timeline

    tune = [(0.0, 1.0, 60.0), (1.0, 1.0, 62.0)]  # two quarters, at 0.5 s a quarter
    notes, reps = _timeline(tune, intro=1.0, rep_s=1.0, q=0.5, end_s=3.6)
    assert reps == 3 and [n[0] for n in notes] == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert notes[-1][1] == 3.5 and all(b > a for a, b, _ in notes)
    # A long pickup rest (essenFolksong/altdeu10.abc#224: 16-quarter bars, first note on
    # quarter 14) leaves no note in a 15 s song after a one-bar intro, but some without it:
    # the song starts at once instead of failing the build.
    late = [(14.0, 2.0, 65.0), (16.0, 2.0, 67.0)]
    assert _timeline(late, intro=16 * 0.6, rep_s=144 * 0.6, q=0.6, end_s=14.6)[0] == []
    notes, _ = _timeline(late, intro=0.0, rep_s=144 * 0.6, q=0.6, end_s=14.6)
    assert [(n[0], n[2]) for n in notes] == [(8.4, 65.0), (9.6, 67.0)]
