"""Engines and sessions for the catalog database: SQLite by default, PostgreSQL via psycopg 3."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker


class DatabaseError(RuntimeError):
    """The database cannot be reached, the URL is wrong, or its schema is not current."""


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys (for cascades), WAL and a busy timeout."""
    url = normalize_url(str(url))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except Exception as e:  # e.g. a driver that is not installed
        raise DatabaseError(f"cannot use database URL {parsed.render_as_string()}: {e}") from e


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
