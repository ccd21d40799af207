"""VectorIndex: exact, HNSW and IVF kinds, deletes, filtered search, files."""

import numpy as np
import pytest

from index.vectors import IndexConfig, VectorIndex, VectorIndexError, ids_checksum


def unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n, d, seed=0):
    """Vectors around 50 centres: neighbours exist, as in real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, d))
    x = centres[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top(x, ids, q, k):
    scores = q @ x.T
    return ids[np.argsort(-scores, axis=1)[:, :k]]


def test_exact_add_search_remove():
    x = unit(200, 16)
    ids = np.arange(1000, 1200)
    index = VectorIndex.build(ids, x)
    assert index.kind == "exact" and len(index) == 200
    scores, found = index.search(x[:5], 3)
    assert (found[:, 0] == ids[:5]).all()
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert index.remove([1000, 1001, 99999]) == 2
    _, found = index.search(x[:2], 3)
    assert 1000 not in found and 1001 not in found
    assert ids_checksum(index.ids()) == ids_checksum(ids[2:])


def test_cosine_ignores_length_and_pads_missing():
    index = VectorIndex.build([7, 8], np.array([[3.0, 0.0], [0.0, 0.5]]))
    scores, found = index.search([[10.0, 0.0]], 4)
    assert found[0].tolist() == [7, 8, -1, -1]
    assert scores[0, 0] == pytest.approx(1.0) and np.isneginf(scores[0, 2])


def test_add_replaces_existing_id():
    index = VectorIndex.build([1, 2], np.eye(2))
    index.add([1], [[0.0, 1.0]])
    assert len(index) == 2
    _, found = index.search([[0.0, 1.0]], 2)
    assert set(found[0]) == {1, 2}
    _, found = index.search([[1.0, 0.0]], 1)
    assert found[0, 0] != 1  # the old vector of id 1 is gone


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_filtered_search_only_returns_allowed(kind):
    x = clustered(3000, 16)
    ids = np.arange(3000) * 3
    config = IndexConfig(kind=kind, brute_force_max=100, ivf_nprobe=8)
    index = VectorIndex.build(ids, x, config=config)
    for allowed in (ids[::50], ids[::2]):  # brute-force path and selector path
        _, found = index.search(x[:10], 10, allowed_ids=allowed)
        got = found[found >= 0]
        assert len(got) > 0 and np.isin(got, allowed).all()
    _, found = index.search(x[:3], 5, allowed_ids=[])
    assert (found == -1).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_with_deletes(kind):
    """A few thousand vectors: recall stays high and deleted ids never come back, across
    tombstone compaction (HNSW) and a save/load."""
    x = clustered(3000, 32, seed=1)
    ids = np.arange(5, 3005, dtype=np.int64)
    config = IndexConfig(kind=kind, compact_fraction=0.3, ivf_nprobe=16)
    index = VectorIndex.build(ids, x, config=config)
    assert index.kind == kind
    q = clustered(100, 32, seed=2)
    _, found = index.search(q, 10)
    truth = exact_top(x, ids, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9

    gone = ids[::4]  # 25%: below the compaction threshold
    assert index.remove(gone) == len(gone)
    assert len(index) == 3000 - len(gone)
    _, found = index.search(x[::4][:50], 10)
    assert not np.isin(found, gone).any()
    assert ids_checksum(index.ids()) == ids_checksum(np.setdiff1d(ids, gone))

    more = ids[1::4]  # now 50%: HNSW compacts
    index.remove(more)
    if kind == "hnsw":
        assert not index._tombstones
    index.add(gone[:10], x[::4][:10])  # re-added ids come back
    _, found = index.search(x[::4][:10], 1)
    assert (found[:, 0] == gone[:10]).all()
    assert not np.isin(found, more).any()


@pytest.mark.parametrize("approx", ["hnsw", "ivf"])
def test_auto_switches_to_approximate_above_exact_max(approx):
    config = IndexConfig(exact_max=100, approx_kind=approx, ivf_nprobe=64)
    index = VectorIndex.empty(8, config)
    x = clustered(2000, 8)
    index.add(np.arange(90), x[:90])
    assert index.kind == "exact"
    index.add(np.arange(90, 150), x[90:150])
    assert index.kind == approx and len(index) == 150
    if approx == "ivf":  # grows 4x past its training size: retrained with more lists
        nlist = index._index.nlist
        index.add(np.arange(150, 2000), x[150:])
        assert index._index.nlist > nlist and len(index) == 2000
    _, found = index.search(x[:20], 1)
    assert (found[:, 0] == np.arange(20)).mean() >= 0.95


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_save_load_roundtrip(tmp_path, kind):
    x = clustered(500, 8)
    index = VectorIndex.build(np.arange(500), x, config=IndexConfig(kind=kind))
    index.remove([0, 1, 2])
    path = tmp_path / "sub" / "space.faiss"
    index.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["space.faiss"]  # no temp file left
    loaded = VectorIndex.load(path)
    assert loaded.kind == kind and len(loaded) == 497
    assert loaded.checksum() == index.checksum()
    assert (loaded.search(x[10:20], 3)[1] == index.search(x[10:20], 3)[1]).all()


def test_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.faiss"
    VectorIndex.build([1, 2], np.eye(2)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VectorIndexError, match="cannot read"):
        VectorIndex.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(VectorIndexError):
        VectorIndex.load(path)


def test_bad_vectors_are_clear_errors():
    index = VectorIndex.build([1, 2], np.eye(2))
    with pytest.raises(VectorIndexError, match="shape"):
        index.search(np.ones((1, 3)), 1)
    with pytest.raises(VectorIndexError, match="NaN"):
        index.add([3], [[np.nan, 1.0]])
    with pytest.raises(VectorIndexError, match="duplicate"):
        index.add([3, 3], np.eye(2))
    with pytest.raises(VectorIndexError):
        IndexConfig(kind="annoy")
