"""Fixtures of the API tests: the app over the session's small ingested catalog.

``ingested`` (tests/conftest.py) holds the settings, catalog, service and corpus of a tiny
corpus ingested with the shipped models; the API tests share it, so every test that writes
(upload, delete) removes what it added.
"""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from api.main import create_app

API_KEY = "test-key"
MAX_UPLOAD_MB = 4.0


@pytest.fixture(scope="session")
def api_key():
    return API_KEY


@pytest.fixture(scope="session")
def api_settings(ingested):
    return ingested.settings.model_copy(
        update={"api_keys": [API_KEY], "max_upload_mb": MAX_UPLOAD_MB})


@pytest.fixture(scope="session")
def app(api_settings, ingested):
    return create_app(api_settings, ingested.service)


@pytest.fixture
def client(app):
    """A client that sees a 500 as a response, and fails the test if any request hit the
    catch-all handler (every error case must be answered by a typed 4xx)."""
    before = app.state.internal_errors
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    assert app.state.internal_errors == before, "a request reached the 500 handler"


@pytest.fixture(scope="session")
def track_ids(app):
    with TestClient(app) as c:
        ids = [t["id"] for t in c.get("/tracks", params={"limit": 100}).json()["results"]]
    assert len(ids) >= 2, "the ingested test catalog should hold several tracks"
    return ids


@pytest.fixture(scope="session")
def clip_wav(app, track_ids):
    """Six seconds from the middle of a catalog track, as WAV bytes: a realistic query."""
    import soundfile as sf

    from embeddings import audio

    with TestClient(app) as c:
        data = c.get(f"/tracks/{track_ids[0]}/audio").content
    samples = audio.load(data)
    mid = len(samples) // 2
    excerpt = samples[max(0, mid - 3 * audio.SAMPLE_RATE): mid + 3 * audio.SAMPLE_RATE]
    buffer = io.BytesIO()
    sf.write(buffer, excerpt, audio.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def live_url(app):
    """The app served by uvicorn in a thread on a free loopback port (for the browser)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
