"""Alembic migrations up and down on SQLite and PostgreSQL, and the `recsys db` commands."""

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from index.catalog import Catalog
from index.db import DatabaseError
from index.migrate import current_revision, downgrade, head_revision, upgrade

TABLES = {"artists", "tracks", "windows", "embeddings", "track_arrays", "tags", "track_tags",
          "users", "interactions", "index_state"}


def tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_and_downgrade(db_url):
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert tables(db_url) == TABLES
    upgrade(db_url)  # again: nothing to do
    downgrade(db_url, "base")
    assert current_revision(db_url) is None
    assert tables(db_url) == set()
    upgrade(db_url, "head")
    assert tables(db_url) == TABLES


def test_ids_of_deleted_tracks_are_never_reused_and_0002_keeps_every_row(db_url):
    from sqlalchemy import text

    from index.db import make_engine

    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO artists (name) VALUES ('a')"))
            for i in range(3):
                conn.execute(text("INSERT INTO tracks (content_hash, title, artist_id, "
                                  "duration, status) VALUES (:h, 't', 1, 1.0, 'ready')"),
                             {"h": f"h{i}"})
            conn.execute(text('INSERT INTO windows (track_id, start, "end", voiced) '
                              "SELECT id, 0, 1, true FROM tracks"))
    finally:
        engine.dispose()
    upgrade(db_url)  # 0002 rebuilds the SQLite tables
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT id FROM tracks ORDER BY id")).scalars().all() == \
                [1, 2, 3]
            assert conn.execute(text("SELECT count(*) FROM windows")).scalar() == 3
            conn.execute(text("DELETE FROM tracks WHERE id = 3"))
            assert conn.execute(text("SELECT count(*) FROM windows")).scalar() == 2  # cascade
            conn.execute(text("INSERT INTO tracks (content_hash, title, duration, status) "
                              "VALUES ('h9', 'new', 1.0, 'ready')"))
            assert conn.execute(text("SELECT max(id) FROM tracks")).scalar() == 4
    finally:
        engine.dispose()


def test_catalog_refuses_a_database_that_is_not_migrated(db_url, tmp_path):
    with pytest.raises(DatabaseError, match="recsys db upgrade"):
        Catalog(db_url, tmp_path / "idx")


def test_unreachable_or_bad_url_is_a_clear_error():
    with pytest.raises(DatabaseError, match="cannot reach"):
        current_revision("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseError, match="not a database URL"):
        upgrade("this is not a url")


def test_db_commands(tmp_path, monkeypatch):
    from recsys.cli import app

    monkeypatch.chdir(tmp_path)  # the commands must not depend on the working directory
    url = f"sqlite:///{tmp_path / 'x' / 'c.sqlite'}"
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["db", "current", "--url", url])
    assert result.exit_code == 0 and "up to date" in result.output
    result = runner.invoke(app, ["db", "downgrade", "base", "--url", url])
    assert result.exit_code == 0, result.output
    assert tables(url) == set()
    result = runner.invoke(app, ["db", "current", "--url", "nonsense"])
    assert result.exit_code == 1 and "error:" in result.output


def test_db_check_and_rebuild_commands(tmp_path, monkeypatch):
    import numpy as np

    from index.catalog import TrackInput
    from recsys.cli import app
    from recsys.settings import get_settings

    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RECSYS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        s = get_settings()
        runner = CliRunner()
        result = runner.invoke(app, ["db", "check"])
        assert result.exit_code == 1 and "recsys db upgrade" in result.output
        cat = Catalog(s.sqlalchemy_url, s.index_dir, migrate=True)
        cat.add_track(TrackInput("h", "t", "a", 3.0, vectors={"tag-joint": np.ones(4)}))
        cat.close()
        (s.index_dir / "tag-joint@default.faiss").unlink()
        result = runner.invoke(app, ["db", "check"])
        assert result.exit_code == 0 and "rebuilt from SQL" in result.output
        result = runner.invoke(app, ["db", "rebuild", "--space", "tag-joint"])
        assert result.exit_code == 0 and "tag-joint" in result.output
        result = runner.invoke(app, ["db", "rebuild", "--space", "colour"])
        assert result.exit_code == 1 and "unknown vector space" in result.output
    finally:
        get_settings.cache_clear()
