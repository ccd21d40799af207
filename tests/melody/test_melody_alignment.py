import multiprocessing

import librosa
import numpy as np
import pytest
from melody_synth import hum_of, sing, tune

from embeddings import alignment, pitch


def _contour(notes, frames=None):
    frames = frames or int(round((notes[-1][1] + 0.3) / 0.01))
    return pitch.notes_to_contour(notes, frames)


@pytest.fixture(scope="module")
def songs():
    return {f"song{i}": tune(120, seed=100 + i) for i in range(6)}


@pytest.mark.parametrize("shift", [-7.0, 0.0, 2.5, 12.0])
def test_rerank_is_transposition_invariant(songs, shift):
    ref = _contour(songs["song2"])
    base = alignment.align(_contour(hum_of(songs["song2"], 30, 24, 0.0, 1.0)), ref)
    moved = alignment.align(_contour(hum_of(songs["song2"], 30, 24, shift, 1.0)), ref)
    assert base.cost < 0.3
    assert moved.cost == pytest.approx(base.cost, abs=0.2)
    assert moved.start_s == pytest.approx(base.start_s, abs=0.3)


@pytest.mark.parametrize("tempo", [0.7, 0.85, 1.2, 1.4])
def test_rerank_is_tempo_invariant(songs, tempo):
    ref = _contour(songs["song4"])
    match = alignment.align(_contour(hum_of(songs["song4"], 50, 24, 3.0, tempo)), ref)
    assert match.cost < 0.5
    # note 50 starts at 20.0 s and note 73 ends at 29.56 s in the song
    assert match.start_s == pytest.approx(20.0, abs=0.5)
    assert match.end_s == pytest.approx(29.56, abs=0.5)
    others = [
        alignment.align(_contour(hum_of(songs["song4"], 50, 24, 3.0, tempo)), _contour(n)).cost
        for k, n in songs.items() if k != "song4"
    ]
    assert match.cost < min(others) - 0.25


def test_a_sung_hum_finds_its_tune_among_sung_songs(songs):
    refs = {k: pitch.contour(sing(n, seed=i)) for i, (k, n) in enumerate(songs.items())}
    hum_audio = sing(hum_of(songs["song3"], 70, 22, -5.0, 1.15, seed=7), seed=9, vibrato=0.4)
    ranked = alignment.rank(pitch.contour(hum_audio), refs)
    assert [k for k, _ in ranked][0] == "song3"
    assert ranked[0][1].start_s == pytest.approx(28.0, abs=0.6)
    assert ranked[0][1].cost < ranked[1][1].cost


def test_score_all_locates_the_head_and_the_rest_on_demand(songs):
    refs = {k: _contour(n) for k, n in songs.items()}
    hum = _contour(hum_of(songs["song4"], 30, 20, 3.0, 0.9))
    config = alignment.AlignConfig(rescore=2)
    scored = alignment.score_all(hum, refs, config)
    assert scored[0].key == "song4"
    assert [s.match is not None for s in scored] == [True, True] + [False] * 4
    assert [s.cost for s in scored[:2]] == [s.match.cost for s in scored[:2]]
    assert scored[2:] == sorted(scored[2:], key=lambda s: s.cost)
    # a track outside the head is located on demand, as if it had been in it
    late = alignment.locate_all(hum, scored[4:5], config)[0]
    alone = alignment.align(hum, refs[scored[4].key], config)
    assert (late.start_s, late.end_s) == pytest.approx((alone.start_s, alone.end_s))
    assert late.cost == pytest.approx(alone.cost)


def test_hum_without_melody_is_refused(songs):
    refs = {k: _contour(n) for k, n in songs.items()}
    silent = pitch.contour(np.zeros(8 * 16000, dtype=np.float32))
    with pytest.raises(pitch.NoMelodyError):
        alignment.rank(silent, refs)
    noise = (0.05 * np.random.default_rng(1).standard_normal(8 * 16000)).astype(np.float32)
    with pytest.raises(pitch.NoMelodyError):
        alignment.rank(pitch.contour(noise), refs)


def test_unvoiced_reference_is_skipped(songs):
    refs = {"empty": np.full(3000, np.nan, dtype=np.float32), "song1": _contour(songs["song1"])}
    ranked = alignment.rank(_contour(hum_of(songs["song1"], 0, 20, 1.0, 1.0)), refs)
    assert [k for k, _ in ranked] == ["song1"]


