"""``recsys bench index``: recall@10 against exact search, latency, throughput, build time and
size of the exact, HNSW and IVF vector indexes, on random vectors and on a catalog's own."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from recsys.bench.result import BenchResult

HNSW_EF_SWEEP = (32, 64, 128, 256, 512)
IVF_NPROBE_SWEEP = (8, 16, 32, 64, 128, 256)


def random_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """``(n, dim)`` float32, uniform on the unit sphere."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered_unit_vectors(n: int, dim: int, seed: int, clusters: int = 1000,
                           spread: float = 0.5) -> np.ndarray:
    """``(n, dim)`` float32 unit vectors around ``clusters`` random centres: neighbourhoods
    as real embeddings have them (uniform random vectors have none, the hardest case)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    x = centres[rng.integers(0, clusters, n)]
    x += spread * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k ids found, ``found`` and ``truth`` both ``(m, k)``."""
    hits = [len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, (t >= 0).sum())
            for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def _latencies_ms(index, queries: np.ndarray, k: int) -> np.ndarray:
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        index.search(q[None], k)
        out[i] = (time.perf_counter() - t) * 1000
    return out


def measure(ids: np.ndarray, x: np.ndarray, queries: np.ndarray, k: int = 10,
            kinds=("exact", "hnsw", "ivf"), threads: int = 2, latency_queries: int = 1000,
            progress: Callable[[str], None] = lambda msg: None) -> tuple[dict, dict]:
    """Build each kind on ``(ids, x)`` and measure it with ``queries``; returns
    ``(systems, sweeps)``: metrics per kind, and recall/p99 per search-effort setting."""
    import faiss

    from index.vectors import IndexConfig, VectorIndex

    faiss.omp_set_num_threads(threads)
    systems: dict[str, dict[str, float]] = {}
    sweeps: dict[str, list[dict[str, float]]] = {}
    truth = None
    for kind in ["exact", *[k_ for k_ in kinds if k_ != "exact"]]:
        progress(f"building {kind} on {len(x)} vectors")
        config = IndexConfig(kind=kind)
        t0 = time.perf_counter()
        index = VectorIndex.build(ids, x, config=config)
        build_s = time.perf_counter() - t0
        mem_mb = faiss.serialize_index(index._index).nbytes / 2**20
        progress(f"searching {kind}")
        t0 = time.perf_counter()
        _, found = index.search(queries, k)
        qps = len(queries) / (time.perf_counter() - t0)
        if kind == "exact":
            truth = found
        faiss.omp_set_num_threads(1)  # one query at a time runs on one core anyway
        n_lat = min(latency_queries, len(queries)) if kind != "exact" else min(200, len(queries))
        lat = _latencies_ms(index, queries[:n_lat], k)
        faiss.omp_set_num_threads(threads)
        if kind in kinds:
            systems[kind] = {"recall_at_10": recall_at_k(found, truth), "qps": qps,
                             "p50_ms": float(np.percentile(lat, 50)),
                             "p99_ms": float(np.percentile(lat, 99)),
                             "build_s": build_s, "mem_mb": mem_mb}
        if kind in ("hnsw", "ivf"):
            sweeps[kind] = _sweep(index, kind, queries, truth, k, min(latency_queries, 500))
        del index
    return systems, sweeps


def _sweep(index, kind: str, queries, truth, k: int, n_lat: int) -> list[dict[str, float]]:
    import faiss

    rows = []
    values = HNSW_EF_SWEEP if kind == "hnsw" else IVF_NPROBE_SWEEP
    attr = "hnsw_ef_search" if kind == "hnsw" else "ivf_nprobe"
    default = getattr(index.config, attr)
    for v in values:
        setattr(index.config, attr, v)
        _, found = index.search(queries, k)
        faiss.omp_set_num_threads(1)
        lat = _latencies_ms(index, queries[:n_lat], k)
        faiss.omp_set_num_threads(2)
        rows.append({attr: v, "recall_at_10": recall_at_k(found, truth),
                     "p50_ms": float(np.percentile(lat, 50)),
                     "p99_ms": float(np.percentile(lat, 99))})
    setattr(index.config, attr, default)
    return rows


def run(n: int = 1_000_000, dim: int = 128, n_queries: int = 1000, seed: int = 0,
        catalog_spaces: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        kinds=("exact", "hnsw", "ivf"), threads: int = 2, data: str = "random",
        progress: Callable[[str], None] = lambda msg: None) -> BenchResult:
    """The index benchmark. ``data``: "random" (uniform on the sphere) or "clustered".
    ``catalog_spaces``: ``{space: (ids, vectors)}`` of a real catalog, measured as systems
    ``"<kind>/<space>"`` with queries drawn from the space itself."""
    if data not in ("random", "clustered"):
        raise ValueError(f"data is 'random' or 'clustered', not {data!r}")
    make = random_unit_vectors if data == "random" else clustered_unit_vectors
    systems: dict[str, dict[str, float]] = {}
    notes: dict[str, object] = {"vectors": f"{n} {data} unit vectors, {dim}-d, seed {seed}",
                                "queries": f"{n_queries} other {data} unit vectors, k=10",
                                "qps": f"batch of all queries, {threads} threads",
                                "latency": "single queries, one thread; exact over 200 queries",
                                "mem_mb": "size of the serialised FAISS index"}
    if n > 0:
        x = make(n + n_queries, dim, seed)
        queries, x = x[:n_queries], x[n_queries:]
        s, sweeps = measure(np.arange(n, dtype=np.int64), x, queries, kinds=kinds,
                            threads=threads, progress=progress)
        systems.update(s)
        notes["sweeps"] = sweeps
        del x
    for space, (ids, vectors) in (catalog_spaces or {}).items():
        if len(ids) < 20:
            continue
        rng = np.random.default_rng(seed)
        queries = vectors[rng.choice(len(ids), min(n_queries, len(ids)), replace=False)]
        s, sweeps = measure(np.asarray(ids), np.asarray(vectors, np.float32), queries,
                            kinds=kinds, threads=threads, progress=progress)
        systems.update({f"{kind}/{space}": m for kind, m in s.items()})
        notes[f"sweeps/{space}"] = sweeps
        notes[f"n/{space}"] = int(len(ids))
    return BenchResult(bench="index", split=data if not catalog_spaces else f"{data}+catalog",
                       n_items=int(n), systems=systems, notes=notes)
