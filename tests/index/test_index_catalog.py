"""The Catalog on SQLite and PostgreSQL: idempotent add, delete, artist vectors, filtered
search, crash between the SQL commit and the index write, start-up repair, threads."""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select

from index.catalog import Catalog, InputError, TrackInput, WindowInput
from index.filters import FilterError
from index.models import Embedding, Track, TrackArray, TrackTag, Window
from index.spaces import UnknownSpaceError
from index.vectors import IndexConfig, VectorIndex


def count(url, model, where=None):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            q = select(func.count()).select_from(model)
            return conn.scalar(q.where(where) if where is not None else q)
    finally:
        engine.dispose()


def index_ids(catalog, space):
    (pair,) = [p for p in catalog._indexes if p[0] == space]
    return set(catalog._indexes[pair].ids().tolist())


def test_add_is_idempotent_and_stores_everything(catalog, make_track, db_url):
    track = make_track(1, n_windows=4, tags=[("piano", 0.9, "predicted"), ("piano", 1.0, "user"),
                                              ("drums", 0.2)])
    tid, created = catalog.add_track(track)
    assert created
    assert catalog.add_track(make_track(1, artist="someone else")) == (tid, False)
    assert count(db_url, Track) == 1 and count(db_url, Window) == 4
    rec = catalog.get_track(tid)
    assert rec.status == "ready" and rec.artist == "alice" and rec.n_windows == 4
    assert ("piano", 1.0, "user") in rec.tags and ("drums", 0.2, "predicted") in rec.tags
    assert np.array_equal(catalog.arrays(tid)["pitch-contour"], track.arrays["pitch-contour"])
    ids, x = catalog.track_vectors("timbre-track")
    assert ids.tolist() == [tid]
    v = track.vectors["timbre-track"]
    assert np.allclose(x[0], v / np.linalg.norm(v), atol=1e-6)
    wv = catalog.window_vectors("melody-window", [tid])
    assert wv.starts.tolist() == [0.0, 1.5, 3.0, 4.5] and wv.vectors.shape == (4, 6)
    assert {s.space for s in catalog.spaces()} == {"timbre-track", "timbre-artist",
                                                   "melody-window", "tag-joint"}
    assert catalog.tags()[0] == ("piano", 1)


def test_search_track_window_and_artist_spaces(catalog, make_track):
    ids = [catalog.add_track(make_track(i, artist=f"singer{i % 2}"))[0] for i in range(6)]
    t3 = make_track(3)
    hits = catalog.search("timbre-track", t3.vectors["timbre-track"], limit=3)[0]
    assert hits[0].id == ids[3] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].payload["title"] == "song 3" and hits[0].payload["artist"] == "singer1"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    w = t3.windows[1]
    hit = catalog.search("melody-window", w.vectors["melody-window"], limit=1)[0][0]
    assert hit.payload["track_id"] == ids[3]
    assert (hit.payload["start"], hit.payload["end"]) == (1.5, 4.5)

    artist = catalog.find_artist("singer1")
    hit = catalog.search("timbre-artist", t3.vectors["timbre-track"], limit=1)[0][0]
    assert hit.id == artist.id and hit.payload == {"artist_id": artist.id, "name": "singer1",
                                                   "n_tracks": 3}
    page = catalog.search("tag-joint", np.ones(5), limit=2, offset=2)[0]
    full = catalog.search("tag-joint", np.ones(5), limit=4)[0]
    assert [h.id for h in page] == [h.id for h in full[2:4]]
    assert catalog.search("tag-joint", np.ones(5), score_threshold=1.01)[0] == []


def test_window_hits_agree_with_search_without_payloads(catalog, make_track):
    ids = [catalog.add_track(make_track(i, tags=[("rock" if i < 3 else "jazz", 0.9)]))[0]
           for i in range(6)]
    queries = np.stack([make_track(3).windows[1].vectors["melody-window"],
                        make_track(5).windows[0].vectors["melody-window"]])
    hits = catalog.window_hits("melody-window", queries, limit=4)
    full = catalog.search("melody-window", queries, limit=4)
    assert hits.query.tolist() == [0] * 4 + [1] * 4
    assert hits.window_id.tolist() == [h.id for row in full for h in row]
    assert hits.track_id.tolist() == [h.payload["track_id"] for row in full for h in row]
    assert hits.start.tolist() == [h.payload["start"] for row in full for h in row]
    np.testing.assert_allclose(hits.score, [h.score for row in full for h in row], rtol=1e-6)
    assert (hits.track_id[0], hits.start[0]) == (ids[3], 1.5)
    jazz = catalog.window_hits("melody-window", queries, limit=4,
                               filter={"must": [{"key": "tag", "match": {"value": "jazz"}}]})
    assert set(jazz.track_id.tolist()) <= set(ids[3:]) and len(jazz.query) == 8
    with pytest.raises(UnknownSpaceError):
        catalog.window_hits("timbre-track", queries[0])
    with pytest.raises(InputError):
        catalog.window_hits("melody-window", np.ones(3))
    with pytest.raises(FilterError):
        catalog.window_hits("melody-window", queries, filter={"nope": 1})


