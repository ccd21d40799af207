"""Fixtures of the storage tests: a fresh database per test on SQLite and on PostgreSQL.

PostgreSQL: ``RECSYS_TEST_PG_URL`` (default: the server on 127.0.0.1:5432, user postgres).
Each test gets its own database ``recsys_test_<random>``, dropped afterwards. Without a
server the PostgreSQL variants skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from index.catalog import Catalog, TrackInput, WindowInput

PG_URL = os.environ.get("RECSYS_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DIM = {"timbre-track": 8, "melody-window": 6, "tag-joint": 5}


@pytest.fixture(scope="session")
def pg_admin():
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:
        engine.dispose()
        msg = f"no PostgreSQL server answers at {PG_URL} ({type(e).__name__}); " \
              "set RECSYS_TEST_PG_URL to test on PostgreSQL"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty database (no tables) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        return
    admin = request.getfixturevalue("pg_admin")
    name = f"recsys_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def catalog(db_url, tmp_path):
    cat = Catalog(db_url, tmp_path / "indexes", migrate=True)
    yield cat
    cat.close()


@pytest.fixture
def make_track():
    """``make_track(i, artist, ...)``: a track with random vectors, seeded by ``i``."""

    def make(i: int, artist: str | None = "alice", n_windows: int = 3, tags=None,
             timbre: bool = True, timbre_vector=None, versions=None) -> TrackInput:
        rng = np.random.default_rng(1000 + i)
        vectors = {"tag-joint": rng.standard_normal(DIM["tag-joint"])}
        if timbre:
            vectors["timbre-track"] = timbre_vector if timbre_vector is not None else \
                rng.standard_normal(DIM["timbre-track"])
        windows = [WindowInput(1.5 * k, 1.5 * k + 3.0, k % 2 == 0,
                               {"melody-window": rng.standard_normal(DIM["melody-window"])})
                   for k in range(n_windows)]
        return TrackInput(
            content_hash=f"hash-{i}", title=f"song {i}", artist=artist,
            duration=10.0 + i, source_uri=f"/music/{i}.wav", windows=windows, vectors=vectors,
            arrays={"pitch-contour": rng.standard_normal(50).astype(np.float32)},
            tags=tags if tags is not None else [("piano", 0.9, "predicted")],
            model_versions=versions or {"timbre-track": "mfcc-1"})

    return make