def test_cropped_reference_gives_the_same_match(songs):
    ref = alignment.prepare(_contour(songs["song5"]))
    hum = _contour(hum_of(songs["song5"], 40, 20, 2.0, 1.1))
    full = alignment.rank(hum, {"x": ref})[0][1]
    part = alignment.rank(hum, {"x": ref.crop(full.start_s - 5, full.end_s + 5)})[0][1]
    assert part.start_s == pytest.approx(full.start_s, abs=0.1)
    assert part.cost == pytest.approx(full.cost, abs=0.05)


def test_reference_shorter_than_the_hum_does_not_crash(songs):
    hum = _contour(hum_of(songs["song1"], 0, 40, 0.0, 1.0))
    short = alignment.prepare(_contour(songs["song1"])).crop(0.0, 3.0)
    ranked = alignment.rank(hum, {"short": short})
    assert len(ranked) == 1 and ranked[0][1].start_s <= ranked[0][1].end_s


def _one_call(hum, ref, shift, config):
    """librosa's subsequence DTW of the hum against one shifted reference, with its path."""
    d = (hum + np.float32(shift))[:, None] - ref[None, :]
    cost = np.minimum(np.abs(d - 12.0 * np.round(d / 12.0)), config.cap)
    acc = librosa.sequence.dtw(C=cost, subseq=True, step_sizes_sigma=alignment.STEPS,
                               weights_mul=alignment.STEP_WEIGHTS, backtrack=False)
    if not np.isfinite(acc[-1]).any():
        return np.inf, None
    end = int(np.argmin(acc[-1]))
    acc, path = librosa.sequence.dtw(C=cost, subseq=True, step_sizes_sigma=alignment.STEPS,
                                     weights_mul=alignment.STEP_WEIGHTS)
    return acc[-1, end] / len(hum), (int(path[-1, 1]), end)


def test_batched_alignment_equals_one_call_per_track(songs, monkeypatch):
    rng = np.random.default_rng(3)
    hum = rng.normal(0.0, 3.0, 120).astype(np.float32)
    refs = [rng.normal(60.0, 3.0, n).astype(np.float32) for n in (50, 300, 61, 500)]
    shifts = [0.0, 1.5, 7.3, 11.0]
    config = alignment.AlignConfig()
    alone = [_one_call(hum, r, s, config) for r, s in zip(refs, shifts, strict=True)]
    batched, spans = alignment._batched_costs(hum, refs, shifts, config, locate=True)
    monkeypatch.setattr(alignment, "BATCH_CELLS", 120 * 400)  # several calls
    split, split_spans = alignment._batched_costs(hum, refs, shifts, config, locate=True)
    assert alone[0][0] == np.inf  # 50 frames cannot hold 120 at slope <= 2
    assert batched[0] == np.inf and split[0] == np.inf
    assert spans[0] is None and split_spans[0] is None
    assert batched[1:] == pytest.approx([c for c, _ in alone[1:]], abs=1e-5)
    assert split[1:] == pytest.approx([c for c, _ in alone[1:]], abs=1e-5)
    # the span backtracked in the batch is the one-call path's
    assert spans[1:] == [span for _, span in alone[1:]] == split_spans[1:]
    assert list(alignment._batched_costs(hum, refs, shifts, config)) == list(batched)
    # cut into batches aligned on two threads at once: the same costs and spans
    monkeypatch.setattr(alignment, "ALIGN_THREADS", 2)
    monkeypatch.setattr(alignment, "PARALLEL_CELLS", 0)
    threaded, threaded_spans = alignment._batched_costs(hum, refs, shifts, config, locate=True)
    assert list(threaded) == list(split) and threaded_spans == split_spans


def _align_in_child(queue, hum, refs):
    queue.put(list(alignment._batched_costs(hum, refs, [0.0] * len(refs),
                                            alignment.AlignConfig())))


