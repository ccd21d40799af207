"""The Catalog: the one place that keeps the SQL metadata and the FAISS indexes agreeing.

SQL is the source of truth; it stores every vector too, so any index can be rebuilt from it.
Adding a track is one SQL transaction (status 'pending'), then the index writes (temporary
file + rename), then the status turns 'ready'. Deleting is one SQL transaction, then the
index writes. A crash in between leaves SQL ahead of the index files; the start-up check
(``Catalog(...)`` or ``catalog.check()``) compares each index with SQL (count + checksum of
ids), rebuilds the ones that differ and completes the pending tracks.

Thread safety: searches may run from many threads; mutations are serialised by a lock, and
each index has its own readers-writer lock. Several processes may share the database, but
only one should write a given index directory at a time (``check()`` reloads after another
process wrote).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from index.db import DatabaseError, make_engine, session_factory
from index.filters import (
    DEFAULT_MIN_SCORE,
    INT64,
    FilterError,
    filter_tags,
    parse_filter,
    shown,
    track_condition,
)
from index.migrate import current_revision, head_revision, upgrade
from index.models import (
    TAG_SOURCES,
    Artist,
    Embedding,
    IndexState,
    Interaction,
    Tag,
    Track,
    TrackArray,
    TrackTag,
    User,
    Window,
)
from index.spaces import SPACES, Space, UnknownSpaceError, get_space
from index.vectors import IndexConfig, VectorIndex, VectorIndexError, ids_checksum

DEFAULT_VERSION = "default"
_SLACK = 5  # extra neighbours fetched so that a stale id dropped by SQL does not shorten a page

Pair = tuple[str, str]  # (space, model_version)


class CatalogError(Exception):
    """Base of the catalog's own errors."""


class InputError(CatalogError, ValueError):
    """A track, query or argument that cannot be stored or searched as given."""


def _storable_id(value: int) -> bool:
    """Whether ``value`` fits the 64-bit integer ids of every table."""
    return -INT64 <= int(value) < INT64


# ---- inputs and outputs -----------------------------------------------------------------

@dataclass
class WindowInput:
    """One 3 s window of a track; ``vectors`` maps window spaces to ``(dim,)`` vectors."""

    start: float
    end: float
    voiced: bool = True
    vectors: dict[str, np.ndarray | None] = field(default_factory=dict)


@dataclass
class TrackInput:
    """Everything stored for one track. ``vectors`` maps track spaces to ``(dim,)`` vectors
    (None or absent: no vector, e.g. no timbre for an instrumental); ``arrays`` are stored but
    never indexed; ``tags`` are ``(name, score, source)`` or ``(name, score)`` (predicted);
    ``model_versions`` maps a space to the version of the model that made its vectors."""

    content_hash: str
    title: str
    artist: str | None
    duration: float
    source_uri: str | None = None
    windows: list[WindowInput] = field(default_factory=list)
    vectors: dict[str, np.ndarray | None] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tags: list[tuple] = field(default_factory=list)
    model_versions: dict[str, str] = field(default_factory=dict)


@dataclass
class WindowHits:
    """Nearest windows of several queries, flat, all ``(hits,)``: the query's row, the
    window, its track, its start (seconds) and the similarity."""

    query: np.ndarray
    window_id: np.ndarray
    track_id: np.ndarray
    start: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> WindowHits:
        return cls(*(np.zeros(0, dtype=np.int64) for _ in range(3)), np.zeros(0), np.zeros(0))


@dataclass
class Hit:
    id: int
    score: float
    payload: dict


@dataclass
class TrackRecord:
    id: int
    content_hash: str
    title: str
    artist: str | None
    artist_id: int | None
    duration: float
    source_uri: str | None
    status: str
    created_at: datetime
    tags: list[tuple[str, float, str]]  # (name, score, source), best first
    n_windows: int


@dataclass
class ArtistRecord:
    id: int
    name: str
    n_tracks: int


@dataclass
class SpaceInfo:
    space: str
    model_version: str
    owner: str
    dim: int
    count: int
    kind: str


@dataclass
class WindowVectors:
    """Window vectors of one space: all arrays ``(n,)`` except ``vectors`` ``(n, dim)``."""

    window_ids: np.ndarray
    track_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    voiced: np.ndarray
    vectors: np.ndarray


@dataclass
class _Prepared:
    vectors: dict[str, np.ndarray]  # track space -> (dim,)
    windows: list[tuple[float, float, bool, dict[str, np.ndarray]]]
    arrays: list[tuple[str, str, str, bytes]]  # name, dtype, shape JSON, data
    tags: dict[tuple[str, str], float]  # (name, source) -> score
    versions: dict[str, str]


@dataclass
class _Change:
    add_ids: list[int] = field(default_factory=list)
    add_vectors: list[np.ndarray] = field(default_factory=list)
    remove_ids: list[int] = field(default_factory=list)


# ---- the catalog --------------------------------------------------------------------------