def test_tracks_stamp_changes_with_added_and_deleted_tracks(catalog, make_track):
    import time

    empty = catalog.tracks_stamp()
    assert empty[:2] == (0, 0)
    first, _ = catalog.add_track(make_track(1))
    second, _ = catalog.add_track(make_track(2))
    both = catalog.tracks_stamp()
    assert both[:2] == (2, second) != empty[:2]
    catalog.delete_track(first)
    assert catalog.tracks_stamp()[:2] == (1, second)
    catalog.delete_track(second)
    time.sleep(1.1)  # SQLite may give the newcomer the deleted newest track's id
    catalog.add_track(make_track(3))
    catalog.add_track(make_track(4))
    assert catalog.tracks_stamp() != both


def test_track_ids_follow_the_filter(catalog, make_track):
    ids = [catalog.add_track(make_track(i, tags=[("rock" if i < 2 else "jazz", 0.9)]))[0]
           for i in range(4)]
    assert catalog.track_ids() == sorted(ids)
    jazz = {"must": [{"key": "tag", "match": {"value": "jazz"}}]}
    assert catalog.track_ids(jazz) == ids[2:] == [t.id for t in catalog.list_tracks(filter=jazz)]
    with pytest.raises(FilterError):
        catalog.track_ids({"nope": 1})


def test_arrays_of_many_tracks_in_one_read(catalog, make_track):
    ids = [catalog.add_track(make_track(i))[0] for i in range(3)]
    got = catalog.arrays_of([ids[2], ids[0], 999_999], ["pitch-contour"])
    assert set(got) == {ids[0], ids[2]}
    for track_id in (ids[0], ids[2]):
        np.testing.assert_array_equal(got[track_id]["pitch-contour"],
                                      catalog.arrays(track_id)["pitch-contour"])
    assert catalog.arrays_of([ids[1]], ["no-such-array"]) == {}
    assert catalog.arrays_of([]) == {}


def test_artist_vector_is_mean_of_its_tracks(catalog, make_track):
    a = np.array([1.0, 0, 0, 0, 0, 0, 0, 0])
    b = np.array([0, 1.0, 0, 0, 0, 0, 0, 0])
    t1, _ = catalog.add_track(make_track(1, artist="bob", timbre_vector=a))
    catalog.add_track(make_track(2, artist="bob", timbre_vector=b))
    catalog.add_track(make_track(3, artist="bob", timbre=False))  # instrumental: no timbre
    bob = catalog.find_artist("bob").id
    ids, x = catalog.artist_vectors("timbre-artist")
    assert ids.tolist() == [bob]
    assert np.allclose(x[0][:2], [2 ** -0.5, 2 ** -0.5], atol=1e-6)
    catalog.delete_track(t1)
    _, x = catalog.artist_vectors("timbre-artist")
    assert np.allclose(x[0][:2], [0, 1], atol=1e-6)
    hit = catalog.search("timbre-artist", b, limit=1)[0][0]
    assert hit.id == bob and hit.score == pytest.approx(1.0, abs=1e-5)


def test_delete_cascades_everywhere(catalog, make_track, db_url):
    keep, _ = catalog.add_track(make_track(1, artist="carol"))
    gone, _ = catalog.add_track(make_track(2, artist="dave"))
    windows_of_gone = {w[0] for w in catalog.windows(gone)}
    assert catalog.delete_track(gone) is True
    assert catalog.delete_track(gone) is False
    assert catalog.get_track(gone) is None
    for model in (Window, TrackTag, TrackArray):
        assert count(db_url, model, model.track_id == gone) == 0
    assert count(db_url, Embedding, Embedding.track_id == gone) == 0
    assert gone not in index_ids(catalog, "timbre-track")
    assert not windows_of_gone & index_ids(catalog, "melody-window")
    # dave had no other track: artist and artist vector are gone
    assert catalog.find_artist("dave") is None
    assert index_ids(catalog, "timbre-artist") == {catalog.find_artist("carol").id}
    assert [t.id for t in catalog.list_tracks()] == [keep]
    # SQL and the index files still agree: a fresh catalog repairs nothing
    again = Catalog(db_url, catalog.index_dir)
    assert again.repairs == []
    again.close()


