"""Key- and tempo-invariant matching of a hummed pitch contour against a track's contour.

The matcher is subsequence DTW (``librosa.sequence.dtw(subseq=True)``): the hum may match
any stretch of the track. Invariances:

- key: the hum is taken relative to its median pitch and compared with the track shifted
  by a few candidate offsets: those that best line up the hum's pitch classes with the
  track's (cross-correlation of pitch-class histograms at 1/3 semitone, so a hum between
  two keys is matched too). Offsets read off the medians of track stretches were often a
  semitone off: with the histograms, exhaustive DTW went from MRR 0.70 to 0.93 on the val
  hums (`recsys bench qbh --split val`, BENCHMARKS.md);
- octave: pitch differences are folded to [-6, 6] semitones, since a man humming a
  woman's song (or a tracker's octave error) is still the same tune;
- tempo: the hum is resampled by a few tempo ratios, and DTW steps (1,1), (1,2), (2,1)
  absorb the rest (local slopes between 1/2 and 2);
- breaths and rests: unvoiced frames are dropped before aligning.

The per-frame cost is capped so a few wrong notes cost a bounded amount. A match's cost is
the mean per-hum-frame cost in semitones: 0 is a perfect match; random tunes score ~2-3.

Speed: tempo and key are chosen on contours pooled to 0.2 s, every track is ranked at
0.1 s, and only the best ten are measured again at the full 0.05 s, where their matched
spans are backtracked from the same pass. Many tracks go through each DTW
(:func:`_batched_costs`); the coarse 0.2 s cost alone ranks too poorly to skip the 0.1 s
pass (ad hoc, session 10: measuring only the best 30 by it at 0.1 s lost 2 of 62 val hums
from the top ten). Batches run on all cores (:func:`_subsequence_dtw` is librosa's DTW
kernel compiled without the GIL); the DTW was three quarters of a hum's re-rank.

Screening (:func:`screen`): a much cheaper alignment of the hum against every track (0.4 s
contours, the hum's own tempo, one transposition per track) that the search service uses,
beside its embedding votes, to pick the tracks the full alignment re-ranks.

Nothing here knows about storage: the search service passes contours in, gets costs and
matched times out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import librosa
import numba
import numpy as np

from embeddings.pitch import NoMelodyError, require_melody
from embeddings.windows import CONTOUR_HOP_SECONDS

# (hum frames, track frames) per DTW step; the weight makes every path cost ~ one unit
# per hum frame, so skipping hum frames with (2, 1) steps is not a cheap way out.
STEPS = np.array([[1, 1], [1, 2], [2, 1]])
STEP_WEIGHTS = np.array([1.0, 1.0, 2.0])
# Batched alignment (_batched_costs): the cost of the columns between two references, far
# above any real path's (at most 2 * cap per hum frame), and the cost-matrix cells per call.
BARRIER = 1e9
BARRIER_MEAN = 1e3
BATCH_CELLS = 2_000_000
# Batches of one alignment run on this many threads at once (_subsequence_dtw holds no GIL),
# and an alignment is split into that many batches once it has this many cells: below
# that, handing a batch to a thread costs more than it saves (break-even ~25 k cells on
# two cores; 2x faster from ~200 k, session 11).
ALIGN_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else os.cpu_count() or 1))
PARALLEL_CELLS = 30_000

# librosa's own DTW kernels (what librosa.sequence.dtw and dtw_backtracking run). The
# accumulation is three quarters of a hum's re-rank; librosa compiles it holding the GIL,
# so it is compiled here again without, and the batches of an alignment share the cores.
# They are private to librosa, hence its version bound in pyproject.toml; a test checks
# them against librosa's public dtw.
_accumulate = numba.njit(nogil=True)(getattr(librosa.sequence, "__dtw_calc_accu_cost").py_func)
_backtrack = getattr(librosa.sequence, "__dtw_backtracking")
_NO_ADD = np.zeros(len(STEPS))


@dataclass(frozen=True)
class AlignConfig:
    """How the matcher trades speed for tolerance."""

    hop_s: float = 0.05  # contours are median-pooled to this hop before DTW
    tempos: tuple[float, ...] = (0.8, 1.0, 1.25)  # hum resampled by these ratios
    max_shifts: int = 3  # key offsets tried per track (best pitch-class histogram matches)
    cap: float = 3.0  # per-frame cost cap, semitones
    fold_octaves: bool = True
    coarse: int = 4  # tempo and key are chosen on contours pooled this many times more
    rank_pool: int = 2  # every track's cost is measured on contours pooled this many times
    rescore: int = 10  # and the best this many are measured again at full resolution


@dataclass(frozen=True)
class Match:
    """Where and how well a hum matches a track."""

    cost: float  # mean cost per hum frame, semitones (lower is better)
    start_s: float  # matched span in the track
    end_s: float
    tempo: float  # resampling ratio of the hum that matched best
    shift: float  # semitones added to the median-relative hum

    @property
    def score(self) -> float:
        """Similarity in (0, 1]: 1 for a perfect match."""
        return 1.0 / (1.0 + self.cost)


@dataclass(frozen=True)
class PreparedContour:
    """A contour pooled to ``hop_s`` with the unvoiced frames dropped."""

    pitch: np.ndarray  # (voiced frames,) MIDI
    times: np.ndarray  # (voiced frames,) seconds of each kept frame

    def crop(self, start_s: float, end_s: float) -> PreparedContour:
        """The frames between ``start_s`` and ``end_s``: the service aligns only around
        the windows its embedding search found, which keeps re-ranking cheap."""
        keep = (self.times >= start_s) & (self.times <= end_s)
        return PreparedContour(self.pitch[keep], self.times[keep])


def prepare(pitch: np.ndarray, hop_s: float = AlignConfig.hop_s) -> PreparedContour:
    """``(frames,)`` MIDI at 10 ms (NaN unvoiced) -> voiced frames pooled to ``hop_s``."""
    pitch = np.asarray(pitch, dtype=np.float64)
    k = max(1, int(round(hop_s / CONTOUR_HOP_SECONDS)))
    n = len(pitch) // k
    if n == 0:
        return PreparedContour(np.zeros(0), np.zeros(0))
    blocks = pitch[: n * k].reshape(n, k)
    voiced = np.isfinite(blocks).sum(axis=1) * 2 >= k
    pooled = np.full(n, np.nan)
    if voiced.any():
        pooled[voiced] = np.nanmedian(blocks[voiced], axis=1)
    keep = np.flatnonzero(voiced)
    return PreparedContour(pooled[keep], (keep * k + k / 2) * CONTOUR_HOP_SECONDS)


def _cost_matrix(q: np.ndarray, row: np.ndarray, config: AlignConfig) -> np.ndarray:
    """``(len(q), len(row))`` per-frame cost: the pitch difference in semitones, folded to
    [-6, 6] (octaves), absolute, capped. Built in place: the matrices are large and this
    runs for every alignment batch."""
    d = np.subtract.outer(q.astype(np.float64), row)
    if config.fold_octaves:
        octaves = np.divide(d, 12.0)
        np.round(octaves, out=octaves)
        octaves *= 12.0
        d -= octaves
    np.abs(d, out=d)
    return np.minimum(d, config.cap, out=d)


KEY_BINS = 36  # pitch classes at 1/3 semitone
# Offsets whose histogram match is below this fraction of the best one's are not tried: a
# tonal tune's key stands out, an atonal line's does not and gets up to max_shifts tries.
KEY_MARGIN = 0.9


def _stretch_histograms(pitches: list[np.ndarray], span: int) -> tuple[np.ndarray, np.ndarray]:
    """Pitch-class histograms of every stretch ``span`` frames long (a quarter span apart;
    the whole contour when shorter) of each contour, all in one array: ``(stretches,
    KEY_BINS)`` circularly smoothed over neighbouring bins, unit length, and ``(contours,)``
    the first row of each contour's stretches."""
    per_semitone = KEY_BINS // 12
    lengths = np.array([len(p) for p in pitches])
    bins = np.round(np.mod(np.concatenate(pitches), 12.0) * per_semitone).astype(np.int64)
    bins %= KEY_BINS
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # each contour's first frame
    spans = np.maximum(1, np.minimum(span, lengths))
    starts = [off + np.arange(0, n - w + 1, max(1, w // 4))
              for off, n, w in zip(offsets, lengths, spans, strict=True)]
    per_contour = [len(x) for x in starts]
    first = np.concatenate([[0], np.cumsum(per_contour)[:-1]])
    lo = np.concatenate(starts)
    # every (stretch, frame in it) pair, counted into the stretch's row in one bincount
    width = np.repeat(spans, per_contour)
    frame = (np.arange(width.sum()) - np.repeat(np.cumsum(width) - width, width)
             + np.repeat(lo, width))
    stretch = np.repeat(np.arange(len(lo)), width)
    h = np.bincount(stretch * KEY_BINS + bins[frame], minlength=len(lo) * KEY_BINS)
    h = h.reshape(len(lo), KEY_BINS).astype(np.float64)
    h = 0.5 * h + 0.25 * (np.roll(h, 1, axis=1) + np.roll(h, -1, axis=1))
    return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12), first


def key_profile(pitch: np.ndarray) -> np.ndarray:
    """``(frames,)`` voiced pitch -> ``(KEY_BINS,)`` pitch-class histogram of the whole
    contour (smoothed, unit length; zeros for an empty contour): a tune's key profile."""
    if len(pitch) == 0:
        return np.zeros(KEY_BINS)
    return _stretch_histograms([pitch], len(pitch))[0][0]


def _circular_correlation(query: np.ndarray, profiles: np.ndarray) -> np.ndarray:
    """``(KEY_BINS,)`` and ``(n, KEY_BINS)`` -> ``(n, KEY_BINS)``: entry ``[i, k]`` is
    ``sum_b query[b] * profiles[i, b + k]``, how well the query matches profile i once
    moved up by k bins."""
    spectrum = np.conj(np.fft.fft(query))[None] * np.fft.fft(profiles, axis=1)
    return np.real(np.fft.ifft(spectrum, axis=1))


def key_profile_similarity(query: np.ndarray, profiles: np.ndarray) -> np.ndarray:
    """Cosine similarity of a hum's key profile with each of ``(n, KEY_BINS)`` track
    profiles, at the circular shift that suits each track best (the hum's key is unknown):
    ``(n,)``. Cheap enough to score every track of a catalog for every hum."""
    return _circular_correlation(query, profiles).max(axis=1)


def _key_offsets(q0: np.ndarray, refs: list[np.ndarray], max_shifts: int,
                 fold: bool) -> list[np.ndarray]:
    """Key offsets to try for each reference: those that best line up the hum's pitch
    classes with those of some stretch of the reference as long as the hum. The highest
    peaks, over all stretches, of the circular cross-correlation of their pitch-class
    histograms (those within ``KEY_MARGIN`` of the best), in semitones (fractions of a
    semitone too, as people hum between keys). Without octave folding each is moved to the
    octave that puts the hum's median nearest the reference's."""
    stretches, first = _stretch_histograms(refs, len(q0))
    corr = np.maximum.reduceat(_circular_correlation(key_profile(q0), stretches), first,
                               axis=0)  # (refs, KEY_BINS): each reference's best stretch
    peak = (corr >= np.roll(corr, 1, axis=1)) & (corr >= np.roll(corr, -1, axis=1))
    ranked = np.argsort(-np.where(peak, corr, -np.inf), axis=1, kind="stable")[:, :max_shifts]
    value = np.take_along_axis(corr, ranked, axis=1)
    keep = np.take_along_axis(peak, ranked, axis=1) & (value >= KEY_MARGIN * value[:, :1])
    out = []
    for i, r in enumerate(refs):
        shifts = ranked[i][keep[i]] * (12.0 / KEY_BINS)  # a clear winner is tried alone
        if not fold:
            shifts = shifts + 12.0 * np.round((np.median(r) - shifts) / 12.0)
        out.append(shifts)
    return out


def _resample(x: np.ndarray, ratio: float) -> np.ndarray:
    n = max(2, int(round(len(x) * ratio)))
    idx = np.round(np.linspace(0, len(x) - 1, n)).astype(int)
    return x[idx]  # nearest neighbour keeps notes as steps rather than ramps


def _subsequence_dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, m)`` cost matrix -> ``(n, m)`` accumulated cost and ``(n, m)`` step matrix
    (indices into ``STEPS``) of subsequence DTW with ``STEPS`` and ``STEP_WEIGHTS``.

    The accumulated costs are those of ``librosa.sequence.dtw(C=cost, subseq=True,
    step_sizes_sigma=STEPS, weights_mul=STEP_WEIGHTS)`` (a test checks), computed by
    librosa's kernel without the GIL. librosa also tries its three default steps at every
    cell, with infinite weights so they never win; leaving them out halves the work."""
    pad_n, pad_m = (int(p) for p in STEPS.max(axis=0))
    acc = np.full((cost.shape[0] + pad_n, cost.shape[1] + pad_m), np.inf)
    acc[pad_n, pad_m:] = cost[0]  # a subsequence may start anywhere in the reference
    steps = np.zeros(acc.shape, dtype=np.int32)
    acc, steps = _accumulate(cost, acc, steps, STEPS, STEP_WEIGHTS, _NO_ADD, pad_n, pad_m)
    return acc[pad_n:, pad_m:], steps[pad_n:, pad_m:]


_threads: tuple[int, ThreadPoolExecutor] | None = None  # (process id, its pool)


def _thread_pool() -> ThreadPoolExecutor:
    """The threads alignment batches share, started on first use in each process: a process
    forked after its parent aligned inherits the pool but none of its threads."""
    global _threads
    if _threads is None or _threads[0] != os.getpid():
        _threads = (os.getpid(), ThreadPoolExecutor(ALIGN_THREADS, thread_name_prefix="align"))
    return _threads[1]


def _batches(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """``(first, end)`` runs of consecutive items whose ``sizes`` sum to at most ``limit``
    (an item larger than the limit makes a run alone)."""
    out, i = [], 0
    while i < len(sizes):
        j, total = i + 1, sizes[i]
        while j < len(sizes) and total + sizes[j] <= limit:
            total += sizes[j]
            j += 1
        out.append((i, j))
        i = j
    return out


def _batched_costs(q: np.ndarray, refs: list[np.ndarray], shifts: list[float],
                   config: AlignConfig, locate: bool = False):
    """Best mean subsequence cost of hum ``q`` against every ``refs[i]`` shifted by
    ``shifts[i]`` (``inf`` where a reference is too short for the hum at any allowed slope).

    One DTW aligns many references: they are laid end to end, two barrier columns apart,
    and no DTW step skips more than one column, so no path can afford to cross from one
    reference into the next. The costs are those of one call per reference; the calls'
    fixed overhead, which dominated the cost of short coarse contours, is paid once per
    batch (at most ``BATCH_CELLS`` cost-matrix cells, which bounds memory). A large
    alignment is cut into ``ALIGN_THREADS`` batches or more, aligned at once.

    With ``locate`` also the matched span of each reference, ``(first, last)`` frame of
    the best path (None where the cost is ``inf``), backtracked from the same batch's step
    matrix: locating costs one extra pass over the batch rather than a call per track."""
    columns = [len(r) + 2 for r in refs]  # each reference and its two barrier columns
    width = sum(columns)
    parts = ALIGN_THREADS if len(q) * width >= PARALLEL_CELLS else 1
    batches = _batches(columns, max(1, min(BATCH_CELLS // max(1, len(q)), -(-width // parts))))

    def align(batch: tuple[int, int]) -> tuple[np.ndarray, list]:
        i, j = batch
        gap = np.full(2, np.nan)
        row = np.concatenate([part for k in range(i, j)
                              for part in (refs[k] - np.float64(shifts[k]), gap)])
        cost = _cost_matrix(q, row, config)
        cost[:, np.isnan(row)] = BARRIER
        acc, steps = _subsequence_dtw(cost)
        starts = np.cumsum([0] + columns[i:j - 1])
        out = np.minimum.reduceat(acc[-1], starts) / len(q)
        spans: list[tuple[int, int] | None] = [None] * (j - i)
        if locate:
            for k, first in enumerate(starts):
                if out[k] <= BARRIER_MEAN:
                    end = first + int(np.argmin(acc[-1, first:first + len(refs[i + k])]))
                    path = _backtrack(steps, STEPS, True, end)
                    spans[k] = (int(path[-1][1] - first), int(end - first))
        return out, spans

    if len(batches) > 1 and ALIGN_THREADS > 1:
        results = list(_thread_pool().map(align, batches))
    else:
        results = [align(b) for b in batches]
    out = np.concatenate([r[0] for r in results]) if results else np.zeros(0)
    out[out > BARRIER_MEAN] = np.inf  # only paths through a barrier cost that much
    spans = [span for r in results for span in r[1]]
    return (out, spans) if locate else out


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    n = len(x) // k
    return np.median(x[: n * k].reshape(n, k), axis=1).astype(np.float32) if n else x[:0]


def _pool_many(xs: list[np.ndarray], k: int) -> list[np.ndarray]:
    """:func:`_pool` of each contour, in one median call."""
    if not xs:
        return []
    n = [len(x) // k for x in xs]
    blocks = np.concatenate([x[: m * k] for x, m in zip(xs, n, strict=True)]).reshape(-1, k)
    return np.split(np.median(blocks, axis=1).astype(np.float32), np.cumsum(n)[:-1])


def _choose(q0: np.ndarray, refs: list[np.ndarray],
            config: AlignConfig) -> list[tuple[float, float]]:
    """For each reference, the (tempo, shift) with the lowest subsequence cost among the
    tempos x its candidate shifts, searched on ``coarse``-pooled contours (a reference too
    short to pool is searched at full resolution)."""
    big = len(q0) >= 4 * config.coarse
    pooled_by = [config.coarse if big and len(r) >= 4 * config.coarse else 1 for r in refs]
    shifts = _key_offsets(q0, refs, config.max_shifts, config.fold_octaves)
    best = [(np.inf, config.tempos[0], 0.0)] * len(refs)
    for k in sorted(set(pooled_by)):
        members = [i for i, kk in enumerate(pooled_by) if kk == k]
        pairs = [(i, float(s)) for i in members for s in shifts[i]]
        pooled = dict(zip(members, _pool_many([refs[i] for i in members], k), strict=True))
        qc = _pool(q0, k)
        for tempo in config.tempos:
            values = _batched_costs(_resample(qc, tempo), [pooled[i] for i, _ in pairs],
                                    [s for _, s in pairs], config)
            for (i, shift), value in zip(pairs, values, strict=True):
                if value < best[i][0]:
                    best[i] = (float(value), tempo, shift)
    return [(tempo, shift) for _, tempo, shift in best]


def _measure(q0: np.ndarray, refs: list[np.ndarray], chosen: list[tuple[float, float]],
             config: AlignConfig, pool: int = 1) -> np.ndarray:
    """Cost of the hum against each reference at its chosen (tempo, shift), on contours
    pooled ``pool`` times (references too short to pool are measured at full resolution)."""
    big = pool > 1 and len(q0) >= 4 * pool
    pooled_by = [pool if big and len(r) >= 4 * pool else 1 for r in refs]
    costs = np.full(len(refs), np.inf)
    for tempo, k in sorted({(t, k) for (t, _), k in zip(chosen, pooled_by, strict=True)}):
        members = [i for i, ((t, _), kk) in enumerate(zip(chosen, pooled_by, strict=True))
                   if t == tempo and kk == k]
        costs[members] = _batched_costs(
            _resample(_pool(q0, k), tempo), _pool_many([refs[i] for i in members], k),
            [chosen[i][1] for i in members], config)
    return costs


def _located(q0: np.ndarray, refs: list[PreparedContour], chosen: list[tuple[float, float]],
             config: AlignConfig) -> list[Match]:
    """Full-resolution cost and matched span of the hum in each reference at its chosen
    (tempo, shift): one batched, backtracked alignment per tempo."""
    matches: list[Match | None] = [None] * len(refs)
    for tempo in sorted({t for t, _ in chosen}):
        members = [i for i, (t, _) in enumerate(chosen) if t == tempo]
        costs, spans = _batched_costs(
            _resample(q0, tempo), [refs[i].pitch.astype(np.float32) for i in members],
            [chosen[i][1] for i in members], config, locate=True)
        for i, cost, span in zip(members, costs, spans, strict=True):
            ref = refs[i]
            if span is None:  # the track is too short for the hum at any allowed slope
                matches[i] = Match(float("inf"), float(ref.times[0]), float(ref.times[-1]),
                                   tempo, chosen[i][1])
                continue
            half = (ref.times[1] - ref.times[0]) / 2 if len(ref.times) > 1 else 0.0
            matches[i] = Match(cost=float(cost), start_s=float(ref.times[span[0]] - half),
                               end_s=float(ref.times[span[1]] + half), tempo=tempo,
                               shift=chosen[i][1])
    return matches


def _score(q0: np.ndarray, refs: list[PreparedContour],
           config: AlignConfig) -> list[tuple[int, float, float, float, Match | None]]:
    """``(tier, cost, tempo, shift, match)`` of the hum against each reference, best first
    when sorted: tempo and shift chosen coarsely (:func:`_choose`), every reference's cost
    measured on contours pooled ``rank_pool`` times, then the best ``rescore`` measured again
    at full resolution and located (tier 0, ahead of the rest, tier 1, whose ``match`` is
    None)."""
    pitches = [ref.pitch.astype(np.float32) for ref in refs]
    chosen = _choose(q0, pitches, config)
    costs = _measure(q0, pitches, chosen, config, config.rank_pool)
    tier = np.ones(len(refs), dtype=int)
    head = np.argsort(costs, kind="stable")[: config.rescore]
    matches: list[Match | None] = [None] * len(refs)
    for i, match in zip(head, _located(q0, [refs[i] for i in head],
                                       [chosen[i] for i in head], config), strict=True):
        costs[i], matches[i] = match.cost, match
    tier[head] = 0
    return [(int(n), float(c), t, s, m)
            for n, c, (t, s), m in zip(tier, costs, chosen, matches, strict=True)]


def _relative(query: PreparedContour) -> np.ndarray:
    return (query.pitch - np.median(query.pitch)).astype(np.float32)


def align_prepared(
    query: PreparedContour, ref: PreparedContour, config: AlignConfig = AlignConfig()
) -> Match | None:
    """Best subsequence match of a prepared hum in a prepared track; None if the track has
    no voiced frames to match.

    Tempos x key shifts are searched on contours pooled ``coarse`` times (cheap); the
    best pair is then aligned at full resolution for the cost and the matched span.
    """
    if len(ref.pitch) < 2 or len(query.pitch) < 2:
        return None
    return _score(_relative(query), [ref], config)[0][4]


def align(
    query: np.ndarray, reference: np.ndarray, config: AlignConfig = AlignConfig()
) -> Match | None:
    """Match a hum contour against a track contour (both ``(frames,)`` MIDI at 10 ms, NaN
    unvoiced). Raises :class:`NoMelodyError` if the hum holds no melody; returns None if
    the track has no voiced pitch."""
    require_melody(query)
    return align_prepared(prepare(query, config.hop_s), prepare(reference, config.hop_s), config)


def _prepared_query(query: np.ndarray, config: AlignConfig) -> np.ndarray:
    require_melody(query)
    q = prepare(query, config.hop_s)
    if len(q.pitch) < 2:
        raise NoMelodyError("no melody found: too few voiced frames after pooling")
    return _relative(q)


def _scored(q0: np.ndarray, references: Mapping[object, np.ndarray | PreparedContour],
            config: AlignConfig) -> list[Scored]:
    """:class:`Scored` per reference with voiced pitch, best first (see :func:`_score`)."""
    keys, refs = [], []
    for key, ref in references.items():
        if not isinstance(ref, PreparedContour):
            ref = prepare(ref, config.hop_s)
        if len(ref.pitch) >= 2:
            keys.append(key)
            refs.append(ref)
    if not refs:
        return []
    scored = sorted(zip(_score(q0, refs, config), keys, refs, strict=True),
                    key=lambda item: item[0][:2])
    return [Scored(key, cost, tempo, shift, ref, match)
            for (_, cost, tempo, shift, match), key, ref in scored]


SCREEN_POOL = 8  # screening contours are pooled this many times more than hop_s (0.4 s)


def screen_contours(refs: list[PreparedContour], pool: int = SCREEN_POOL) -> list[np.ndarray]:
    """Each prepared contour pooled ``pool`` times: what :func:`screen` aligns against
    (computed once per catalog)."""
    return _pool_many([ref.pitch.astype(np.float32) for ref in refs], pool)


def screen(query: PreparedContour, pooled: list[np.ndarray], profiles: np.ndarray,
           config: AlignConfig = AlignConfig(), pool: int = SCREEN_POOL) -> np.ndarray:
    """A cheap alignment cost of the hum against every track, to pick candidates for the
    full alignment: ``(n,)`` mean subsequence DTW cost (as :func:`costs`, lower is better;
    ``inf`` for a track or hum too short to pool).

    ``query``: the prepared hum; ``pooled``: :func:`screen_contours` of the ``n`` tracks;
    ``profiles``: their ``(n, KEY_BINS)`` :func:`key_profile`. The contours are pooled to
    ``pool * hop_s`` (0.4 s), the hum is aligned at its own tempo only (the DTW steps
    still allow half to double speed) and at one transposition per track, the one its key
    profile matches best. At about a thirtieth of the full alignment's work it still puts
    hums whose windows the embedding placed poorly near their track."""
    out = np.full(len(pooled), np.inf)
    if len(query.pitch) < 4 * pool:
        return out
    q0 = _relative(query)
    shift = (_circular_correlation(key_profile(q0), profiles).argmax(axis=1)
             * (12.0 / KEY_BINS))
    if not config.fold_octaves:  # the octave that puts the hum's median nearest the track's
        medians = np.array([np.median(ref) if len(ref) else 0.0 for ref in pooled])
        shift = shift + 12.0 * np.round((medians - shift) / 12.0)
    long_enough = [i for i, ref in enumerate(pooled) if len(ref) >= 4]
    out[long_enough] = _batched_costs(_pool(q0, pool), [pooled[i] for i in long_enough],
                                      [float(shift[i]) for i in long_enough], config)
    return out


@dataclass(frozen=True)
class Scored:
    """A hum aligned with one track; located (``match``) if among the first
    ``config.rescore``."""

    key: object  # the reference's key (track id)
    cost: float  # as Match.cost (on pooled contours below the first config.rescore)
    tempo: float
    shift: float
    ref: PreparedContour
    match: Match | None = None


def score_all(
    query: np.ndarray,
    references: Mapping[object, np.ndarray | PreparedContour],
    config: AlignConfig = AlignConfig(),
) -> list[Scored]:
    """The hum against every reference with voiced pitch, best first, each with the tempo
    and key chosen for it. The first ``config.rescore`` are ordered by their
    full-resolution cost and come located; the rest by the cost on pooled contours that
    ranked them there (:func:`locate_all` locates those a page needs). Raises
    :class:`NoMelodyError` for a hum without melody."""
    return _scored(_prepared_query(query, config), references, config)


def locate_all(query: np.ndarray, scored: list[Scored],
               config: AlignConfig = AlignConfig()) -> list[Match]:
    """The matched span of each scored track: a backtracked DTW at its chosen tempo and
    key, on full-resolution contours (done already for those :func:`score_all` located)."""
    matches = [s.match for s in scored]
    todo = [i for i, m in enumerate(matches) if m is None]
    if todo:
        located = _located(_prepared_query(query, config), [scored[i].ref for i in todo],
                           [(scored[i].tempo, scored[i].shift) for i in todo], config)
        for i, match in zip(todo, located, strict=True):
            matches[i] = match
    return matches


def costs(
    query: np.ndarray,
    references: Mapping[object, np.ndarray | PreparedContour],
    config: AlignConfig = AlignConfig(),
) -> list[tuple[object, float]]:
    """Alignment cost of a hum against every track, ``[(key, cost)]`` best first, without
    locating the matched spans (cheaper than :func:`rank` for exhaustive search); see
    :func:`score_all`."""
    return [(s.key, s.cost) for s in score_all(query, references, config)]


def rank(
    query: np.ndarray,
    references: Mapping[object, np.ndarray | PreparedContour],
    config: AlignConfig = AlignConfig(),
    limit: int | None = 10,
) -> list[tuple[object, Match]]:
    """Score a hum against several tracks: the best ``limit`` ``[(key, Match)]``, lowest
    cost first (``limit=None``: all).

    ``references`` maps any key (track id) to its contour, raw or already
    :func:`prepare`-d (the service can prepare each track once). Tracks without voiced
    pitch are left out. Only the returned tracks are backtracked for their matched span.
    Raises :class:`NoMelodyError` for a hum without melody.
    """
    scored = score_all(query, references, config)
    top = scored[:limit] if limit is not None else scored
    return list(zip([s.key for s in top], locate_all(query, top, config), strict=True))
