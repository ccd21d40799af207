"""SQL schema of the catalog (SQLAlchemy 2.0). Tables are created by the Alembic migrations
in ``migrations/``, never by ``create_all``.

Deleting a track cascades in the database (``ON DELETE CASCADE``) to its windows, its
embeddings, its arrays, its tags and the interactions that name it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
Key = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TRACK_STATUSES = ("pending", "ready")
TAG_SOURCES = ("predicted", "user")
OWNER_TYPES = ("track", "artist", "window")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now():
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Artist(Base):
    __tablename__ = "artists"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0002)

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _now()


class Track(Base):
    """One audio file. ``status`` is 'pending' from the SQL commit until every vector index
    holds its vectors, then 'ready'; a pending track at start-up is repaired."""

    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(String(512))
    artist_id: Mapped[int | None] = mapped_column(
        ForeignKey("artists.id", ondelete="SET NULL"), index=True)
    duration: Mapped[float] = mapped_column(Float)
    source_uri: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'ready')", name="status"),
        CheckConstraint("duration >= 0", name="duration"),
        {"sqlite_autoincrement": True},  # ids never reused (migration 0002)
    )


class Window(Base):
    __tablename__ = "windows"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    voiced: Mapped[bool] = mapped_column(Boolean, default=True)


class Embedding(Base):
    """One vector of one owner in one space. ``owner_id`` is the FAISS id. ``track_id`` (for
    track and window owners) and ``artist_id`` (for artist owners) carry the cascade."""

    __tablename__ = "embeddings"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    owner_type: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(BigInteger)
    space: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(128))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    track_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    artist_id: Mapped[int | None] = mapped_column(
        ForeignKey("artists.id", ondelete="CASCADE"), index=True)

    __table_args__ = (
        UniqueConstraint("space", "model_version", "owner_id", name="uq_embeddings_owner"),
        CheckConstraint("owner_type IN ('track', 'artist', 'window')", name="owner_type"),
        Index("ix_embeddings_space_version", "space", "model_version"),
    )


class TrackArray(Base):
    """A per-track array that is stored but never indexed (e.g. the pitch contour)."""

    __tablename__ = "track_arrays"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    dtype: Mapped[str] = mapped_column(String(16))
    shape: Mapped[str] = mapped_column(String(128))  # JSON list
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (UniqueConstraint("track_id", "name", name="uq_track_arrays_track_name"),)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)


class TrackTag(Base):
    __tablename__ = "track_tags"

    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    score: Mapped[float] = mapped_column(Float)

    __table_args__ = (CheckConstraint("source IN ('predicted', 'user')", name="source"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _now()


class Interaction(Base):
    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # e.g. "like", "play", "skip"
    created_at: Mapped[datetime] = _now()


class IndexState(Base):
    """What the last successful write of each vector index held (ids count and checksum)."""

    __tablename__ = "index_state"

    space: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now())
