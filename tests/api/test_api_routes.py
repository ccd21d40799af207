"""The API's happy paths on a small ingested catalog."""

from __future__ import annotations

import io

import numpy as np
import pytest


def _is_answer(body: dict) -> None:
    assert set(body) >= {"results", "took_ms"}
    assert body["took_ms"] >= 0
    for r in body["results"]:
        assert set(r) == {"id", "score", "payload"}
        assert isinstance(r["id"], int) and isinstance(r["score"], float)
        assert "source_uri" not in r["payload"]  # server paths stay private
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    if not body["results"]:
        assert body["message"]


def test_health_counts_the_catalog(client, ingested):
    catalog = ingested.catalog
    body = client.get("/health").json()
    assert body == {"status": "ok", "tracks": catalog.count_tracks(),
                    "artists": catalog.count_artists(), "writes_enabled": True}


def test_tracks_page_through_the_catalog(client, track_ids):
    first = client.get("/tracks", params={"limit": 1}).json()
    second = client.get("/tracks", params={"limit": 1, "offset": 1}).json()
    assert first["total"] == len(track_ids)
    assert [t["id"] for t in first["results"] + second["results"]] == track_ids[:2]


def test_tracks_filter_by_artist(client, track_ids):
    track = client.get(f"/tracks/{track_ids[0]}").json()
    flt = f'{{"must": [{{"key": "artist_id", "match": {{"value": {track["artist_id"]}}}}}]}}'
    body = client.get("/tracks", params={"filter": flt, "limit": 100}).json()
    assert body["results"] and all(t["artist_id"] == track["artist_id"]
                                   for t in body["results"])
    assert track["id"] in [t["id"] for t in body["results"]]


def test_get_track(client, track_ids):
    track = client.get(f"/tracks/{track_ids[0]}").json()
    assert track["id"] == track_ids[0]
    assert track["title"] and track["duration"] > 0
    assert track["audio_url"] == f"/tracks/{track_ids[0]}/audio"
    assert all(set(t) == {"name", "score", "source"} for t in track["tags"])


