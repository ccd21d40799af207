"""The search services and ingest, end to end on the tiny ingested corpus."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embeddings import audio
from recsys import search
from recsys.ingest import IngestReport, ingest_paths
from recsys.metadata import discover
from recsys.search import NOTHING_CLOSE, NotFoundError, SearchError


def _vocal_songs(ingested):
    return [s for s in ingested.corpus.songs() if not s.instrumental]


def test_every_song_is_ingested_once(ingested):
    assert len(ingested.report.added) == len(ingested.corpus.songs())
    again = ingest_paths(discover([ingested.corpus.root]), ingested.catalog,
                         ingested.service.models)
    assert not again.added and len(again.existing) == len(ingested.corpus.songs())
    assert ingested.catalog.count_tracks() == len(ingested.corpus.songs())


def test_bad_file_is_reported_and_the_rest_go_on(ingested, tmp_path):
    song = ingested.corpus.songs()[0]
    folder = tmp_path / "Someone"
    folder.mkdir()
    shutil.copy(song.mixture, folder / "copy.wav")
    (folder / "broken.mp3").write_text("not audio at all")
    report = ingest_paths(discover([tmp_path]), ingested.catalog, ingested.service.models)
    assert [p.name for p, _ in report.failed] == ["broken.mp3"]
    assert "broken.mp3" in report.failed[0][1]
    assert [p.name for p, _ in report.existing] == ["copy.wav"]  # same audio, same track
    assert isinstance(report, IngestReport)


def test_instrumental_song_has_no_timbre_vector(ingested):
    instrumental = [s for s in ingested.corpus.songs() if s.instrumental]
    if not instrumental:
        pytest.skip("the tiny corpus drew no instrumental song")
    track_id = ingested.track_id(instrumental[0])
    ids, _ = ingested.catalog.track_vectors("timbre-track", [track_id])
    with pytest.raises(SearchError, match="no timbre-track vector"):
        ingested.service.similar_singers(track_id=track_id)
    assert len(ids) == 0 or ingested.catalog.windows(track_id)


def test_similar_singers_puts_a_songs_own_singer_first(ingested):
    hits = 0
    songs = _vocal_songs(ingested)
    for song in songs:
        answer = ingested.service.similar_singers(track_id=ingested.track_id(song),
                                                  score_threshold=-1.0)
        assert answer.results, answer.message
        hits += answer.results[0].payload["name"] == song.artist
        assert answer.results[0].payload["closest_tracks"]
    assert hits / len(songs) >= 0.8


def test_similar_singers_from_an_artist_excludes_that_artist(ingested):
    artist = ingested.catalog.list_artists()[0]
    answer = ingested.service.similar_singers(artist_id=artist.id, score_threshold=-1.0)
    assert all(r.id != artist.id for r in answer.results)


def test_query_by_example_in_each_space(ingested):
    song = _vocal_songs(ingested)[0]
    clip = audio.load(song.mixture)[: 8 * audio.SAMPLE_RATE]
    for space in ("timbre", "melody", "tags", "mix"):
        answer = ingested.service.search_example(clip, space=space, score_threshold=-1.0)
        assert answer.results, (space, answer.message)
        ids = [r.id for r in answer.results[:3]]
        assert ingested.track_id(song) in ids, space


def test_a_clip_of_a_catalog_song_clears_the_timbre_floor(ingested):
    # The default floor: what 95 % of pairs of different singers' tracks stay under. Clips of
    # the catalog's own songs must clear it, and find their singer.
    songs = _vocal_songs(ingested)
    same_singer = 0
    for song in songs:
        x = audio.load(song.mixture)
        mid = len(x) // 2
        clip = x[mid - 3 * audio.SAMPLE_RATE: mid + 3 * audio.SAMPLE_RATE]
        answer = ingested.service.search_example(clip, space="timbre")
        if answer.message == "no singing was found in the clip":
            continue
        assert answer.results, answer.message
        same_singer += answer.results[0].payload["artist"] == song.artist
    assert same_singer >= 0.8 * len(songs)


def test_tag_search_and_not_semantics(ingested):
    catalog = ingested.catalog
    common = [t for t, n in catalog.tags() if 0 < n < catalog.count_tracks()]
    assert len(common) >= 2
    want, exclude = common[0], common[1]

    def carriers(tag):
        return {t.id for t in catalog.list_tracks(limit=1000)
                if any(name == tag and score >= 0.5 for name, score, _ in t.tags)}

    answer = ingested.service.search_tags(tags=[want], limit=100)
    assert {r.id for r in answer.results} == carriers(want)
    answer = ingested.service.search_tags(tags=[want], not_tags=[exclude], limit=100)
    assert {r.id for r in answer.results} == carriers(want) - carriers(exclude)
    scores = [r.score for r in answer.results]
    assert scores == sorted(scores, reverse=True)


def test_free_text_is_shown_as_the_tags_it_was_understood_as(ingested):
    answer = ingested.service.search_tags(text="instrumental", limit=5)
    assert answer.understood["tags"] == ["no vocals"]
    with pytest.raises(SearchError, match="unknown tag"):
        ingested.service.search_tags(tags=["not-a-tag"])
    with pytest.raises(SearchError, match=r"unknown tag\(s\) \['x{80}\.\.\.'\]"):
        ingested.service.search_tags(tags=["x" * 100_000])  # not echoed in full
    with pytest.raises(SearchError, match="between 0 and 1"):
        ingested.service.search_tags(tags=["no vocals"], min_tag_score=float("nan"))


@pytest.mark.parametrize("strategy", ["dtw", "embedding"])
def test_a_hum_finds_its_song(ingested, strategy, monkeypatch):
    monkeypatch.setattr(ingested.service, "hum_search_strategy", strategy)
    queries = [q for q in ingested.corpus.queries()]
    assert queries
    found = 0
    for q in queries:
        answer = ingested.service.search_hum(audio.load(q.path))
        top = [r.id for r in answer.results[:3]]
        found += ingested.track_id(ingested.corpus.song(q.song_id)) in top
        if answer.results:
            p = answer.results[0].payload
            assert 0 <= p["match_start"] < p["match_end"]
    assert found / len(queries) >= 0.5


def test_auto_hum_search_aligns_exhaustively_only_on_small_catalogs(ingested, monkeypatch):
    monkeypatch.setattr(ingested.service, "hum_search_strategy", "auto")
    assert ingested.service.hum_strategy() == "dtw"
    monkeypatch.setattr(search, "HUM_EXHAUSTIVE_MAX_TRACKS", 1)
    assert ingested.service.hum_strategy() == "embedding"
    q = ingested.corpus.queries()[0]
    answer = ingested.service.search_hum(audio.load(q.path))
    assert answer.results and "votes" in answer.results[0].payload  # the embedding path's
    # a filter holds on that path too, for candidates brought by votes or by key profile
    artist_id = answer.results[0].payload["artist_id"]
    only = {"must": [{"key": "artist_id", "match": {"value": artist_id}}]}
    answer = ingested.service.search_hum(audio.load(q.path), filter=only, score_threshold=0.0)
    assert answer.results
    assert all(r.payload["artist_id"] == artist_id for r in answer.results)


@pytest.mark.parametrize("seconds", [0.05, 0.5, 5.0])
def test_silent_or_tiny_hums_say_so_on_the_embedding_path(ingested, monkeypatch, seconds):
    monkeypatch.setattr(ingested.service, "hum_search_strategy", "embedding")
    silence = np.zeros(int(seconds * audio.SAMPLE_RATE), np.float32)
    answer = ingested.service.search_hum(silence)
    assert not answer.results and "no melody" in answer.message


def test_silence_and_noise_say_so_instead_of_returning_noise(ingested):
    silence = np.zeros(5 * audio.SAMPLE_RATE, np.float32)
    answer = ingested.service.search_hum(silence)
    assert not answer.results and "no melody" in answer.message
    noise = np.random.default_rng(0).standard_normal(5 * audio.SAMPLE_RATE).astype(np.float32)
    answer = ingested.service.similar_singers(clip=0.1 * noise)
    assert not answer.results and answer.message
    track_id = ingested.track_id(_vocal_songs(ingested)[0])
    answer = ingested.service.similar_tracks(track_id, space="timbre", score_threshold=0.9999)
    assert not answer.results and answer.message == NOTHING_CLOSE


def test_unknown_ids_and_spaces_are_clear_errors(ingested):
    with pytest.raises(NotFoundError):
        ingested.service.similar_tracks(10**9)
    with pytest.raises(NotFoundError):
        ingested.service.similar_singers(artist_id=10**9)
    with pytest.raises(SearchError, match="unknown space"):
        ingested.service.similar_tracks(1, space="colour")


@pytest.fixture
def own_catalog(ingested, tmp_path):
    """A service over a new, empty catalog with the session's models."""
    from recsys.context import open_catalog
    from recsys.settings import Settings

    catalog = open_catalog(Settings(data_dir=tmp_path, api_keys=["k"]))
    return catalog, search.SearchService(catalog, models=ingested.service.models)