def test_filters(catalog, make_track):
    catalog.add_track(make_track(1, artist="erin", tags=[("piano", 0.9), ("female vocal", 0.8)]))
    catalog.add_track(make_track(2, artist="frank", tags=[("piano", 0.7), ("male vocal", 0.9),
                                                         ("drums", 0.6)]))
    catalog.add_track(make_track(3, artist="erin", tags=[("drums", 0.9), ("piano", 0.3)]))
    t = {r.title: r.id for r in catalog.list_tracks()}

    def titles(f, space="tag-joint"):
        hits = catalog.search(space, np.ones(5 if space == "tag-joint" else 6), limit=10,
                              filter=f)[0]
        return sorted({h.payload["title"] for h in hits})

    piano = {"must": [{"key": "tag", "match": {"value": "piano"}}]}
    assert titles(piano) == ["song 1", "song 2"]
    assert titles({"must": [{"key": "tag", "match": {"value": "piano"}, "min_score": 0.8}]}) \
        == ["song 1"]
    assert titles({"must": [{"key": "tag", "match": {"value": "piano"}}],
                   "must_not": [{"key": "tag", "match": {"value": "drums"}}]}) == ["song 1"]
    assert titles({"must": [{"key": "gender", "match": {"value": "female"}}]}) == ["song 1"]
    assert titles({"must": [{"key": "artist", "match": {"any": ["frank"]}}]}) == ["song 2"]
    assert titles({"must": [{"key": "duration", "range": {"gte": 12}}]}) == ["song 2", "song 3"]
    assert titles({"should": [{"key": "track_id", "match": {"value": t["song 1"]}},
                              {"key": "artist", "match": {"value": "frank"}}]}) == \
        ["song 1", "song 2"]
    assert titles(piano, space="melody-window") == ["song 1", "song 2"]
    erin = catalog.find_artist("erin").id
    hits = catalog.search("timbre-artist", np.ones(8), filter={
        "must": [{"key": "artist_id", "match": {"any": [erin]}}]})[0]
    assert [h.id for h in hits] == [erin]
    assert catalog.count_tracks('{"must_not": [{"key": "tag", "match": {"value": "drums"}}]}') \
        == 1


def test_a_tag_the_catalog_does_not_know_is_named(catalog, make_track):
    misspelt = {"should": [{"must": [{"key": "tag", "match": {"any": ["piano", "pinao"]}}]}]}
    assert catalog.list_tracks(filter=misspelt) == []  # no tags yet: nothing to check against
    catalog.add_track(make_track(1, tags=[("piano", 0.9)]))
    for call in (lambda f: catalog.search("tag-joint", np.ones(5), filter=f),
                 lambda f: catalog.list_tracks(filter=f), catalog.count_tracks,
                 catalog.track_ids):
        with pytest.raises(FilterError, match=r"unknown tag\(s\) \['pinao'\]"):
            call(misspelt)
    assert catalog.count_tracks({"must": [{"key": "tag", "match": {"value": "piano"}}]}) == 1


BAD_FILTERS = [
    ({"must": [{"key": "colour", "match": {"value": "red"}}]}, "unknown key"),
    ({"must": [{"key": "tag"}]}, "exactly one of"),
    ({"must": [{"key": "tag", "match": {"value": ""}}]}, "non-empty string"),
    ({"must": [{"key": "duration", "range": {"between": 3}}]}, "gt, gte"),
    ({"must": [{"key": "duration", "range": {"gte": "long"}}]}, "expected a number"),
    ({"must": [{"key": "artist_id", "match": {"any": ["x"]}}]}, "integer ids"),
    ({"must": [{"key": "gender", "match": {"value": "robot"}}]}, "male"),
    ({"must": [{"key": "artist", "match": {"value": "x"}, "min_score": 1}]}, "min_score"),
    ({"must": "piano"}, "list of conditions"),
    ({"maybe": []}, "unknown field"),
    ({}, "empty filter"),
    ("{not json", "not valid JSON"),
    ([1, 2], "expected an object"),
    ({"must": [{"key": "gender", "match": {"value": [1, 2]}}]}, "male"),
    ({"must": [{"key": "duration", "range": {"gte": float("nan")}}]}, "expected a number"),
    ({"must": [{"key": "duration", "range": {"lt": float("inf")}}]}, "expected a number"),
    ({"must": [{"key": "track_id", "match": {"value": 2**63}}]}, "64-bit"),
    ('{"must": [' * 300 + '{"key": "track_id", "match": {"value": 1}}' + "]}" * 300,
     "levels deep"),
    ('{"must": [' * 3000 + "]}" * 3000, "levels deep"),
]


