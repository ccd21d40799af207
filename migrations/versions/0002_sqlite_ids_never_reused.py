"""SQLite: track and artist ids are never reused (AUTOINCREMENT), as PostgreSQL's sequences
already guarantee; a client holding the id of a deleted track gets a 404, not another song.

SQLite sets AUTOINCREMENT only when a table is created, so both tables are rebuilt (Alembic
batch mode) with foreign keys off (``index.migrate``): the rows, ids, constraints and indexes
are kept. Nothing changes on other databases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 22:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("artists", "tracks")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