def test_audio_streams_with_range(client, track_ids):
    full = client.get(f"/tracks/{track_ids[0]}/audio")
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    assert full.content[:4] == b"RIFF"
    part = client.get(f"/tracks/{track_ids[0]}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(full.content)}"


@pytest.mark.parametrize("space", ["timbre", "melody", "tags"])
def test_similar_tracks_leave_the_track_out(client, track_ids, space):
    response = client.get(f"/tracks/{track_ids[0]}/similar",
                          params={"space": space, "limit": 5, "score_threshold": -1})
    assert response.status_code == 200, response.text
    body = response.json()
    _is_answer(body)
    assert track_ids[0] not in [r["id"] for r in body["results"]]
    assert len(body["results"]) <= 5


def test_artists_list_get_and_similar(client, ingested):
    catalog = ingested.catalog
    listed = client.get("/artists", params={"limit": 100}).json()
    assert listed["total"] == catalog.count_artists() == len(listed["results"])
    artist = listed["results"][0]
    one = client.get(f"/artists/{artist['id']}").json()
    assert one["name"] == artist["name"] and len(one["tracks"]) == artist["n_tracks"]
    similar = client.get(f"/artists/{artist['id']}/similar",
                         params={"limit": 3, "score_threshold": -1}).json()
    _is_answer(similar)
    assert similar["results"], "with no threshold every other singer is a neighbour"
    assert artist["id"] not in [r["id"] for r in similar["results"]]
    for r in similar["results"]:
        assert r["payload"]["name"] and r["payload"]["closest_tracks"]


def test_tags_vocabulary_with_counts(client, ingested):
    service = ingested.service
    body = client.get("/tags").json()
    assert body["vocabulary"] == list(service.models.tagger.vocabulary)
    counts = [t["count"] for t in body["tags"]]
    assert counts == sorted(counts, reverse=True) and sum(counts) > 0


def test_tag_search_and_not(client):
    tags = [t["name"] for t in client.get("/tags").json()["tags"] if t["count"] > 0]
    body = client.post("/search/tags", json={"tags": [tags[0]], "limit": 5}).json()
    _is_answer(body)
    assert body["results"]
    for r in body["results"]:
        assert r["payload"]["tags"].get(tags[0], 0) >= 0.5
    excluded = client.post("/search/tags", json={"tags": [tags[0]], "not": [tags[1]]}).json()
    _is_answer(excluded)
    for r in excluded["results"]:
        assert r["payload"]["tags"].get(tags[1], 0) < 0.5


def test_free_text_search_says_what_it_understood(client):
    body = client.post("/search/tags", json={"text": "a song with a woman singing"}).json()
    _is_answer(body)
    assert set(body["understood"]) >= {"tags", "not_tags"}


def test_search_example_finds_the_clip_song(client, clip_wav, track_ids):
    for space in ("timbre", "tags", "mix"):
        response = client.post("/search/example",
                               files={"file": ("clip.wav", clip_wav, "audio/wav")},
                               data={"space": space, "limit": "5", "score_threshold": "-1"})
        assert response.status_code == 200, response.text
        body = response.json()
        _is_answer(body)
        assert track_ids[0] in [r["id"] for r in body["results"]], space


def test_search_similar_singers_from_a_clip(client, clip_wav):
    response = client.post("/search/similar-singers",
                           files={"file": ("clip.wav", clip_wav, "audio/wav")},
                           data={"limit": "3", "score_threshold": "-1"})
    assert response.status_code == 200, response.text
    _is_answer(response.json())


def test_search_hum(client, ingested):
    """A hum query of the corpus, sent as an upload; hits carry the matched time span."""
    query = ingested.corpus.queries()[0]
    response = client.post("/search/hum", data={"limit": "3"},
                           files={"file": ("hum.wav", query.path.read_bytes(), "audio/wav")})
    assert response.status_code == 200, response.text
    body = response.json()
    _is_answer(body)
    for r in body["results"]:
        assert r["payload"]["match_end"] > r["payload"]["match_start"] >= 0


def test_singer_map_places_every_artist(client, ingested):
    catalog = ingested.catalog
    first = client.get("/singers/map").json()
    ids, _ = catalog.artist_vectors("timbre-artist")
    assert sorted(p["id"] for p in first["points"]) == sorted(ids.tolist())
    assert all(np.isfinite([p["x"], p["y"]]).all() for p in first["points"])
    second = client.get("/singers/map").json()  # cached: the same picture
    assert second["points"] == first["points"]


def test_upload_then_delete(client, clip_wav, ingested, api_key, api_settings):
    """A new song goes through ingest and comes back out; the catalog ends as it began."""
    import soundfile as sf

    catalog = ingested.catalog
    before = catalog.count_tracks()
    samples, rate = sf.read(io.BytesIO(clip_wav), dtype="float32")
    buffer = io.BytesIO()  # a different file: louder and longer, so a new content hash
    sf.write(buffer, np.concatenate([samples, samples]) * 0.8, rate, format="FLAC")
    headers = {"X-API-Key": api_key}
    response = client.post("/tracks", headers=headers,
                           files={"file": ("new song.flac", buffer.getvalue(), "audio/flac")},
                           data={"title": "Upload test", "artist": "API Tester",
                                 "tags": "piano, my tag"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "added" and body["track"]["title"] == "Upload test"
    assert {"name": "my tag", "score": 1.0, "source": "user"} in body["track"]["tags"]
    track_id = body["id"]
    try:
        assert catalog.count_tracks() == before + 1
        assert client.get(f"/tracks/{track_id}/audio").status_code == 200
        uploads = sorted((api_settings.data_dir / "uploads").glob("*"))
        for name in ("same.flac", "same under another name.wav"):
            again = client.post("/tracks", headers=headers, files={
                "file": (name, buffer.getvalue(), "audio/flac")})
            assert again.status_code == 200, again.text  # nothing was created
            assert (again.json()["id"], again.json()["status"]) == (track_id, "existing")
            # no second copy of the same audio is kept, under any extension
            assert sorted((api_settings.data_dir / "uploads").glob("*")) == uploads
    finally:
        deleted = client.delete(f"/tracks/{track_id}", headers=headers)
    assert deleted.json() == {"id": track_id, "deleted": True}
    assert catalog.count_tracks() == before
    assert client.get(f"/tracks/{track_id}").status_code == 404


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in ("app.js", "style.css"):
        assert name in page.text
        assert client.get(f"/static/{name}").status_code == 200
    docs = client.get("/docs")  # our offline reader of /openapi.json, no CDN
    assert docs.status_code == 200 and "docs.js" in docs.text
    assert "cdn" not in (page.text + docs.text).lower()