def test_threaded_alignment_works_in_a_forked_process(monkeypatch):
    monkeypatch.setattr(alignment, "ALIGN_THREADS", 2)
    monkeypatch.setattr(alignment, "PARALLEL_CELLS", 0)
    rng = np.random.default_rng(4)
    hum = rng.normal(0.0, 3.0, 40).astype(np.float32)
    refs = [rng.normal(60.0, 3.0, 200).astype(np.float32) for _ in range(4)]
    here = list(alignment._batched_costs(hum, refs, [0.0] * 4, alignment.AlignConfig()))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_align_in_child, args=(queue, hum, refs))
    child.start()
    try:
        assert queue.get(timeout=60) == here  # the parent's pool has no threads there
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()


def test_subsequence_dtw_is_librosas():
    rng = np.random.default_rng(5)
    cost = np.minimum(np.abs(rng.normal(0.0, 2.0, (40, 130))), 3.0)
    cost[:, 70:72] = alignment.BARRIER
    cost[5, 10] = 0.0  # librosa's never-winning default steps give NaN at a zero cost
    acc, steps = alignment._subsequence_dtw(cost)
    ref_acc, ref_steps = librosa.sequence.dtw(
        C=cost, subseq=True, step_sizes_sigma=alignment.STEPS,
        weights_mul=alignment.STEP_WEIGHTS, backtrack=False, return_steps=True)
    np.testing.assert_array_equal(acc, ref_acc)
    # librosa numbers its three default steps first
    reached = np.isfinite(ref_acc)
    reached[0] = False
    np.testing.assert_array_equal(steps[reached] + 3, ref_steps[reached])
    for end in (20, 100):
        path = librosa.sequence.dtw_backtracking(ref_steps, step_sizes_sigma=alignment.STEPS,
                                                 subseq=True, start=end)
        assert [tuple(p) for p in path] == alignment._backtrack(steps, alignment.STEPS, True, end)


@pytest.mark.parametrize("key", [0.0, 2.33, 6.67, 10.0])
def test_key_offset_comes_from_pitch_class_histograms(songs, key):
    ref = alignment.prepare(_contour(songs["song2"])).pitch
    part = ref[200:400]
    hum = part - np.median(part) - key  # a stretch of the song in another key
    offsets = alignment._key_offsets(hum, [ref], 3, fold=True)[0]
    expected = (np.median(part) + key) % 12  # hum + offset lands on the song's pitches
    assert abs((offsets[0] - expected + 6) % 12 - 6) < 0.34  # within a histogram bin


def test_key_profile_similarity_ignores_the_key(songs):
    tune = alignment.prepare(_contour(songs["song2"])).pitch
    other = alignment.prepare(_contour(songs["song3"])).pitch
    profiles = np.stack([alignment.key_profile(tune), alignment.key_profile(other)])
    sims = alignment.key_profile_similarity(alignment.key_profile(tune + 4.33), profiles)
    assert sims[0] == pytest.approx(1.0, abs=0.05) and sims[0] > sims[1]


def test_candidates_without_votes_can_enter_by_key_profile():
    from recsys.search import hum_candidate_order

    votes = np.array([3.0, 1.0, -np.inf, -np.inf])
    similarity = np.array([0.5, 0.5, 0.99, 0.4])
    order = list(hum_candidate_order(votes, similarity, weight=1.0))
    assert order[0] == 0 and order.index(2) < order.index(1) and order[-1] == 3


def test_votes_count_hits_that_agree_on_where_the_hum_starts():
    from recsys.search import consistent_votes

    hum_starts = np.arange(6) * 0.75
    # track 7: every hum window hits the catalog window where a hum sung 1.25x as fast as
    # the track, starting 20 s in, puts it (nearest 1.5 s window); track 9: as many hits,
    # as similar, scattered over the song; track 8: one hum window, two windows of it.
    window, track, start, sim = [], [], [], []
    for i, t0 in enumerate(hum_starts):
        window += [i, i]
        track += [7, 9]
        start += [1.5 * round((20.0 + 1.25 * t0) / 1.5), [3.0, 40.5, 12.0, 60.0, 0.0, 28.5][i]]
        sim += [0.8, 0.8]
    window += [0, 0]
    track += [8, 8]
    start += [30.0, 31.5]
    sim += [0.9, 0.7]
    tracks, votes = consistent_votes(np.array(window), np.array(track), np.array(start),
                                     np.array(sim), hum_starts)
    got = dict(zip(tracks.tolist(), votes.tolist(), strict=True))
    assert list(tracks) == [7, 8, 9]
    assert got[7] == pytest.approx(6 * 0.8)  # all six agree
    assert got[8] == pytest.approx(0.9)  # one hum window counts once, by its best hit
    assert got[9] < 2 * 0.8 + 1e-9  # chance hits: at most two land in one bin
    empty = consistent_votes(np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0),
                             hum_starts)
    assert len(empty[0]) == 0 == len(empty[1])