def test_bad_filters_are_clear_errors(catalog, make_track):
    catalog.add_track(make_track(1))
    for bad, message in BAD_FILTERS:
        with pytest.raises(FilterError, match=message):
            catalog.search("tag-joint", np.ones(5), filter=bad)
        with pytest.raises(FilterError):
            catalog.list_tracks(filter=bad)


def test_ids_past_64_bits_are_simply_not_found(catalog, make_track):
    catalog.add_track(make_track(1))
    assert catalog.get_track(2**63) is None and catalog.get_artist(10**30) is None


def test_bad_inputs_are_clear_errors(catalog, make_track):
    catalog.add_track(make_track(1))
    with pytest.raises(UnknownSpaceError):
        catalog.search("colour", np.ones(5))
    with pytest.raises(InputError, match="dimensions"):
        catalog.search("tag-joint", np.ones(7))
    with pytest.raises(InputError, match="limit"):
        catalog.search("tag-joint", np.ones(5), limit=0)
    t = make_track(2)
    t.vectors["tag-joint"] = np.ones(9)
    with pytest.raises(InputError, match="dimensions"):
        catalog.add_track(t)
    t = make_track(3)
    t.vectors["melody-window"] = np.ones(6)
    with pytest.raises(InputError, match="window vectors"):
        catalog.add_track(t)
    t = make_track(4)
    t.windows.append(WindowInput(5.0, 2.0))
    with pytest.raises(InputError, match="start < end"):
        catalog.add_track(t)
    with pytest.raises(InputError, match="all zeros"):
        catalog.add_track(TrackInput("h", "t", None, 1.0, vectors={"tag-joint": np.zeros(5)}))
    with pytest.raises(InputError, match="source"):
        catalog.add_track(TrackInput("h", "t", None, 1.0, tags=[("piano", 1.0, "guess")]))
    assert catalog.count_tracks() == 1  # nothing half-written