@pytest.mark.parametrize("strategy", ["dtw", "embedding"])
def test_hum_search_follows_tracks_added_and_deleted(ingested, own_catalog, strategy):
    catalog, service = own_catalog
    service.hum_search_strategy = strategy
    q = ingested.corpus.queries()[0]
    hum = audio.load(q.path)
    assert service.search_hum(hum).results == []  # nothing to find in an empty catalog
    song = ingested.corpus.song(q.song_id)
    mixture = [s for s in discover([ingested.corpus.root]) if s.path == song.mixture]
    others = [s for s in discover([ingested.corpus.root]) if s.path != song.mixture][:2]
    assert not ingest_paths(others, catalog, service.models).failed
    before = {r.id for r in service.search_hum(hum, score_threshold=0.0).results}
    assert not ingest_paths(mixture, catalog, service.models).failed
    target = catalog.track_id_for_hash(ingested.catalog.get_track(
        ingested.track_id(song)).content_hash)
    found = service.search_hum(hum, score_threshold=0.0).results
    assert target not in before and found[0].id == target  # the new track is searched
    catalog.delete_track(target)
    assert target not in {r.id for r in service.search_hum(hum, score_threshold=0.0).results}


def test_ingest_command_reports_each_bad_file_and_adds_the_rest(ingested, tmp_path,
                                                                monkeypatch):
    from typer.testing import CliRunner

    from recsys.cli import app
    from recsys.settings import get_settings

    folder = tmp_path / "songs"
    folder.mkdir()
    shutil.copy(ingested.corpus.songs()[0].mixture, folder / "good.wav")
    (folder / "broken.mp3").write_text("not audio at all")
    (folder / "empty.wav").write_bytes(b"")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["ingest", str(folder)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and result.exception is None
    assert "skipped broken.mp3: no audio stream" in result.output
    assert "skipped empty.wav: the file is empty" in result.output
    assert "added 1, already present 0, failed 2" in result.output