def test_a_hum_is_read_with_its_contour_beside_the_window_search():
    import threading

    from recsys.search import read_hum

    clip = np.random.default_rng(0).standard_normal(16_000 * 5).astype(np.float32)
    threads = {}

    def contour_of(x):
        threads["contour"] = threading.get_ident()
        return np.full(1 + len(x) // 160, 60.0)

    def embed(windows):
        threads["embed"] = threading.get_ident()
        return windows[:, :4]

    hum = read_hum(clip, contour_of, embed, lambda vectors: vectors.sum(axis=1))
    assert threads["contour"] != threads["embed"] == threading.get_ident()
    assert hum.contour.dtype == np.float32 and len(hum.contour) == 501
    assert len(hum.starts) == len(hum.hits) > 1 and hum.starts[0] == 0.0

    def broken(x):
        raise ValueError("tracker failed")

    with pytest.raises(ValueError, match="tracker failed"):  # the worker's error surfaces
        read_hum(clip, broken, embed, lambda vectors: vectors)


def test_a_learned_tracker_reads_a_hum_in_two_pieces_with_a_whole_pass_result():
    import threading

    from recsys.search import read_hum

    clip = sing(tune(24, seed=2), seed=2).astype(np.float32)
    whole = pitch.contour(clip, "cnn")
    threads = []

    def contour_of(x):
        threads.append(threading.get_ident())
        return pitch.contour(x, "cnn")

    hum = read_hum(clip, contour_of, lambda w: w[:, :4], lambda vectors: vectors,
                   local_contour=pitch.is_local("cnn"))
    assert len(threads) == 2 and threads[0] != threads[1] == threading.get_ident()
    assert len(hum.contour) == len(whole) and np.isfinite(whole).sum() > 300
    assert np.array_equal(np.isfinite(hum.contour), np.isfinite(whole))
    assert np.allclose(hum.contour[np.isfinite(whole)], whole[np.isfinite(whole)], atol=1e-3)
    # too short to split, or a tracker that looks at the whole clip: one piece
    assert pitch.split_for_pieces(16_000, 2 / 3) is None and not pitch.is_local("yin")


@pytest.mark.parametrize("shift,tempo",
                         [(0.0, 1.0), (5.0, 0.8), (-3.5, 1.0), (2.5, 1.2), (0.0, 1.4)])
def test_screening_puts_the_hummed_tune_first_in_any_key_and_tempo(songs, shift, tempo):
    names = sorted(songs)
    refs = [alignment.prepare(_contour(songs[k])) for k in names]
    profiles = np.stack([alignment.key_profile(r.pitch) for r in refs])
    screened = alignment.screen_contours(refs)
    hum = alignment.prepare(_contour(hum_of(songs["song3"], 40, 24, shift, tempo)))
    cost = alignment.screen(hum, screened, profiles)
    assert cost.shape == (len(names),) and np.isfinite(cost).all()
    assert names[int(np.argmin(cost))] == "song3"
    # a hum too short to pool to 0.4 s cannot be screened: every cost is unknown
    short = alignment.PreparedContour(hum.pitch[:20], hum.times[:20])
    assert np.isinf(alignment.screen(short, screened, profiles)).all()


def test_screening_cost_brings_candidates_forward():
    from recsys.search import hum_candidate_order

    votes = np.array([2.0, 1.0, -np.inf, 0.5])
    similarity = np.full(4, 0.5)
    cost = np.array([2.0, 2.0, 0.2, np.inf])  # track 2: no vote, aligns well; 3: unaligned
    assert list(hum_candidate_order(votes, similarity))[:2] == [0, 1]
    order = list(hum_candidate_order(votes, similarity, screen_cost=cost, screen_weight=2.0))
    assert order[0] == 2 and order[-1] == 3
