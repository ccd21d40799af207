"""FAISS vector indexes keyed by SQL primary keys; cosine similarity by normalised inner product.

Three kinds, chosen by size (``IndexConfig.kind="auto"``):

- ``exact``: ``IndexIDMap2(IndexFlatIP)``, the default up to ``exact_max`` vectors.
- ``ivf``:   ``IndexIVFFlat`` with its own ids and a hashtable direct map, which removes
  vectors natively; the default above ``exact_max`` (``approx_kind``), chosen by
  ``recsys bench index``. Trained when it is built; retrained once it has grown 4x.
- ``hnsw``:  ``IndexIDMap2(IndexHNSWFlat)``. HNSW cannot remove vectors, so a removed (or
  replaced) vector becomes a tombstone: its position is excluded from every search with an
  ``IDSelector`` and the graph is rebuilt from the live vectors once tombstones exceed
  ``compact_fraction`` of it.

Every method takes ``(n, dim)`` float32 arrays and int64 ids. A ``VectorIndex`` is safe to
search from many threads while one thread adds or removes: searches share a read lock,
mutations take the write lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

KINDS = ("exact", "hnsw", "ivf")
_MAGIC = b"RSVIDX01"


class VectorIndexError(ValueError):
    """Bad vectors or ids given to a vector index, or an unreadable index file."""


@dataclass
class IndexConfig:
    """How a space's index is built and searched."""

    kind: str = "auto"  # "auto" | "exact" | "hnsw" | "ivf"
    exact_max: int = 50_000  # "auto" searches exactly up to this many vectors
    # What "auto" uses above exact_max. IVF won `recsys bench index` on both random and
    # clustered vectors (higher recall at equal latency, 9x faster to build, smaller).
    approx_kind: str = "ivf"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 128
    ivf_nlist: int = 0  # 0: about 4 * sqrt(n) lists
    ivf_nprobe: int = 32
    # A filtered search allowing at most this many vectors is answered exactly, by brute
    # force over just those vectors: graph search with a selective filter loses recall.
    brute_force_max: int = 20_000
    compact_fraction: float = 0.2  # HNSW is rebuilt once this share of it is tombstones

    def __post_init__(self):
        if self.approx_kind not in ("hnsw", "ivf"):
            raise VectorIndexError(f"approx_kind is 'hnsw' or 'ivf', not {self.approx_kind!r}")
        if self.kind not in ("auto", *KINDS):
            raise VectorIndexError(
                f"unknown index kind {self.kind!r}; use auto, {', '.join(KINDS)}")


def ids_checksum(ids: np.ndarray) -> str:
    """Order-independent checksum of a set of int64 ids (the start-up check compares them)."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    return hashlib.sha256(ids.tobytes()).hexdigest()[:32]


class _RWLock:
    """Many readers or one writer."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def read(self):
        return _Guard(self._acquire_read, self._release_read)

    def write(self):
        return _Guard(self._acquire_write, self._release_write)

    def _acquire_read(self):
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1

    def _release_read(self):
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def _acquire_write(self):
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True

    def _release_write(self):
        with self._cond:
            self._writer = False
            self._cond.notify_all()


@dataclass
class _Guard:
    enter: object
    exit: object

    def __enter__(self):
        self.enter()

    def __exit__(self, *exc):
        self.exit()