def test_crash_between_sql_commit_and_index_write_is_repaired(db_url, tmp_path, make_track,
                                                              monkeypatch):
    cat = Catalog(db_url, tmp_path / "idx", migrate=True)
    first, _ = cat.add_track(make_track(1, artist="gina"))

    def crash(self, path):
        raise RuntimeError("simulated crash while writing the index")

    monkeypatch.setattr(VectorIndex, "save", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        cat.add_track(make_track(2, artist="gina"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        cat.delete_track(first)
    cat.close()
    monkeypatch.undo()
    assert count(db_url, Track, Track.status == "pending") == 1

    cat = Catalog(db_url, tmp_path / "idx")  # the next start repairs
    assert cat.repairs and "pending" in cat.repairs[-1]
    (tid,) = [t.id for t in cat.list_tracks()]
    assert cat.get_track(tid).status == "ready"
    assert index_ids(cat, "timbre-track") == {tid}
    assert first not in {h.id for h in cat.search("tag-joint", np.ones(5), limit=10)[0]}
    hit = cat.search("timbre-track", make_track(2).vectors["timbre-track"], limit=1)[0][0]
    assert hit.id == tid and hit.score == pytest.approx(1.0, abs=1e-5)
    for info in cat.spaces():
        ids, _ = cat.all_vectors(info.space, info.model_version)
        assert set(ids.tolist()) == index_ids(cat, info.space)
    cat.close()
    cat = Catalog(db_url, tmp_path / "idx")
    assert cat.repairs == []
    cat.close()


def test_process_killed_after_sql_commit_is_repaired(db_url, tmp_path, make_track):
    """A process dies (os._exit) while writing the index; a new process repairs it."""
    idx = tmp_path / "idx"
    Catalog(db_url, idx, migrate=True).close()
    script = textwrap.dedent(f"""
        import os, numpy as np
        from index.catalog import Catalog, TrackInput, WindowInput
        from index.vectors import VectorIndex
        cat = Catalog({db_url!r}, {str(idx)!r})
        cat.add_track(TrackInput("h0", "first", "ann", 5.0,
                                 vectors={{"tag-joint": np.ones(5)}}))
        VectorIndex.save = lambda self, path: os._exit(3)
        cat.add_track(TrackInput("h1", "second", "ann", 5.0,
                                 windows=[WindowInput(0, 3, True, {{"melody-window": np.ones(6)}})],
                                 vectors={{"tag-joint": -np.ones(5)}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr
    cat = Catalog(db_url, idx)
    assert any("melody-window" in r for r in cat.repairs)
    hit = cat.search("tag-joint", -np.ones(5), limit=1)[0][0]
    assert hit.payload["title"] == "second"
    assert cat.get_track(hit.id).status == "ready"
    assert len(cat.search("melody-window", np.ones(6))[0]) == 1
    cat.close()


def test_damaged_missing_and_orphan_index_files_are_repaired(catalog, make_track, db_url):
    for i in range(3):
        catalog.add_track(make_track(i))
    d = catalog.index_dir
    (d / "tag-joint@default.faiss").write_bytes(b"damaged")
    (d / "melody-window@default.faiss").unlink()
    (d / "old-space@x.faiss").write_bytes(b"left over")
    repairs = catalog.check()
    assert len(repairs) == 3
    assert not (d / "old-space@x.faiss").exists()
    assert len(catalog.search("tag-joint", np.ones(5), limit=10)[0]) == 3
    assert catalog.check() == []


@pytest.mark.parametrize("approx", ["hnsw", "ivf"])
def test_approximate_catalog_with_deletes(db_url, tmp_path, make_track, approx):
    """Above exact_max the window space switches to HNSW / IVF; deletes keep working."""
    config = IndexConfig(exact_max=40, compact_fraction=0.5, approx_kind=approx, ivf_nprobe=64)
    cat = Catalog(db_url, tmp_path / "idx", migrate=True, index_config=config)
    with cat.batch():
        ids = [cat.add_track(make_track(i, n_windows=8))[0] for i in range(8)]
    kinds = {s.space: s.kind for s in cat.spaces()}
    assert kinds["melody-window"] == approx and kinds["tag-joint"] == "exact"
    for tid in ids[:3]:
        cat.delete_track(tid)
    alive = {w[0] for tid in ids[3:] for w in cat.windows(tid)}
    assert index_ids(cat, "melody-window") == alive
    q = make_track(5, n_windows=8).windows[2].vectors["melody-window"]
    hit = cat.search("melody-window", q, limit=1)[0][0]
    assert hit.payload["track_id"] == ids[5] and hit.payload["start"] == 3.0
    cat.close()
    cat = Catalog(db_url, tmp_path / "idx", index_config=config)
    assert cat.repairs == [] and {s.space: s.kind for s in cat.spaces()}["melody-window"] \
        == approx
    cat.close()


def test_concurrent_searches_while_adding(catalog, make_track):
    catalog.add_track(make_track(0))
    errors = []
    stop = threading.Event()

    def search():
        rng = np.random.default_rng()
        while not stop.is_set():
            try:
                for space, d in (("tag-joint", 5), ("melody-window", 6), ("timbre-artist", 8)):
                    catalog.search(space, rng.standard_normal((2, d)), limit=5)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 9):
            tid, _ = catalog.add_track(make_track(i, artist=f"a{i % 3}"))
            if i % 4 == 0:
                catalog.delete_track(tid)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert len(index_ids(catalog, "tag-joint")) == catalog.count_tracks() == 7


def test_users_and_interactions(catalog, make_track):
    tid, _ = catalog.add_track(make_track(1))
    uid = catalog.add_user("u1")
    assert catalog.add_user("u1") == uid
    catalog.add_interaction(uid, tid, "like")
    catalog.add_interaction(uid, tid, "play")
    assert [k for _, k, _ in catalog.interactions(uid)] == ["like", "play"]
    assert [t for t, _, _ in catalog.interactions(uid, "like")] == [tid]
    with pytest.raises(InputError):
        catalog.add_interaction(uid, 999, "like")
    catalog.delete_track(tid)
    assert catalog.interactions(uid) == []


def test_refresh_sees_another_writer(catalog, make_track, db_url):
    catalog.add_track(make_track(1))
    reader = Catalog(db_url, catalog.index_dir)
    assert reader.refresh() is False
    tid, _ = catalog.add_track(make_track(2))
    assert reader.refresh() is True and reader.refresh() is False
    hits = reader.search("tag-joint", make_track(2).vectors["tag-joint"], limit=1)[0]
    assert hits[0].id == tid
    reader.close()
