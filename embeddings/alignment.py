"""Key- and tempo-invariant matching of a hummed pitch contour against a track's contour.

The matcher is subsequence DTW (``librosa.sequence.dtw(subseq=True)``): the hum may match
any stretch of the track. Invariances:

- key: the hum is taken relative to its median pitch and compared with the track shifted
  by a few candidate offsets, the medians of track stretches as long as the hum (a hum of
  bars 9-16 should be compared with bars 9-16's median, not the whole song's);
- octave: pitch differences are folded to [-6, 6] semitones, since a man humming a
  woman's song (or a tracker's octave error) is still the same tune;
- tempo: the hum is resampled by a few tempo ratios, and DTW steps (1,1), (1,2), (2,1)
  absorb the rest (local slopes between 1/2 and 2);
- breaths and rests: unvoiced frames are dropped before aligning.

The per-frame cost is capped so a few wrong notes cost a bounded amount. A match's cost is
the mean per-hum-frame cost in semitones: 0 is a perfect match; random tunes score ~2-3.

Nothing here knows about storage: the search service passes contours in, gets costs and
matched times out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import librosa
import numpy as np

from embeddings.pitch import NoMelodyError, require_melody
from embeddings.windows import CONTOUR_HOP_SECONDS

# (hum frames, track frames) per DTW step; the weight makes every path cost ~ one unit
# per hum frame, so skipping hum frames with (2, 1) steps is not a cheap way out.
STEPS = np.array([[1, 1], [1, 2], [2, 1]])
STEP_WEIGHTS = np.array([1.0, 1.0, 2.0])


@dataclass(frozen=True)
class AlignConfig:
    """How the matcher trades speed for tolerance."""

    hop_s: float = 0.05  # contours are median-pooled to this hop before DTW
    tempos: tuple[float, ...] = (0.8, 1.0, 1.25)  # hum resampled by these ratios
    max_shifts: int = 5  # key offsets tried per track (most frequent stretch medians)
    cap: float = 3.0  # per-frame cost cap, semitones
    fold_octaves: bool = True
    coarse: int = 4  # tempo and key are chosen on contours pooled this many times more


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


def _fold(d: np.ndarray) -> np.ndarray:
    return np.abs(d - 12.0 * np.round(d / 12.0))


def _candidate_shifts(ref: np.ndarray, span: int, max_shifts: int, fold: bool) -> np.ndarray:
    """Medians of track stretches ``span`` frames long, most frequent first, rounded (and
    taken modulo an octave when octaves are folded: shifts 12 apart then cost the same)."""
    span = max(1, min(span, len(ref)))
    stride = max(1, span // 4)
    starts = np.arange(0, len(ref) - span + 1, stride)
    medians = np.round([np.median(ref[s : s + span]) for s in starts])
    if fold:
        medians = medians % 12
    values, counts = np.unique(medians, return_counts=True)
    return values[np.argsort(-counts, kind="stable")][:max_shifts]


def _resample(x: np.ndarray, ratio: float) -> np.ndarray:
    n = max(2, int(round(len(x) * ratio)))
    idx = np.round(np.linspace(0, len(x) - 1, n)).astype(int)
    return x[idx]  # nearest neighbour keeps notes as steps rather than ramps


def _subseq_costs(q: np.ndarray, r: np.ndarray, shift: float, config: AlignConfig,
                  backtrack: bool = False):
    d = (q + np.float32(shift))[:, None] - r[None, :]
    cost = np.minimum(_fold(d) if config.fold_octaves else np.abs(d), config.cap)
    out = librosa.sequence.dtw(
        C=cost, subseq=True, step_sizes_sigma=STEPS, weights_mul=STEP_WEIGHTS,
        backtrack=backtrack,
    )
    acc, path = out if backtrack else (out, None)
    return acc[-1] / len(q), path


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    n = len(x) // k
    return np.median(x[: n * k].reshape(n, k), axis=1).astype(np.float32) if n else x[:0]


def _search(q0: np.ndarray, r: np.ndarray, config: AlignConfig) -> tuple[float, float]:
    """The (tempo, shift) with the lowest subsequence cost on ``coarse``-pooled contours."""
    k = config.coarse if len(q0) >= 4 * config.coarse and len(r) >= 4 * config.coarse else 1
    qc, rc = _pool(q0, k), _pool(r, k)
    best = (np.inf, config.tempos[0], 0.0)
    for tempo in config.tempos:
        q = _resample(qc, tempo)
        for shift in _candidate_shifts(rc, len(q), config.max_shifts, config.fold_octaves):
            value = float(np.min(_subseq_costs(q, rc, shift, config)[0]))
            if value < best[0]:
                best = (value, tempo, float(shift))
    return best[1], best[2]


def _relative(query: PreparedContour) -> np.ndarray:
    return (query.pitch - np.median(query.pitch)).astype(np.float32)


def _cost(q0: np.ndarray, ref: PreparedContour, config: AlignConfig):
    r = ref.pitch.astype(np.float32)
    tempo, shift = _search(q0, r, config)
    end_costs, _ = _subseq_costs(_resample(q0, tempo), r, shift, config)
    return float(end_costs.min()), tempo, shift


def _locate(q0: np.ndarray, ref: PreparedContour, tempo: float, shift: float,
            config: AlignConfig) -> Match:
    try:
        end_costs, path = _subseq_costs(
            _resample(q0, tempo), ref.pitch.astype(np.float32), shift, config, backtrack=True
        )
    except librosa.util.exceptions.ParameterError:
        end_costs, path = np.array([np.inf]), None
    if path is None or not np.isfinite(end_costs).any():
        # the track is too short for the hum at any allowed slope
        return Match(float("inf"), float(ref.times[0]), float(ref.times[-1]), tempo, shift)
    # an infeasible alignment (reference too short for the hum at this tempo) backtracks
    # from an infinite cost through padding: keep the indices inside the reference
    last = min(int(path[0, 1]), len(end_costs) - 1)
    first = min(int(path[-1, 1]), last)
    half = (ref.times[1] - ref.times[0]) / 2 if len(ref.times) > 1 else 0.0
    return Match(
        cost=float(end_costs[last]),
        start_s=float(ref.times[first] - half),
        end_s=float(ref.times[last] + half),
        tempo=tempo,
        shift=shift,
    )


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
    q0 = _relative(query)
    _, tempo, shift = _cost(q0, ref, config)
    return _locate(q0, ref, tempo, shift, config)


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
            config: AlignConfig) -> list[tuple[float, float, float, object, PreparedContour]]:
    scored = []
    for key, ref in references.items():
        if not isinstance(ref, PreparedContour):
            ref = prepare(ref, config.hop_s)
        if len(ref.pitch) >= 2:
            scored.append((*_cost(q0, ref, config), key, ref))
    scored.sort(key=lambda item: item[0])
    return scored


def costs(
    query: np.ndarray,
    references: Mapping[object, np.ndarray | PreparedContour],
    config: AlignConfig = AlignConfig(),
) -> list[tuple[object, float]]:
    """Alignment cost of a hum against every track, ``[(key, cost)]`` lowest first, without
    locating the matched spans (cheaper than :func:`rank` for exhaustive search)."""
    return [(key, cost) for cost, _, _, key, _ in _scored(_prepared_query(query, config),
                                                           references, config)]


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
    q0 = _prepared_query(query, config)
    scored = _scored(q0, references, config)
    top = scored[:limit] if limit is not None else scored
    return [(key, _locate(q0, ref, tempo, shift, config)) for _, tempo, shift, key, ref in top]