def _as_vectors(vectors, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise VectorIndexError(f"expected vectors of shape (n, {dim}), got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise VectorIndexError("vectors contain NaN or infinity")
    x = x.copy()
    faiss.normalize_L2(x)
    return x


def _as_ids(ids, n: int | None = None) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if n is not None and len(a) != n:
        raise VectorIndexError(f"{len(a)} ids for {n} vectors")
    if len(np.unique(a)) != len(a):
        raise VectorIndexError("duplicate ids")
    if (a < 0).any():
        raise VectorIndexError("ids must be >= 0")
    return a


@dataclass
class VectorIndex:
    """One space's vectors. Build with ``VectorIndex.build`` or ``VectorIndex.empty``.

    Shapes: vectors ``(n, dim)`` float32 (normalised on the way in), ids ``(n,)`` int64.
    """

    dim: int
    kind: str
    config: IndexConfig
    _index: faiss.Index
    _tombstones: set[int] = field(default_factory=set)  # HNSW positions no longer alive
    _lock: _RWLock = field(default_factory=_RWLock)
    _gpu: object = None

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def empty(cls, dim: int, config: IndexConfig | None = None, kind: str | None = None):
        config = config or IndexConfig()
        kind = kind or (config.kind if config.kind != "auto" else "exact")
        if kind == "ivf":
            raise VectorIndexError("an IVF index needs vectors to train on; use build()")
        return cls(dim, kind, config, _new_index(kind, dim, config))

    @classmethod
    def build(cls, ids, vectors, dim: int | None = None, config: IndexConfig | None = None,
              kind: str | None = None) -> VectorIndex:
        """A new index holding ``vectors`` under ``ids``; kind from config and size."""
        config = config or IndexConfig()
        x = np.asarray(vectors, dtype=np.float32)
        dim = dim or (x.shape[1] if x.ndim == 2 else 0)
        if dim <= 0:
            raise VectorIndexError("cannot infer the dimension of an empty index; pass dim")
        x = _as_vectors(x.reshape(-1, dim), dim)
        ids = _as_ids(ids, len(x))
        kind = kind or _kind_for(len(x), config)
        index = _new_index(kind, dim, config, train=x)
        index.add_with_ids(x, ids)
        return cls(dim, kind, config, index)

    # ---- reading ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._index.ntotal - len(self._tombstones)

    def ids(self) -> np.ndarray:
        """The ids held, in no particular order."""
        with self._lock.read():
            return self._ids()

    def checksum(self) -> str:
        return ids_checksum(self.ids())

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """All ``(ids (n,), vectors (n, dim))`` held (used to rebuild as another kind)."""
        with self._lock.read():
            return self._all()

    def search(self, queries, k: int, allowed_ids=None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by cosine for each query: ``(scores (m, k), ids (m, k))``.

        Missing results are padded with id -1 and score -inf. ``allowed_ids`` restricts the
        search to those ids (a filter resolved beforehand).
        """
        q = _as_vectors(queries, self.dim)
        k = int(k)
        if k <= 0:
            raise VectorIndexError("k must be positive")
        with self._lock.read():
            if self._index.ntotal == 0:
                return _pad(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0)), k)
            if allowed_ids is not None:
                allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
                return self._search_allowed(q, k, allowed)
            return self._search_all(q, k)

    # ---- mutation -----------------------------------------------------------------------

    def add(self, ids, vectors) -> None:
        """Add vectors; an id already present is replaced."""
        x = _as_vectors(vectors, self.dim)
        ids = _as_ids(ids, len(x))
        if len(ids) == 0:
            return
        with self._lock.write():
            self._remove(ids)
            self._index.add_with_ids(x, ids)
            self._gpu = None
            n = self._index.ntotal
            if self.config.kind == "auto" and self.kind == "exact" and n > self.config.exact_max:
                self._rebuild_as(_kind_for(n, self.config))
            elif self.kind == "ivf" and self._index.nlist < _ivf_nlist(n, self.config) / 2:
                self._rebuild_as("ivf")  # grew 4x since training: retrain the coarse quantizer

    def remove(self, ids) -> int:
        """Remove ids (absent ones are ignored); returns how many were removed."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(ids) == 0:
            return 0
        with self._lock.write():
            self._gpu = None
            return self._remove(ids)

    # ---- files --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a temporary file in the same folder, then ``os.replace``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock.read():
            blob = faiss.serialize_index(self._index)
            tomb = np.array(sorted(self._tombstones), dtype=np.int64)
            header = json.dumps({"dim": self.dim, "kind": self.kind,
                                 "config": asdict(self.config),
                                 "faiss_bytes": int(blob.nbytes),
                                 "tombstones": int(len(tomb))}).encode()
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + struct.pack("<Q", len(header)) + header)
                f.write(blob.tobytes())
                f.write(tomb.tobytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike, config: IndexConfig | None = None) -> VectorIndex:
        """Read an index written by ``save``; raises ``VectorIndexError`` if it is damaged."""
        path = Path(path)
        try:
            data = path.read_bytes()
            if data[:8] != _MAGIC:
                raise ValueError("not a recsys vector index")
            (hlen,) = struct.unpack("<Q", data[8:16])
            header = json.loads(data[16:16 + hlen])
            start = 16 + hlen
            end = start + header["faiss_bytes"]
            blob = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
            index = faiss.deserialize_index(blob.copy())
            tomb = np.frombuffer(data, dtype=np.int64, count=header["tombstones"], offset=end)
            if len(data) != end + 8 * header["tombstones"]:
                raise ValueError("truncated file")
        except (OSError, ValueError, KeyError, RuntimeError, struct.error) as e:
            raise VectorIndexError(f"cannot read vector index {path}: {e}") from e
        config = config or IndexConfig(**header["config"])
        return cls(header["dim"], header["kind"], config, index, set(tomb.tolist()))

    # ---- internals (callers hold the lock) ----------------------------------------------

    def _labels(self) -> np.ndarray:
        """Position -> id, for the IDMap2 kinds."""
        return faiss.vector_to_array(self._index.id_map)

    def _alive_positions(self) -> np.ndarray:
        alive = np.ones(self._index.ntotal, dtype=bool)
        if self._tombstones:
            alive[np.fromiter(self._tombstones, dtype=np.int64)] = False
        return alive

    def _ids(self) -> np.ndarray:
        if self.kind == "exact":
            return self._labels()
        if self.kind == "hnsw":
            return self._labels()[self._alive_positions()]
        return _ivf_contents(self._index, self.dim, with_vectors=False)[0]

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "ivf":
            return _ivf_contents(self._index, self.dim, with_vectors=True)
        n = self._index.ntotal
        inner = self._index.index
        x = inner.reconstruct_n(0, n) if n else np.zeros((0, self.dim), np.float32)
        labels = self._labels()
        if self.kind == "hnsw":
            alive = self._alive_positions()
            return labels[alive], x[alive]
        return labels, x

    def _remove(self, ids: np.ndarray) -> int:
        if self._index.ntotal == 0:
            return 0
        if self.kind == "exact":
            return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        if self.kind == "ivf":
            present = ids[np.isin(ids, self._ids())]
            if len(present) == 0:
                return 0
            return int(self._index.remove_ids(faiss.IDSelectorArray(present)))
        positions = np.nonzero(np.isin(self._labels(), ids) & self._alive_positions())[0]
        self._tombstones.update(positions.tolist())
        if len(self._tombstones) > self.config.compact_fraction * self._index.ntotal:
            self._rebuild_as("hnsw")
        return len(positions)

    def _rebuild_as(self, kind: str) -> None:
        ids, x = self._all()
        index = _new_index(kind, self.dim, self.config, train=x)
        if len(x):
            index.add_with_ids(x, ids)
        self._index, self.kind, self._tombstones, self._gpu = index, kind, set(), None

    def _search_all(self, q: np.ndarray, k: int):
        if self.kind == "exact":
            return _pad(*self._exact_index().search(q, min(k, self._index.ntotal)), k)
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.config.ivf_nprobe)
            return _pad(*self._index.search(q, min(k, self._index.ntotal), params=params), k)
        return self._search_hnsw(q, k, None)

    def _search_allowed(self, q: np.ndarray, k: int, allowed: np.ndarray):
        if len(allowed) == 0:
            return _pad(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0)), k)
        if self.kind == "exact":
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
            return _pad(*self._index.search(q, min(k, self._index.ntotal), params=params), k)
        if self.kind == "ivf":
            if len(allowed) <= self.config.brute_force_max:
                present = allowed[np.isin(allowed, self._ids())]
                x = np.stack([self._index.reconstruct(int(i)) for i in present]) if len(
                    present) else np.zeros((0, self.dim), np.float32)
                return _brute_force(q, k, present, x)
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(allowed),
                                               nprobe=self.config.ivf_nprobe * 4)
            return _pad(*self._index.search(q, min(k, self._index.ntotal), params=params), k)
        labels = self._labels()
        positions = np.nonzero(np.isin(labels, allowed) & self._alive_positions())[0]
        if len(positions) <= self.config.brute_force_max:
            x = np.stack([self._index.index.reconstruct(int(p)) for p in positions]) if len(
                positions) else np.zeros((0, self.dim), np.float32)
            return _brute_force(q, k, labels[positions], x)
        return self._search_hnsw(q, k, positions)

    def _search_hnsw(self, q: np.ndarray, k: int, positions: np.ndarray | None):
        """Search the graph by position, skipping tombstones, then map positions to ids."""
        if positions is not None:
            sel = faiss.IDSelectorBatch(positions.astype(np.int64))
        elif self._tombstones:
            dead = np.fromiter(self._tombstones, dtype=np.int64)
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))
        else:
            sel = None
        ef = max(self.config.hnsw_ef_search, k)
        params = faiss.SearchParametersHNSW(efSearch=ef, sel=sel) if sel is not None else \
            faiss.SearchParametersHNSW(efSearch=ef)
        scores, pos = self._index.index.search(q, min(k, self._index.ntotal), params=params)
        labels = self._labels()
        ids = np.where(pos >= 0, labels[np.maximum(pos, 0)], -1)
        return _pad(scores, ids, k)

    def _exact_index(self):
        """The exact index, on the GPU when FAISS sees one (unfiltered searches only)."""
        if faiss.get_num_gpus() <= 0 or not hasattr(faiss, "index_cpu_to_all_gpus"):
            return self._index
        if self._gpu is None:
            try:
                self._gpu = faiss.index_cpu_to_all_gpus(self._index)
            except RuntimeError:  # a build without GPU support for this index: stay on CPU
                self._gpu = self._index
        return self._gpu


