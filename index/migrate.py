"""Alembic migrations driven from code, so ``recsys db upgrade`` works from any directory and
from an installed package (the scripts live in the ``migrations`` package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from index.db import DatabaseError, make_engine


def migrations_dir() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("the 'migrations' package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        # attributes, not main options: a URL may contain '%', which ini interpolation breaks
        cfg.attributes["url"] = url
    return cfg


def _run(fn, url: str, revision: str) -> None:
    if not revision.strip():
        raise DatabaseError("give a revision: 'head', 'base' or an id such as '0002'")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # a rebuilt table (batch mode) is dropped and renamed: with foreign keys on,
                # the drop would cascade to every row that refers to it. The pragma only
                # works outside a transaction, so it comes first; the connection is
                # disposed of afterwards, and new ones switch them on again (index.db).
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            fn(cfg, revision)
            if sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise DatabaseError(f"migration to {revision!r} left rows whose references "
                                    f"are broken (first: {broken[0]})")
    except SQLAlchemyError as e:
        # the driver's own message, without SQLAlchemy's statement dump and web link
        raise DatabaseError(f"migration to {revision!r} failed: "
                            f"{getattr(e, 'orig', None) or e}") from e
    except CommandError as e:  # an unknown revision, or a relative step past either end
        raise DatabaseError(f"no migration to {revision!r}: {e}") from e
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creating the tables if needed)."""
    _run(command.upgrade, url, revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"``: no tables left)."""
    _run(command.downgrade, url, revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str) -> str | None:
    """The database's revision, or None for an empty database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise DatabaseError(f"cannot reach the database: {e}") from e
    finally:
        engine.dispose()
