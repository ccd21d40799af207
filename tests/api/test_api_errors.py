"""Every bad request gets a JSON error with a clear message and the right 4xx, never a 500
(the ``client`` fixture fails a test whose requests reached the catch-all handler)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app

MISSING = 987_654
BAD_FILTER = '{"must": [{"key": "colour", "match": {"value": "red"}}]}'


def _error(response, status: int, code: str | None = None, says: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    if says:
        assert says.lower() in body["error"]["message"].lower()
    return body["error"]


def _wav(seconds: float, rate: int = 16000) -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * 220 * t), rate, format="WAV")
    return buffer.getvalue()


# ----- bad audio ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/search/example", "/search/similar-singers", "/search/hum"])
def test_bad_audio_is_422_with_the_loader_message(client, path):
    _error(client.post(path, files={"file": ("notes.wav", b"this is not audio at all")}),
           422, "audio_not_audio", says="notes.wav")
    _error(client.post(path, files={"file": ("empty.wav", b"")}), 422, "audio_empty")
    _error(client.post(path, files={"file": ("blip.wav", _wav(0.2))}), 422,
           "audio_too_short", says="blip.wav")


def test_bad_audio_upload_is_422_and_leaves_nothing(client, api_key, api_settings, ingested):
    catalog = ingested.catalog
    before = catalog.count_tracks()
    uploads = api_settings.data_dir / "uploads"
    files_before = set(uploads.glob("*")) if uploads.exists() else set()
    response = client.post("/tracks", headers={"X-API-Key": api_key},
                           files={"file": ("song.mp3", b"ID3 but no frames" * 100)})
    _error(response, 422)
    assert catalog.count_tracks() == before
    assert (set(uploads.glob("*")) if uploads.exists() else set()) == files_before


def test_missing_file_field_is_422(client):
    _error(client.post("/search/hum", data={"limit": "3"}), 422, "invalid_request",
           says="file")


# ----- uploads over the limit --------------------------------------------------------------

def test_huge_upload_with_content_length_is_413(client, api_key, api_settings):
    huge = b"\0" * int((api_settings.max_upload_mb + 1) * 1024 * 1024)
    _error(client.post("/search/example", files={"file": ("big.wav", huge)}), 413,
           "payload_too_large", says="MB")
    _error(client.post("/tracks", headers={"X-API-Key": api_key},
                       files={"file": ("big.wav", huge)}), 413, "payload_too_large")


def test_huge_chunked_upload_is_counted_and_refused(client, api_settings):
    """No Content-Length: the bytes are counted as they arrive."""
    block = b"\0" * (256 * 1024)
    n_blocks = int(api_settings.max_upload_mb * 4) + 8

    def body():
        yield b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(n_blocks):
            yield block
        yield b"\r\n--xx--\r\n"

    response = client.post("/search/hum", content=body(),
                           headers={"Content-Type": "multipart/form-data; boundary=xx"})
    _error(response, 413, "payload_too_large")


def test_upload_read_is_bounded(api_settings):
    from fastapi import UploadFile

    from api.deps import read_upload
    from api.errors import ApiError

    small = api_settings.model_copy(update={"max_upload_mb": 0.001})
    upload = UploadFile(io.BytesIO(b"x" * 5000), filename="a.wav")
    with pytest.raises(ApiError) as e:
        read_upload(upload, small)
    assert e.value.status == 413


# ----- API keys ----------------------------------------------------------------------------

def test_writes_need_the_key(client, track_ids, api_key):
    _error(client.delete(f"/tracks/{track_ids[0]}"), 401, "missing_api_key", says="X-API-Key")
    _error(client.delete(f"/tracks/{track_ids[0]}", headers={"X-API-Key": "nope"}), 403,
           "wrong_api_key")
    _error(client.post("/tracks", files={"file": ("a.wav", _wav(2.0))}), 401)
    assert client.get(f"/tracks/{track_ids[0]}").status_code == 200  # still there


def test_writes_are_off_without_configured_keys(api_settings, ingested, track_ids):
    service = ingested.service
    app = create_app(api_settings.model_copy(update={"api_keys": []}), service)
    with TestClient(app, raise_server_exceptions=False) as c:
        error = _error(c.delete(f"/tracks/{track_ids[0]}", headers={"X-API-Key": "x"}), 403,
                       "writes_disabled", says="RECSYS_API_KEYS")
        assert "X-API-Key" in error["message"]
        assert c.get("/health").json()["writes_enabled"] is False
    assert app.state.internal_errors == 0


# ----- unknown ids -------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    f"/tracks/{MISSING}", f"/tracks/{MISSING}/audio", f"/tracks/{MISSING}/similar",
    f"/artists/{MISSING}", f"/artists/{MISSING}/similar",
])
def test_unknown_id_is_404(client, path):
    _error(client.get(path), 404, "not_found", says=str(MISSING))


def test_delete_unknown_is_404(client, api_key):
    _error(client.delete(f"/tracks/{MISSING}", headers={"X-API-Key": api_key}), 404)


@pytest.mark.parametrize("path", [
    "/tracks/{n}", "/tracks/{n}/audio", "/tracks/{n}/similar", "/artists/{n}",
    "/artists/{n}/similar", "/tracks?offset={n}", "/artists?offset={n}",
])
def test_ids_and_offsets_past_64_bits_are_422(client, path):
    _error(client.get(path.format(n=2**63)), 422, "invalid_request")


def test_unknown_route_and_method(client):
    _error(client.get("/nothing/here"), 404, "not_found", says="/nothing/here")
    _error(client.put("/tags"), 405, "method_not_allowed")


# ----- bad filters, JSON and parameters ----------------------------------------------------

@pytest.mark.parametrize("flt", ["{not json", "[1, 2]", BAD_FILTER, '{"must": 3}'])
def test_bad_filter_is_400(client, flt, track_ids):
    _error(client.get("/tracks", params={"filter": flt}), 400, "bad_filter", says="filter")
    artist = client.get(f"/tracks/{track_ids[0]}").json()["artist_id"]
    _error(client.get(f"/artists/{artist}/similar", params={"filter": flt}), 400, "bad_filter")


def _nested(levels: int) -> str:
    """JSON text of a filter nested ``levels`` deep (written as text: Python's JSON encoder
    itself gives up at a few hundred levels)."""
    return '{"must": [' * levels + '{"key": "artist_id", "match": {"value": 1}}' + \
        "]}" * levels


@pytest.mark.parametrize("flt", [
    json.dumps({"must": [{"key": "artist_id", "match": {"value": 10**23}}]}),
    json.dumps({"must": [{"key": "duration", "range": {"gte": -(10**30)}}]}),
    _nested(20),
    _nested(500),
    json.dumps({"should": [{"key": "artist_id", "match": {"value": 1}}] * 300}),
    json.dumps({"must": [{"key": "track_id", "match": {"any": list(range(1, 1200))}}]}),
], ids=["huge id", "huge range", "20 levels", "500 levels", "300 conditions", "1200 ids"])
def test_filters_beyond_the_limits_are_400(client, flt, track_ids):
    for path in ("/tracks", f"/tracks/{track_ids[0]}/similar"):
        _error(client.get(path, params={"filter": flt}), 400, "bad_filter")
    tag = client.get("/tags").json()["vocabulary"][0]
    body = f'{{"tags": [{json.dumps(tag)}], "filter": {flt}}}'
    response = client.post("/search/tags", content=body.encode(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text  # ours, or the JSON parser's


def test_a_filter_within_the_limits_still_works(client):
    flt = {"should": [{"key": "artist_id", "match": {"value": i}} for i in range(1, 150)]}
    assert client.get("/tracks", params={"filter": json.dumps(flt)}).status_code == 200


def test_too_many_tags_in_one_search_is_422(client):
    tag = client.get("/tags").json()["vocabulary"][0]
    _error(client.post("/search/tags", json={"tags": [tag] * 1000}), 422, says="tags")
    _error(client.post("/search/tags", json={"tags": [tag], "not": ["drums"] * 1500}), 422)


def test_bad_filter_in_tag_search_is_400(client):
    tag = client.get("/tags").json()["vocabulary"][0]
    _error(client.post("/search/tags", json={"tags": [tag], "filter": {"must": [{"key": "x"}]}}),
           400, "bad_filter")


def test_a_tag_the_catalog_does_not_know_is_400(client, track_ids):
    misspelt = json.dumps({"must": [{"key": "tag", "match": {"value": "pinao"}}]})
    for path in ("/tracks", f"/tracks/{track_ids[0]}/similar"):
        _error(client.get(path, params={"filter": misspelt}), 400, "bad_filter", says="pinao")


def test_bad_json_is_422(client):
    _error(client.post("/search/tags", content=b'{"tags": [',
                       headers={"Content-Type": "application/json"}),
           422, "invalid_request", says="not valid JSON")
    _error(client.post("/search/tags", json=["piano"]), 422, "invalid_request")
    _error(client.post("/search/tags", json={"tags": "piano"}), 422, says="tags")
    _error(client.post("/search/tags", json={"tags": ["piano"], "colour": 1}), 422,
           says="colour")


def test_bad_tag_searches_are_400(client):
    _error(client.post("/search/tags", json={"tags": ["no such tag"]}), 400, says="unknown tag")
    _error(client.post("/search/tags", json={}), 400, says="at least one tag")
    tag = client.get("/tags").json()["vocabulary"][0]
    _error(client.post("/search/tags", json={"tags": [tag], "not": [tag]}), 400,
           says="both required and excluded")


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1},
                                    {"limit": "ten"}])
def test_bad_paging_is_422(client, params):
    _error(client.get("/tracks", params=params), 422, "invalid_request")


def test_bad_search_parameters(client, track_ids):
    _error(client.get(f"/tracks/{track_ids[0]}/similar", params={"space": "colour"}), 422,
           says="space")
    _error(client.get(f"/tracks/{track_ids[0]}/similar", params={"score_threshold": "high"}),
           422, says="score_threshold")
    _error(client.get("/tracks/0"), 422)
    _error(client.post("/search/example", files={"file": ("a.wav", _wav(2.0))},
                       data={"space": "mix", "weights": "{bad"}), 400, "bad_weights")
    _error(client.post("/search/example", files={"file": ("a.wav", _wav(2.0))},
                       data={"space": "sound"}), 422, says="space")
    _error(client.post("/search/hum", files={"file": ("a.wav", _wav(2.0))},
                       data={"limit": "500"}), 422, says="limit")


def test_a_real_bug_is_a_json_500_and_counted(api_settings, ingested):
    service = ingested.service
    app = create_app(api_settings, service)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    with TestClient(app, raise_server_exceptions=False) as c:
        error = _error(c.get("/boom"), 500, "internal_error")
    assert "secret detail" not in error["message"]  # internals stay in the log
    assert app.state.internal_errors == 1