def _kind_for(n: int, config: IndexConfig) -> str:
    if config.kind != "auto":
        return config.kind
    return "exact" if n <= config.exact_max else config.approx_kind


def _ivf_nlist(n: int, config: IndexConfig) -> int:
    nlist = config.ivf_nlist or max(1, int(4 * np.sqrt(max(n, 1))))
    return max(1, min(nlist, n // 39 if n >= 39 else 1))  # FAISS wants >= 39 points a list


def _new_index(kind: str, dim: int, config: IndexConfig, train: np.ndarray | None = None):
    if kind == "exact":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = config.hnsw_ef_construction
        hnsw.hnsw.efSearch = config.hnsw_ef_search
        return faiss.IndexIDMap2(hnsw)
    if kind == "ivf":
        n = 0 if train is None else len(train)
        nlist = _ivf_nlist(n, config)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        if n == 0:
            raise VectorIndexError("an IVF index needs vectors to train on")
        rng = np.random.default_rng(0)
        sample = train if n <= 64 * nlist else train[rng.choice(n, 64 * nlist, replace=False)]
        ivf.cp.min_points_per_centroid = 1  # small spaces: no warning, just fewer points
        ivf.train(sample)
        ivf.nprobe = config.ivf_nprobe
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return ivf
    raise VectorIndexError(f"unknown index kind {kind!r}")


def _ivf_contents(ivf, dim: int, with_vectors: bool):
    inv = ivf.invlists
    ids, xs = [], []
    for lst in range(ivf.nlist):
        size = inv.list_size(lst)
        if size == 0:
            continue
        ids.append(faiss.rev_swig_ptr(inv.get_ids(lst), size).copy())
        if with_vectors:
            codes = faiss.rev_swig_ptr(inv.get_codes(lst), size * dim * 4).copy()
            xs.append(codes.view(np.float32).reshape(size, dim))
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    if not with_vectors:
        return all_ids, None
    return all_ids, (np.concatenate(xs) if xs else np.zeros((0, dim), np.float32))


def _brute_force(q: np.ndarray, k: int, ids: np.ndarray, x: np.ndarray):
    if len(ids) == 0:
        return _pad(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0)), k)
    scores = q @ x.T
    kk = min(k, len(ids))
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    order = np.take_along_axis(scores, top, 1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, 1)
    return _pad(np.take_along_axis(scores, top, 1), ids[top], k)


def _pad(scores: np.ndarray, ids: np.ndarray, k: int):
    scores = np.asarray(scores, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    m = scores.shape[0]
    out_s = np.full((m, k), -np.inf, dtype=np.float32)
    out_i = np.full((m, k), -1, dtype=np.int64)
    n = min(k, scores.shape[1])
    out_s[:, :n], out_i[:, :n] = scores[:, :n], ids[:, :n]
    out_s[out_i < 0] = -np.inf
    return out_s, out_i