class Catalog:
    """SQL metadata + one FAISS index per (space, model version) under ``index_dir``.

    ``database_url``: a SQLAlchemy URL whose schema is at the newest migration
    (``recsys db upgrade``; or pass ``migrate=True`` to run the migrations here).
    Opening a catalog runs the start-up check; ``self.repairs`` says what it repaired.
    """

    def __init__(self, database_url: str, index_dir: str | Path, exact_max: int = 50_000,
                 migrate: bool = False, index_config: IndexConfig | None = None):
        self.database_url = database_url
        self.index_dir = Path(index_dir)
        self.config = index_config or IndexConfig(exact_max=exact_max)
        if migrate:
            upgrade(database_url)
        current, head = current_revision(database_url), head_revision()
        if current != head:
            raise DatabaseError(f"the catalog database is at revision {current or 'none'}, "
                                f"not {head}: run `recsys db upgrade`")
        self._engine = make_engine(database_url)
        self._session = session_factory(self._engine)
        self._lock = threading.RLock()
        self._indexes: dict[Pair, VectorIndex] = {}
        self._latest: dict[str, str] = {}  # space -> most recently added model version
        self._dirty: set[Pair] = set()
        self._to_ready: set[int] = set()
        self._batch_depth = 0
        self._known_state: dict[Pair, tuple[int, str]] = {}  # index_state rows as we wrote them
        self.repairs: list[str] = []
        self.check()

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- consistency -----------------------------------------------------------------------

    def check(self) -> list[str]:
        """Compare every index file with SQL (count + checksum of ids); rebuild the ones that
        are missing, unreadable or different; delete files of spaces SQL no longer has; then
        mark pending tracks ready. Returns what was repaired (empty when all agreed)."""
        with self._lock:
            repairs: list[str] = []
            with self._session() as s:
                pairs = s.execute(
                    select(Embedding.space, Embedding.model_version, func.max(Embedding.dim),
                           func.max(Embedding.id))
                    .group_by(Embedding.space, Embedding.model_version)).all()
            indexes: dict[Pair, VectorIndex] = {}
            latest: dict[str, tuple[int, str]] = {}
            self._known_state = {}
            for space, version, dim, last_id in pairs:
                pair = (space, version)
                path = self._path(pair)
                ids = self._sql_ids(pair)
                index, problem = None, None
                if not path.exists():
                    problem = "index file missing"
                else:
                    try:
                        index = VectorIndex.load(path, replace(self.config))
                    except VectorIndexError as e:
                        problem = str(e)
                if index is not None and (index.dim != dim or len(index) != len(ids)
                                          or index.checksum() != ids_checksum(ids)):
                    problem = f"index holds {len(index)} ids, SQL {len(ids)}, or other ids"
                    index = None
                if index is None:
                    index = self._build(pair, dim)
                    index.save(path)
                    repairs.append(f"{space}@{version}: rebuilt from SQL ({problem})")
                indexes[pair] = index
                self._save_state(pair, index)
                if space not in latest or last_id > latest[space][0]:
                    latest[space] = (last_id, version)
            expected = {self._path(p).name for p in indexes}
            if self.index_dir.exists():
                for f in self.index_dir.glob("*.faiss"):
                    if f.name not in expected:
                        f.unlink()
                        repairs.append(f"{f.name}: removed (no such vectors in SQL)")
            self._indexes = indexes
            self._latest = {space: v for space, (_, v) in latest.items()}
            self._dirty.clear()
            with self._session.begin() as s:
                for space, version in s.execute(
                        select(IndexState.space, IndexState.model_version)).all():
                    if (space, version) not in indexes:
                        s.execute(delete(IndexState).where(IndexState.space == space,
                                                           IndexState.model_version == version))
                n = s.execute(update(Track).where(Track.status == "pending")
                              .values(status="ready")).rowcount
            if n:
                repairs.append(f"{n} pending track(s) completed")
            self.repairs = repairs
            return repairs

    def refresh(self) -> bool:
        """Reload the indexes if another process changed them (cheap when nothing changed:
        one query of the index_state table). Returns True when it reloaded."""
        with self._session() as s:
            state = {(r.space, r.model_version): (r.count, r.checksum)
                     for r in s.scalars(select(IndexState))}
        with self._lock:
            if state == self._known_state:
                return False
            self.check()
            return True

    def rebuild(self, space: str | None = None) -> list[SpaceInfo]:
        """Rebuild the indexes of ``space`` (all when None) from the vectors in SQL."""
        if space is not None:
            get_space(space)
        with self._lock:
            with self._session() as s:
                q = select(Embedding.space, Embedding.model_version, func.max(Embedding.dim)) \
                    .group_by(Embedding.space, Embedding.model_version)
                if space is not None:
                    q = q.where(Embedding.space == space)
                pairs = s.execute(q).all()
            for sp, version, dim in pairs:
                pair = (sp, version)
                index = self._build(pair, dim)
                index.save(self._path(pair))
                self._indexes[pair] = index
                self._save_state(pair, index)
            return [i for i in self.spaces() if space is None or i.space == space]

    # ---- writing ---------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[Catalog]:
        """Add or delete many tracks, writing the index files once at the end (tracks stay
        'pending' until then, so a crash inside is repaired like any other)."""
        with self._lock:
            self._batch_depth += 1
        try:
            yield self
        finally:
            with self._lock:
                self._batch_depth -= 1
                if self._batch_depth == 0:
                    self._flush()

    def add_track(self, track: TrackInput) -> tuple[int, bool]:
        """Store a track; returns ``(track_id, created)``. The same ``content_hash`` again
        returns ``(existing_id, False)`` and changes nothing."""
        prepared = self._prepare(track)
        with self._lock:
            try:
                with self._session.begin() as s:
                    existing = s.scalar(
                        select(Track.id).where(Track.content_hash == track.content_hash))
                    if existing is not None:
                        return existing, False
                    track_id, changes = self._insert(s, track, prepared)
            except IntegrityError:
                # another writer stored the same content (or artist/tag name) meanwhile
                with self._session() as s:
                    existing = s.scalar(
                        select(Track.id).where(Track.content_hash == track.content_hash))
                if existing is not None:
                    return existing, False
                raise
            except SQLAlchemyError as e:
                raise DatabaseError(f"cannot store track: {e}") from e
            self._apply(changes)
            self._to_ready.add(track_id)
            for space, version in prepared.versions.items():
                self._latest[space] = version
            if self._batch_depth == 0:
                self._flush()
            return track_id, True

    def delete_track(self, track_id: int) -> bool:
        """Delete a track with its windows, vectors, arrays and tags; its artist's vector is
        recomputed (or the artist removed with its last track). False if there is none."""
        with self._lock:
            with self._session.begin() as s:
                row = s.execute(select(Track.id, Track.artist_id)
                                .where(Track.id == int(track_id))).first()
                if row is None:
                    return False
                changes: dict[Pair, _Change] = {}
                for space, version, owner_id in s.execute(
                        select(Embedding.space, Embedding.model_version, Embedding.owner_id)
                        .where(Embedding.track_id == row.id)):
                    changes.setdefault((space, version), _Change()).remove_ids.append(owner_id)
                s.execute(delete(Track).where(Track.id == row.id))
                if row.artist_id is not None:
                    _merge(changes, self._update_artist(s, row.artist_id))
            self._apply(changes)
            self._to_ready.discard(int(track_id))
            if self._batch_depth == 0:
                self._flush()
            return True

    def tag_track(self, track_id: int, tag: str, score: float = 1.0,
                  source: str = "user") -> None:
        """Set one tag of a track (e.g. a user's own tag)."""
        _check_tag(tag, score, source)
        with self._lock, self._session.begin() as s:
            if s.get(Track, track_id) is None:
                raise InputError(f"no track {track_id}")
            tag_id = self._tag_ids(s, [tag])[tag]
            s.execute(delete(TrackTag).where(TrackTag.track_id == track_id,
                                             TrackTag.tag_id == tag_id,
                                             TrackTag.source == source))
            s.execute(insert(TrackTag), [{"track_id": track_id, "tag_id": tag_id,
                                          "source": source, "score": float(score)}])

    # ---- users -----------------------------------------------------------------------------

    def add_user(self, name: str) -> int:
        """The id of user ``name``, created if needed."""
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise InputError("a user name is a non-empty string of at most 255 characters")
        with self._lock, self._session.begin() as s:
            return _named_id(s, User, name)

    def add_interaction(self, user_id: int, track_id: int, kind: str) -> int:
        if not isinstance(kind, str) or not kind or len(kind) > 32:
            raise InputError("an interaction kind is a short non-empty string, e.g. 'like'")
        with self._lock, self._session.begin() as s:
            if s.get(User, user_id) is None:
                raise InputError(f"no user {user_id}")
            if s.get(Track, track_id) is None:
                raise InputError(f"no track {track_id}")
            it = Interaction(user_id=user_id, track_id=track_id, kind=kind)
            s.add(it)
            s.flush()
            return it.id

    def interactions(self, user_id: int,
                     kind: str | None = None) -> list[tuple[int, str, datetime]]:
        """``(track_id, kind, created_at)`` of a user, oldest first."""
        with self._session() as s:
            q = select(Interaction.track_id, Interaction.kind, Interaction.created_at) \
                .where(Interaction.user_id == user_id).order_by(Interaction.id)
            if kind is not None:
                q = q.where(Interaction.kind == kind)
            return [tuple(r) for r in s.execute(q)]

    # ---- reading ---------------------------------------------------------------------------

    def search(self, space: str, query_vectors, limit: int = 10, offset: int = 0,
               filter: dict | str | None = None, score_threshold: float | None = None,
               model_version: str | None = None) -> list[list[Hit]]:
        """Nearest owners of ``space`` for each of ``query_vectors`` ``(m, dim)`` (or
        ``(dim,)``), by cosine similarity; one list of hits per query, best first.

        Payloads: tracks ``{track_id, title, artist, artist_id, duration, source_uri, tags}``;
        windows add ``{window_id, start, end, voiced}``; artists ``{artist_id, name,
        n_tracks}``. ``filter`` (see ``index.filters``) selects tracks; window and artist
        spaces keep the windows / artists of those tracks. Raises ``FilterError``,
        ``UnknownSpaceError`` or ``InputError`` on bad arguments.
        """
        sp = get_space(space)
        limit, offset = _check_page(limit, offset, max_limit=10_000)
        if score_threshold is not None and not _finite(score_threshold):
            raise InputError("score_threshold must be a finite number")
        searched = self._nearest(sp, query_vectors, offset + limit + _SLACK, filter,
                                 model_version)
        if searched is None:
            q = np.asarray(query_vectors)
            return [[] for _ in range(len(q) if q.ndim == 2 else 1)]
        scores, ids = searched
        found = {int(i) for i in ids.ravel() if i >= 0}
        payloads = self._payloads(sp, found)
        out = []
        for row_s, row_i in zip(scores, ids, strict=True):
            hits = [Hit(int(i), float(sc), payloads[int(i)])
                    for sc, i in zip(row_s, row_i, strict=True)
                    if i >= 0 and int(i) in payloads
                    and (score_threshold is None or sc >= score_threshold)]
            out.append(hits[offset:offset + limit])
        return out

    def check_filter(self, filter: dict | str | None) -> dict | None:
        """``parse_filter``, and a tag this catalog does not know raises ``FilterError``:
        tags are a closed vocabulary, and a misspelt one would quietly select nothing. (A
        catalog with no tags yet has nothing to check against.)"""
        f = parse_filter(filter)
        if wanted := filter_tags(f):
            with self._session() as s:
                known = set(s.scalars(select(Tag.name).where(Tag.name.in_(sorted(wanted)))))
                if wanted - known and s.scalar(select(Tag.id).limit(1)) is not None:
                    raise FilterError(f"filter: unknown tag(s) {shown(sorted(wanted - known))}; "
                                      "GET /tags lists the catalog's tags")
        return f

    def _nearest(self, sp, query_vectors, k: int, filter, model_version):
        """``(scores, ids)``, ``(m, k)`` each, of the space's index for ``(m, dim)`` (or
        ``(dim,)``) query vectors, restricted to the tracks ``filter`` selects; None when the
        space has no index yet. Bad filters and vectors raise ``FilterError`` / ``InputError``."""
        f = self.check_filter(filter)
        q = np.asarray(query_vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        pair = self._resolve(sp.name, model_version)
        index = self._indexes.get(pair) if pair is not None else None
        if index is None:
            return None
        if q.ndim != 2 or q.shape[1] != index.dim:
            raise InputError(f"query vectors for {sp.name!r} need {index.dim} dimensions, "
                             f"got shape {tuple(q.shape)}")
        allowed = self._allowed_ids(sp, f) if f is not None else None
        try:
            return index.search(q, k, allowed)
        except VectorIndexError as e:
            raise InputError(f"bad query for space {sp.name!r}: {e}") from None

    def window_hits(self, space: str, query_vectors, limit: int = 10,
                    filter: dict | str | None = None) -> WindowHits:
        """The nearest ``limit`` windows of a window space for each of ``query_vectors``
        ``(m, dim)``, as flat arrays and without payloads: what voting over many hits needs
        (one light query, where :meth:`search` also reads titles, artists and tags).
        ``filter`` selects tracks as in :meth:`search`, whose errors it raises too."""
        sp = get_space(space)
        if sp.owner != "window":
            raise UnknownSpaceError(f"{space!r} is not a window space")
        limit, _ = _check_page(limit, 0, max_limit=10_000)
        searched = self._nearest(sp, query_vectors, limit + _SLACK, filter, None)
        if searched is None:
            return WindowHits.empty()
        scores, ids = searched
        row, col = np.nonzero(ids >= 0)
        found = ids[row, col]
        with self._session() as s:
            known = {r.id: (r.track_id, r.start) for r in s.execute(
                select(Window.id, Window.track_id, Window.start)
                .where(Window.id.in_(np.unique(found).tolist())))}
        # stale ids (gone from SQL) are dropped; each query keeps its best `limit` of the rest
        keep = np.array([int(i) in known for i in found], dtype=bool)
        row, found, score = row[keep], found[keep], scores[row, col][keep]
        rank = np.arange(len(row)) - np.searchsorted(row, row)  # place within its query
        row, found, score = row[rank < limit], found[rank < limit], score[rank < limit]
        where = [known[int(i)] for i in found]
        return WindowHits(row.astype(np.int64), found.astype(np.int64),
                          np.array([w[0] for w in where], dtype=np.int64),
                          np.array([w[1] for w in where], dtype=np.float64),
                          score.astype(np.float64))

    def get_track(self, track_id: int) -> TrackRecord | None:
        if not _storable_id(track_id):  # no such row; the driver would raise on it
            return None
        records = self._track_records(select(Track).where(Track.id == int(track_id)))
        return records[0] if records else None

    def track_id_for_hash(self, content_hash: str) -> int | None:
        with self._session() as s:
            return s.scalar(select(Track.id).where(Track.content_hash == content_hash))

    def list_tracks(self, limit: int = 50, offset: int = 0, filter: dict | str | None = None,
                    ) -> list[TrackRecord]:
        limit, offset = _check_page(limit, offset, max_limit=10_000)
        cond = track_condition(self.check_filter(filter))
        return self._track_records(select(Track).where(cond)
                                   .order_by(Track.id).limit(limit).offset(offset))

    def track_ids(self, filter: dict | str | None = None) -> list[int]:
        """The ids of every track the filter lets through, ascending, without their
        records (one light query; a bad filter raises ``FilterError``)."""
        cond = track_condition(self.check_filter(filter))
        with self._session() as s:
            return [int(t) for t in s.scalars(select(Track.id).where(cond).order_by(Track.id))]

    def count_tracks(self, filter: dict | str | None = None) -> int:
        cond = track_condition(self.check_filter(filter))
        with self._session() as s:
            return s.scalar(select(func.count(Track.id)).where(cond))

    def tracks_stamp(self) -> tuple:
        """``(number of tracks, highest track id, latest creation time)``, in one query: it
        changes whenever a track is added or deleted (a track's stored arrays are written
        with it and never change). SQLite reuses the id of a deleted newest track; the
        creation time tells such a newcomer apart unless both happen within one second
        (SQLite's clock resolution). For caches of per-track data."""
        with self._session() as s:
            count, top, latest = s.execute(select(
                func.count(Track.id), func.max(Track.id), func.max(Track.created_at))).one()
            return int(count), int(top or 0), latest

    def get_artist(self, artist_id: int) -> ArtistRecord | None:
        if not _storable_id(artist_id):
            return None
        found = self._artist_records(select(Artist.id).where(Artist.id == int(artist_id)))
        return found[0] if found else None

    def find_artist(self, name: str) -> ArtistRecord | None:
        found = self._artist_records(select(Artist.id).where(Artist.name == name))
        return found[0] if found else None

    def list_artists(self, limit: int = 50, offset: int = 0,
                     name_contains: str | None = None) -> list[ArtistRecord]:
        limit, offset = _check_page(limit, offset, max_limit=10_000)
        q = select(Artist.id).order_by(Artist.name).limit(limit).offset(offset)
        if name_contains:
            q = q.where(func.lower(Artist.name).contains(name_contains.lower()))
        return self._artist_records(q)

    def count_artists(self) -> int:
        with self._session() as s:
            return s.scalar(select(func.count(Artist.id)))

    def tags(self, min_score: float = DEFAULT_MIN_SCORE) -> list[tuple[str, int]]:
        """``(tag, number of tracks with it at >= min_score)``, most frequent first; tags no
        track reaches are listed with 0."""
        with self._session() as s:
            counted = select(TrackTag.tag_id, func.count(func.distinct(TrackTag.track_id))
                             .label("n")).where(TrackTag.score >= min_score) \
                .group_by(TrackTag.tag_id).subquery()
            rows = s.execute(select(Tag.name, func.coalesce(counted.c.n, 0))
                             .outerjoin(counted, counted.c.tag_id == Tag.id)).all()
        return sorted(((n, int(c)) for n, c in rows), key=lambda r: (-r[1], r[0]))

    def spaces(self) -> list[SpaceInfo]:
        """The indexes held, one per (space, model version)."""
        return [SpaceInfo(sp, v, SPACES[sp].owner if sp in SPACES else "?", idx.dim, len(idx),
                          idx.kind) for (sp, v), idx in sorted(tuple(self._indexes.items()))]

    def all_vectors(self, space: str, model_version: str | None = None,
                    owner_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(owner ids (n,), vectors (n, dim))`` of a space from SQL, sorted by id."""
        get_space(space)
        pair = self._resolve(space, model_version)
        if pair is None:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return self._sql_vectors(pair, owner_ids=owner_ids)

    def track_vectors(self, space: str, track_ids: Iterable[int] | None = None,
                      model_version: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Track vectors of a track space: ``(track ids (n,), vectors (n, dim))``."""
        if get_space(space).owner != "track":
            raise UnknownSpaceError(f"{space!r} is not a track space")
        return self.all_vectors(space, model_version, track_ids)

    def artist_vectors(self, space: str = "timbre-artist",
                       artist_ids: Iterable[int] | None = None,
                       model_version: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Artist vectors of an artist space: ``(artist ids (n,), vectors (n, dim))``."""
        if get_space(space).owner != "artist":
            raise UnknownSpaceError(f"{space!r} is not an artist space")
        return self.all_vectors(space, model_version, artist_ids)

    def window_vectors(self, space: str, track_ids: Iterable[int] | None = None,
                       model_version: str | None = None) -> WindowVectors:
        """The window vectors of a window space (of the given tracks), ordered by window."""
        if get_space(space).owner != "window":
            raise UnknownSpaceError(f"{space!r} is not a window space")
        pair = self._resolve(space, model_version)
        empty = np.zeros(0)
        if pair is None:
            return WindowVectors(empty.astype(np.int64), empty.astype(np.int64), empty, empty,
                                 empty.astype(bool), np.zeros((0, 0), np.float32))
        q = select(Embedding.owner_id, Window.track_id, Window.start, Window.end, Window.voiced,
                   Embedding.dim, Embedding.vector) \
            .join(Window, Window.id == Embedding.owner_id) \
            .where(Embedding.space == pair[0], Embedding.model_version == pair[1]) \
            .order_by(Embedding.owner_id)
        if track_ids is not None:
            q = q.where(Window.track_id.in_([int(t) for t in track_ids]))
        with self._session() as s:
            rows = s.execute(q).all()
        dim = rows[0].dim if rows else self._indexes[pair].dim
        return WindowVectors(
            np.array([r.owner_id for r in rows], np.int64),
            np.array([r.track_id for r in rows], np.int64),
            np.array([r.start for r in rows], np.float64),
            np.array([r.end for r in rows], np.float64),
            np.array([bool(r.voiced) for r in rows], bool),
            _stack([r.vector for r in rows], dim))

    def windows(self, track_id: int) -> list[tuple[int, float, float, bool]]:
        """``(window_id, start, end, voiced)`` of a track, in time order."""
        with self._session() as s:
            return [tuple(r) for r in s.execute(
                select(Window.id, Window.start, Window.end, Window.voiced)
                .where(Window.track_id == track_id).order_by(Window.start))]

    def arrays(self, track_id: int, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The stored arrays of a track (e.g. ``{"pitch-contour": (n,) float32}``)."""
        return self.arrays_of([track_id], names).get(int(track_id), {})

    def arrays_of(self, track_ids: Iterable[int],
                  names: Iterable[str] | None = None) -> dict[int, dict[str, np.ndarray]]:
        """:meth:`arrays` of many tracks, 500 tracks a query: ``{track id: {name: array}}``
        (tracks without such arrays, or unknown, are absent)."""
        ids = [int(t) for t in track_ids]
        names = None if names is None else list(names)
        out: dict[int, dict[str, np.ndarray]] = {}
        with self._session() as s:
            for first in range(0, len(ids), 500):  # a bounded number of bound parameters
                q = select(TrackArray).where(TrackArray.track_id.in_(ids[first:first + 500]))
                if names is not None:
                    q = q.where(TrackArray.name.in_(names))
                for a in s.scalars(q):
                    out.setdefault(a.track_id, {})[a.name] = np.frombuffer(
                        a.data, dtype=np.dtype(a.dtype)).reshape(json.loads(a.shape)).copy()
        return out

    # ---- internals -------------------------------------------------------------------------

    def _path(self, pair: Pair) -> Path:
        space, version = pair
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", version)
        if safe != version:  # keep distinct versions in distinct files
            safe += "-" + hashlib.sha1(version.encode()).hexdigest()[:8]
        return self.index_dir / f"{space}@{safe}.faiss"

    def _resolve(self, space: str, model_version: str | None) -> Pair | None:
        if model_version is not None:
            pair = (space, model_version)
            return pair if pair in self._indexes else None
        version = self._latest.get(space)
        if version is not None and (space, version) in self._indexes:
            return (space, version)
        pairs = [p for p in tuple(self._indexes) if p[0] == space]  # tuple(): writers may add
        return pairs[-1] if pairs else None

    def _sql_ids(self, pair: Pair) -> np.ndarray:
        with self._session() as s:
            ids = s.scalars(select(Embedding.owner_id).where(
                Embedding.space == pair[0], Embedding.model_version == pair[1])).all()
        return np.array(ids, dtype=np.int64)

    def _sql_vectors(self, pair: Pair, owner_ids=None) -> tuple[np.ndarray, np.ndarray]:
        q = select(Embedding.owner_id, Embedding.dim, Embedding.vector).where(
            Embedding.space == pair[0], Embedding.model_version == pair[1]) \
            .order_by(Embedding.owner_id)
        if owner_ids is not None:
            q = q.where(Embedding.owner_id.in_([int(i) for i in owner_ids]))
        with self._session() as s:
            rows = s.execute(q).all()
        dim = rows[0].dim if rows else (self._indexes[pair].dim if pair in self._indexes else 0)
        return np.array([r.owner_id for r in rows], np.int64), _stack([r.vector for r in rows],
                                                                       dim)

    def _build(self, pair: Pair, dim: int) -> VectorIndex:
        ids, x = self._sql_vectors(pair)
        if len(ids) == 0:
            return VectorIndex.empty(dim, replace(self.config))
        return VectorIndex.build(ids, x, dim=dim, config=replace(self.config))

    def _save_state(self, pair: Pair, index: VectorIndex) -> None:
        checksum = index.checksum()
        self._known_state[pair] = (len(index), checksum)
        with self._session.begin() as s:
            s.execute(delete(IndexState).where(IndexState.space == pair[0],
                                               IndexState.model_version == pair[1]))
            s.add(IndexState(space=pair[0], model_version=pair[1], kind=index.kind,
                             count=len(index), checksum=checksum))

    def _flush(self) -> None:
        """Write the changed indexes (atomically), then mark their tracks ready."""
        for pair in sorted(self._dirty):
            index = self._indexes[pair]
            path = self._path(pair)
            if len(index) == 0:
                path.unlink(missing_ok=True)
                del self._indexes[pair]
                self._known_state.pop(pair, None)
                with self._session.begin() as s:
                    s.execute(delete(IndexState).where(IndexState.space == pair[0],
                                                       IndexState.model_version == pair[1]))
            else:
                index.save(path)
                self._save_state(pair, index)
            self._dirty.discard(pair)
        if self._to_ready:
            with self._session.begin() as s:
                s.execute(update(Track).where(Track.id.in_(sorted(self._to_ready)))
                          .values(status="ready"))
            self._to_ready.clear()

    def _apply(self, changes: dict[Pair, _Change]) -> None:
        for pair, ch in changes.items():
            index = self._indexes.get(pair)
            if index is None:
                if not ch.add_ids:
                    continue
                index = VectorIndex.empty(len(ch.add_vectors[0]), replace(self.config))
                self._indexes[pair] = index
            if ch.remove_ids:
                index.remove(ch.remove_ids)
            if ch.add_ids:
                index.add(ch.add_ids, np.stack(ch.add_vectors))
            self._dirty.add(pair)

    def _prepare(self, t: TrackInput) -> _Prepared:
        if not isinstance(t.content_hash, str) or not 0 < len(t.content_hash) <= 128:
            raise InputError("content_hash must be a non-empty string of at most 128 characters")
        if not isinstance(t.title, str) or not t.title.strip() or len(t.title) > 512:
            raise InputError("title must be a non-empty string of at most 512 characters")
        if t.artist is not None and (not isinstance(t.artist, str) or not t.artist.strip()
                                     or len(t.artist) > 255):
            raise InputError("artist must be None or a non-empty string of at most 255 chars")
        if not _finite(t.duration) or t.duration < 0:
            raise InputError(f"duration must be a finite number >= 0, got {t.duration!r}")
        versions: dict[str, str] = {}
        dims: dict[str, int] = {}

        def vector(space: str, v, owner: str, where: str) -> np.ndarray:
            try:
                sp = get_space(space)
            except UnknownSpaceError as e:
                raise InputError(f"{where}: {e}") from None
            if sp.owner != owner:
                raise InputError(f"{where}: space {space!r} holds {sp.owner} vectors, "
                                 f"not {owner} vectors")
            x = np.asarray(v, dtype=np.float32).reshape(-1)
            if x.size == 0 or not np.isfinite(x).all():
                raise InputError(f"{where}: vector for {space!r} is empty or not finite")
            norm = float(np.linalg.norm(x))
            if norm == 0:
                raise InputError(f"{where}: vector for {space!r} is all zeros")
            version = t.model_versions.get(space, DEFAULT_VERSION)
            if not isinstance(version, str) or not 0 < len(version) <= 128:
                raise InputError(f"model version for {space!r} must be a short string")
            versions[space] = version
            existing = self._indexes.get((space, version))
            dim = dims.setdefault(space, existing.dim if existing else x.size)
            if x.size != dim:
                raise InputError(f"{where}: {space!r} vectors have {dim} dimensions, "
                                 f"got {x.size}")
            return x / norm

        vectors = {sp: vector(sp, v, "track", "vectors") for sp, v in t.vectors.items()
                   if v is not None}
        windows = []
        for i, w in enumerate(t.windows):
            if not (_finite(w.start) and _finite(w.end)) or w.start < 0 or w.end <= w.start:
                raise InputError(f"windows[{i}]: needs 0 <= start < end, got "
                                 f"{w.start!r}..{w.end!r}")
            wv = {sp: vector(sp, v, "window", f"windows[{i}]") for sp, v in w.vectors.items()
                  if v is not None}
            windows.append((float(w.start), float(w.end), bool(w.voiced), wv))
        arrays = []
        for name, a in t.arrays.items():
            if not isinstance(name, str) or not 0 < len(name) <= 64:
                raise InputError("array names are non-empty strings of at most 64 characters")
            a = np.ascontiguousarray(a)
            if a.dtype.kind not in "biuf":
                raise InputError(f"array {name!r}: numeric arrays only, got {a.dtype}")
            a = a.astype(a.dtype.newbyteorder("<"))
            arrays.append((name, a.dtype.str, json.dumps(list(a.shape)), a.tobytes()))
        tags: dict[tuple[str, str], float] = {}
        for item in t.tags:
            if not isinstance(item, tuple | list) or len(item) not in (2, 3):
                raise InputError(f"a tag is (name, score) or (name, score, source), got {item!r}")
            name, score = item[0], item[1]
            source = item[2] if len(item) == 3 else "predicted"
            _check_tag(name, score, source)
            tags[(name, source)] = float(score)
        return _Prepared(vectors, windows, arrays, tags, versions)

    def _insert(self, s, t: TrackInput, p: _Prepared) -> tuple[int, dict[Pair, _Change]]:
        artist_id = self._artist_id(s, t.artist) if t.artist is not None else None
        track = Track(content_hash=t.content_hash, title=t.title, artist_id=artist_id,
                      duration=float(t.duration), source_uri=t.source_uri, status="pending")
        s.add(track)
        s.flush()
        changes: dict[Pair, _Change] = {}
        rows = []

        def add(space: str, owner_type: str, owner_id: int, x: np.ndarray) -> None:
            version = p.versions[space]
            rows.append({"owner_type": owner_type, "owner_id": owner_id, "space": space,
                         "model_version": version, "dim": int(x.size),
                         "vector": x.astype("<f4").tobytes(), "track_id": track.id})
            ch = changes.setdefault((space, version), _Change())
            ch.add_ids.append(owner_id)
            ch.add_vectors.append(x)

        for space, x in p.vectors.items():
            add(space, "track", track.id, x)
        if p.windows:
            window_ids = s.scalars(
                insert(Window).returning(Window.id, sort_by_parameter_order=True),
                [{"track_id": track.id, "start": a, "end": b, "voiced": v}
                 for a, b, v, _ in p.windows]).all()
            for wid, (_, _, _, wv) in zip(window_ids, p.windows, strict=True):
                for space, x in wv.items():
                    add(space, "window", wid, x)
        if rows:
            s.execute(insert(Embedding), rows)
        if p.arrays:
            s.execute(insert(TrackArray), [
                {"track_id": track.id, "name": n, "dtype": d, "shape": sh, "data": b}
                for n, d, sh, b in p.arrays])
        if p.tags:
            tag_ids = self._tag_ids(s, sorted({name for name, _ in p.tags}))
            s.execute(insert(TrackTag), [
                {"track_id": track.id, "tag_id": tag_ids[name], "source": source, "score": sc}
                for (name, source), sc in p.tags.items()])
        if artist_id is not None:
            _merge(changes, self._update_artist(s, artist_id))
        return track.id, changes

    def _update_artist(self, s, artist_id: int) -> dict[Pair, _Change]:
        """Recompute an artist's vectors in every artist space (the normalised mean of its
        track vectors), or delete the artist when it has no track left."""
        changes: dict[Pair, _Change] = {}
        old = s.execute(select(Embedding.space, Embedding.model_version)
                        .where(Embedding.owner_type == "artist",
                               Embedding.owner_id == artist_id)).all()
        for space, version in old:
            changes.setdefault((space, version), _Change()).remove_ids.append(artist_id)
        s.execute(delete(Embedding).where(Embedding.owner_type == "artist",
                                          Embedding.owner_id == artist_id))
        if not s.scalar(select(func.count(Track.id)).where(Track.artist_id == artist_id)):
            s.execute(delete(Artist).where(Artist.id == artist_id))
            return changes
        for sp in SPACES.values():
            if sp.owner != "artist" or sp.derived_from is None:
                continue
            rows = s.execute(
                select(Embedding.model_version, Embedding.dim, Embedding.vector)
                .join(Track, Track.id == Embedding.track_id)
                .where(Embedding.space == sp.derived_from, Embedding.owner_type == "track",
                       Track.artist_id == artist_id)).all()
            by_version: dict[str, list[bytes]] = {}
            for version, _, blob in rows:
                by_version.setdefault(version, []).append(blob)
            for version, blobs in by_version.items():
                mean = _stack(blobs, len(blobs[0]) // 4).mean(axis=0)
                norm = float(np.linalg.norm(mean))
                if norm == 0:
                    continue
                mean = (mean / norm).astype(np.float32)
                s.add(Embedding(owner_type="artist", owner_id=artist_id, space=sp.name,
                                model_version=version, dim=int(mean.size),
                                vector=mean.astype("<f4").tobytes(), artist_id=artist_id))
                ch = changes.setdefault((sp.name, version), _Change())
                ch.add_ids.append(artist_id)
                ch.add_vectors.append(mean)
        s.flush()
        return changes

    def _artist_id(self, s, name: str) -> int:
        return _named_id(s, Artist, name)

    def _tag_ids(self, s, names: list[str]) -> dict[str, int]:
        ids = dict(s.execute(select(Tag.name, Tag.id).where(Tag.name.in_(names))).all())
        for name in names:
            if name not in ids:
                tag = Tag(name=name)
                s.add(tag)
                s.flush()
                ids[name] = tag.id
        return ids

    def _allowed_ids(self, sp: Space, f: dict) -> np.ndarray:
        cond = track_condition(f)
        if sp.owner == "track":
            q = select(Track.id).where(cond)
        elif sp.owner == "window":
            q = select(Window.id).join(Track, Track.id == Window.track_id).where(cond)
        else:
            q = select(Track.artist_id).where(cond, Track.artist_id.is_not(None)).distinct()
        with self._session() as s:
            return np.array(s.scalars(q).all(), dtype=np.int64)

    def _payloads(self, sp: Space, ids: set[int]) -> dict[int, dict]:
        if not ids:
            return {}
        with self._session() as s:
            if sp.owner == "artist":
                return {r.id: {"artist_id": r.id, "name": r.name, "n_tracks": r.n}
                        for r in s.execute(self._artist_query(select(Artist.id)
                                                              .where(Artist.id.in_(ids))))}
            cols = (Track.id, Track.title, Track.duration, Track.source_uri, Track.artist_id,
                    Artist.name.label("artist"))
            if sp.owner == "window":
                rows = s.execute(select(Window.id.label("window_id"), Window.start, Window.end,
                                        Window.voiced, *cols)
                                 .join(Track, Track.id == Window.track_id)
                                 .outerjoin(Artist, Artist.id == Track.artist_id)
                                 .where(Window.id.in_(ids))).all()
            else:
                rows = s.execute(select(*cols).outerjoin(Artist, Artist.id == Track.artist_id)
                                 .where(Track.id.in_(ids))).all()
            tags = self._tags_of(s, {r.id for r in rows}, DEFAULT_MIN_SCORE)
        out = {}
        for r in rows:
            payload = {"track_id": r.id, "title": r.title, "artist": r.artist,
                       "artist_id": r.artist_id, "duration": r.duration,
                       "source_uri": r.source_uri,
                       "tags": {n: sc for n, sc, _ in tags.get(r.id, [])}}
            if sp.owner == "window":
                payload.update(window_id=r.window_id, start=r.start, end=r.end,
                               voiced=bool(r.voiced))
                out[r.window_id] = payload
            else:
                out[r.id] = payload
        return out

    def _tags_of(self, s, track_ids: set[int], min_score: float = 0.0):
        rows = s.execute(select(TrackTag.track_id, Tag.name, TrackTag.score, TrackTag.source)
                         .join(Tag, Tag.id == TrackTag.tag_id)
                         .where(TrackTag.track_id.in_(track_ids), TrackTag.score >= min_score)
                         .order_by(TrackTag.score.desc(), Tag.name)).all()
        out: dict[int, list[tuple[str, float, str]]] = {}
        for tid, name, score, source in rows:
            out.setdefault(tid, []).append((name, float(score), source))
        return out

    def _track_records(self, q) -> list[TrackRecord]:
        with self._session() as s:
            tracks = s.scalars(q).all()
            if not tracks:
                return []
            ids = {t.id for t in tracks}
            names = dict(s.execute(select(Artist.id, Artist.name).where(
                Artist.id.in_({t.artist_id for t in tracks if t.artist_id is not None}))).all())
            n_windows = dict(s.execute(select(Window.track_id, func.count(Window.id))
                                       .where(Window.track_id.in_(ids))
                                       .group_by(Window.track_id)).all())
            tags = self._tags_of(s, ids)
        return [TrackRecord(t.id, t.content_hash, t.title, names.get(t.artist_id), t.artist_id,
                            t.duration, t.source_uri, t.status, t.created_at,
                            tags.get(t.id, []), int(n_windows.get(t.id, 0))) for t in tracks]

    @staticmethod
    def _artist_query(ids_query):
        sub = ids_query.subquery()
        return select(Artist.id, Artist.name, func.count(Track.id).label("n")) \
            .outerjoin(Track, Track.artist_id == Artist.id) \
            .where(Artist.id.in_(select(sub.c.id))) \
            .group_by(Artist.id, Artist.name)

    def _artist_records(self, ids_query) -> list[ArtistRecord]:
        with self._session() as s:
            order = [r for r in s.scalars(ids_query)]
            rows = {r.id: ArtistRecord(r.id, r.name, int(r.n))
                    for r in s.execute(self._artist_query(ids_query))}
        return [rows[i] for i in order if i in rows]


def _named_id(s, model, name: str) -> int:
    """The id of the ``model`` row (User, Artist) called ``name``, created if needed."""
    row_id = s.scalar(select(model.id).where(model.name == name))
    if row_id is None:
        row = model(name=name)
        s.add(row)
        s.flush()
        row_id = row.id
    return row_id


def _merge(into: dict[Pair, _Change], other: dict[Pair, _Change]) -> None:
    for pair, ch in other.items():
        dst = into.setdefault(pair, _Change())
        dst.add_ids += ch.add_ids
        dst.add_vectors += ch.add_vectors
        dst.remove_ids += ch.remove_ids


def _stack(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim) \
        .astype(np.float32)


def _finite(x) -> bool:
    return isinstance(x, int | float | np.floating | np.integer) and not isinstance(x, bool) \
        and bool(np.isfinite(x))


def _check_page(limit, offset, max_limit: int) -> tuple[int, int]:
    if not isinstance(limit, int | np.integer) or isinstance(limit, bool) or \
            not 1 <= limit <= max_limit:
        raise InputError(f"limit must be an integer from 1 to {max_limit}, got {limit!r}")
    if not isinstance(offset, int | np.integer) or isinstance(offset, bool) or offset < 0:
        raise InputError(f"offset must be an integer >= 0, got {offset!r}")
    return int(limit), int(offset)


def _check_tag(name, score, source) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 128:
        raise InputError(f"tag names are non-empty strings of at most 128 characters: {name!r}")
    if not _finite(score):
        raise InputError(f"tag {name!r}: score must be a finite number, got {score!r}")
    if source not in TAG_SOURCES:
        raise InputError(f"tag {name!r}: source must be one of {TAG_SOURCES}, got {source!r}")
