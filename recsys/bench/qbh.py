"""Query-by-humming bench: hum queries against the catalog's own (separated) vocals.

Catalog: every corpus song with vocals (all splits), plus the songs of any ``extra`` corpus
on other tunes (:func:`_extra_queries`), vocals separated from the mixture by the chosen
separator, cut into 3 s windows. Queries: hum queries of one split, keeping
only those hummed by a voice other than the target song's singer; with ``singers``, only
those whose song is sung by a singer the shipped separator heard in training, or by one it
did not (on a corpus no model trained on, ``split="all"`` takes every split's hums: a
development set for new singers that is not the test split). Three systems, each timed per
query on this machine:

- ``dtw``: the hum's pitch contour aligned against every catalog track (exhaustive
  subsequence DTW, ``embeddings.alignment``); the no-learning baseline.
- ``tcae``: hum windows -> TCAE embeddings -> FAISS (exact inner product) top-N windows ->
  votes per track: per hum window its best hit among the track's windows that agree on
  where the hum starts in the track, summed (``recsys.search.consistent_votes``).
- ``tcae_dtw``: ``tcae``'s top-K tracks re-ranked by the DTW alignment; the rest follow in
  vote order. The issue's system.
- ``tcae_key_dtw``: as ``tcae_dtw``, but the K candidates are ranked by the votes plus every
  track's key-profile similarity (``recsys.search.hum_candidate_order``).
- ``tcae_screen_dtw``: as ``tcae_key_dtw``, the candidates ranked also by a cheap
  screening alignment of the hum against every track (``embeddings.alignment.screen``).
  This is the path the search service runs on catalogs too large to align whole.

Latency of a system = the sum of its measured components for that query (pitch contour,
embedding, FAISS search, votes, alignments). The ``tcae_*`` systems read the hum as the
service does (``recsys.search.read_hum``): the pitch contour on a second thread beside the
embedding and window search, so that part costs its measured wall time, not the sum.
Scaling: window vectors are replicated with small perturbations up to the window count of
1k/2k/5k songs and the search + votes step is re-timed there; exhaustive DTW scales by its
measured per-track time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.bench.result import BenchResult
from recsys.bench.vocals import heard_singers, heard_tunes, resolve_separator, separated_vocals
from recsys.pipeline import melodic_windows
from recsys.search import (
    HUM_HITS_PER_WINDOW,
    HUM_RERANK,
    around_best_windows,
    consistent_votes,
    hum_candidate_order,
    read_hum,
)

SWEEP_K = (5, 10, 20, 30, 50, 75, 100)  # re-rank depths reported in the notes
SYSTEMS = ("dtw", "tcae", "tcae_dtw", "tcae_key_dtw", "tcae_screen_dtw")


@dataclass
class CatalogTrack:
    song_id: str
    tune_id: str
    contour: np.ndarray  # (frames,) MIDI at 10 ms, NaN unvoiced
    embeddings: np.ndarray  # (n, dim) of the indexed (voiced) windows
    starts: np.ndarray  # (n,) seconds


@dataclass
class QueryOutcome:
    ranks: dict[str, float] = field(default_factory=dict)  # system -> 1-based rank or inf
    ms: dict[str, float] = field(default_factory=dict)  # system -> latency
    parts: dict[str, float] = field(default_factory=dict)  # component -> ms


def corpus_cache(cache: Path, corpus) -> Path:
    """Cache folder of one corpus (song ids repeat across corpora)."""
    return Path(cache) / hashlib.sha1(str(corpus.root).encode()).hexdigest()[:10]


def _pitch_key(encoder) -> str:
    from embeddings import pitch

    return f"contour-{pitch.tracker_version(getattr(encoder, 'pitch_method', 'yin'))}"


def build_catalog(songs, separator, label: str, encoder, cache: Path,
                  progress: Callable[[int, int], None] | None = None) -> list[CatalogTrack]:
    """Separate (cached), extract contours and window embeddings of every song."""
    from embeddings.windows import cut

    tracks = []
    for i, song in enumerate(songs):
        # the indexed windows depend on the contour (melodic_windows), so both keys name it
        key = _pitch_key(encoder)
        path = cache / "features" / label / f"{song.song_id}.{encoder.version}.{key}.npz"
        contour_path = cache / "features" / label / f"{song.song_id}.{key}.npy"
        if path.exists():
            z = np.load(path)
            contour, emb, starts = z["contour"], z["embeddings"], z["starts"]
        else:
            vocals = separated_vocals(song, separator, label, cache)
            if contour_path.exists():
                contour = np.load(contour_path)
            else:
                contour = encoder.contour(vocals)
                contour_path.parent.mkdir(parents=True, exist_ok=True)
                np.save(contour_path.with_suffix(".tmp.npy"), contour)
                contour_path.with_suffix(".tmp.npy").replace(contour_path)
            windows = cut(vocals)
            # the windows ingest indexes in the melody space
            keep = np.flatnonzero(melodic_windows(contour, windows.starts))
            emb = (encoder.embed(windows.audio[keep]) if len(keep)
                   else np.zeros((0, encoder.dim), np.float32))
            starts = windows.starts[keep]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, contour=contour, embeddings=emb, starts=starts)
            tmp.replace(path)
        tracks.append(CatalogTrack(song.song_id, song.tune_id, contour, emb, starts))
        if progress:
            progress(i + 1, len(songs))
    return tracks


class WindowIndex:
    """Exact inner-product FAISS index of window vectors, with their track numbers."""

    def __init__(self, vectors: np.ndarray, track_of: np.ndarray, n_tracks: int,
                 starts: np.ndarray):
        import faiss

        self.starts = np.asarray(starts, dtype=np.float64)  # (n,) seconds into its track

        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.track_of = track_of
        self.n_tracks = n_tracks

    def search(self, queries: np.ndarray, per_window: int) -> tuple[np.ndarray, np.ndarray]:
        """``(m, dim)`` hum window vectors -> ``(sims, ids)``, ``(m, per_window)`` each: the
        nearest catalog windows of each (id -1 where there are fewer)."""
        return self.index.search(np.ascontiguousarray(queries, np.float32), per_window)

    def votes_of(self, sims: np.ndarray, ids: np.ndarray, hum_starts: np.ndarray) -> np.ndarray:
        """Hits ``(sims, ids)`` of hum windows starting ``(m,)`` seconds into the hum ->
        ``(n_tracks,)`` vote score (higher better; ``-inf`` for tracks no hum window hit):
        :func:`recsys.search.consistent_votes`, as the service counts them."""
        ok = ids >= 0
        tracks, votes = consistent_votes(np.nonzero(ok)[0], self.track_of[ids[ok]],
                                         self.starts[ids[ok]], sims[ok], hum_starts)
        score = np.full(self.n_tracks, -np.inf)
        score[tracks] = votes
        return score

    def votes(self, queries: np.ndarray, hum_starts: np.ndarray,
              per_window: int = 50) -> np.ndarray:
        """:meth:`votes_of` the top ``per_window`` hits of each of ``(m, dim)`` hum window
        vectors starting ``(m,)`` seconds into the hum."""
        return self.votes_of(*self.search(queries, per_window), hum_starts)


class WindowRetrieval:
    """Scores a melody model on track retrieval by window votes (the bench's ``tcae``
    system, without DTW): used to select TCAE weights on the val split while training.

    ``catalog``: ``(vocals (samples,), contour (frames,))`` per track, cut into windows and
    kept where ingest would index them (:func:`recsys.pipeline.melodic_windows`);
    ``queries``: ``(hum audio (samples,), target track number)``. Calling it with a
    :class:`embeddings.melody.TCAE` gives ``{mrr, top1, top10, recall_at_50}``.
    """

    def __init__(self, catalog: list[tuple[np.ndarray, np.ndarray]],
                 queries: list[tuple[np.ndarray, int]], per_window: int = 50):
        from embeddings.windows import QUERY_HOP_SAMPLES, cut

        if not catalog or not queries:
            raise ValueError("window retrieval needs a catalog and queries")
        windows, owners, starts = [], [], []
        for i, (vocals, contour) in enumerate(catalog):
            w = cut(vocals)
            keep = np.flatnonzero(melodic_windows(contour, w.starts))
            windows.append(w.audio[keep])
            owners.append(np.full(len(keep), i))
            starts.append(w.starts[keep])
        self.windows = np.concatenate(windows)
        self.track_of = np.concatenate(owners)
        self.starts = np.concatenate(starts)
        self.n_tracks = len(catalog)
        self.queries = [(cut(hum, hop=QUERY_HOP_SAMPLES), target) for hum, target in queries]
        self.per_window = per_window

    def __call__(self, model) -> dict[str, float]:
        from embeddings.melody import TCAEMelodyEncoder

        encoder = TCAEMelodyEncoder(model, version="eval", device="cpu")
        index = WindowIndex(encoder.embed(self.windows), self.track_of, self.n_tracks,
                            self.starts)
        ranks = []
        for hum_windows, target in self.queries:
            votes = index.votes(encoder.embed(hum_windows.audio), hum_windows.starts,
                                self.per_window)
            ranks.append(_rank_of(_vote_order(votes), {target}))
        return {**rank_metrics(ranks),
                "recall_at_50": round(float(np.mean(np.array(ranks) <= 50)), 4),
                "queries": len(ranks), "tracks": self.n_tracks}


def _around_hits(ref, track: int, index: WindowIndex, sims, ids, hum_s: float):
    """``ref`` cropped around its best-matching windows as the service crops it
    (:func:`recsys.search.around_best_windows`); whole if no hum window hit it."""
    mask = (ids >= 0) & (index.track_of[np.maximum(ids, 0)] == track)
    if not mask.any():
        return ref
    return around_best_windows(ref, sims[mask], index.starts[ids[mask]], hum_s)


def _vote_order(votes: np.ndarray) -> list[int]:
    """Track numbers of the tracks some hum window hit, most votes first."""
    order = np.argsort(-votes, kind="stable")
    return order[np.isfinite(votes[order])].tolist()


def rank_metrics(ranks) -> dict[str, float]:
    """1-based ranks of the right track (inf: not found) -> MRR, top-1 and top-10 rates."""
    ranks = np.asarray(ranks, dtype=float)
    return {"mrr": round(float(np.mean(1.0 / ranks)), 4),
            "top1": round(float(np.mean(ranks <= 1)), 4),
            "top10": round(float(np.mean(ranks <= 10)), 4)}


def _rank_of(order: list[int], target: set[int]) -> float:
    for r, t in enumerate(order, 1):
        if t in target:
            return float(r)
    return float("inf")


def _summary(outcomes: list[QueryOutcome], system: str) -> dict[str, float]:
    ms = np.array([o.ms[system] for o in outcomes])
    return {
        **rank_metrics([o.ranks[system] for o in outcomes]),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
    }


def search_one(hum: np.ndarray, tracks: list[CatalogTrack], prepared, index: WindowIndex,
               encoder, config, rerank_k: int, per_window: int, run_dtw: bool = True,
               crop: bool = True, profiles: np.ndarray | None = None,
               screened: list[np.ndarray] | None = None):
    """Run the systems for one hum (``tcae_key_dtw`` when ``profiles``, the ``(tracks,
    KEY_BINS)`` key profiles, are given; ``tcae_screen_dtw`` when the tracks'
    :func:`embeddings.alignment.screen_contours` are given too).

    Returns ``({system: track order}, {part: ms}, has_melody, (hum window embeddings,
    their starts))``.

    An order lists track numbers best first; a hum without melody gives an empty order for
    the systems that check it (``dtw``, ``tcae_dtw``), which is the service's answer too.
    """
    from embeddings import alignment, pitch

    parts: dict[str, float] = {}
    orders: dict[str, list[int]] = {}

    def timed(part: str, fn):
        def run(x):
            t = time.perf_counter()
            out = fn(x)
            parts[part] = parts.get(part, 0.0) + (time.perf_counter() - t) * 1e3
            return out

        return run

    # as the service reads a hum: contour on a second thread beside the window search
    t = time.perf_counter()
    hum_query = read_hum(hum, timed("contour", encoder.contour), timed("embed", encoder.embed),
                         timed("search", lambda e: (e, index.search(e, per_window))),
                         local_contour=pitch.is_local(getattr(encoder, "pitch_method", "")))
    parts["read"] = (time.perf_counter() - t) * 1e3
    contour, (emb, (sims, ids)) = hum_query.contour, hum_query.hits
    try:
        pitch.require_melody(contour)
        has_melody = True
    except pitch.NoMelodyError:
        has_melody = False
    t = time.perf_counter()
    votes = index.votes_of(sims, ids, hum_query.starts)
    voted = _vote_order(votes)
    parts["votes"] = (time.perf_counter() - t) * 1e3
    orders["tcae"] = voted

    def rerank(order: list[int]) -> list[int]:
        top = {i: _around_hits(prepared[i], i, index, sims, ids, len(hum) / 16000)
               if crop else prepared[i] for i in order[:rerank_k]}
        # as the service's aligned_page: every candidate ordered by its alignment cost, the
        # first page of ten located (their matched spans backtracked)
        scored = alignment.score_all(contour, top, config)
        alignment.locate_all(contour, scored[:10], config)
        head = [s.key for s in scored]
        aligned = set(head)
        return head + [i for i in order if i not in aligned]

    t = time.perf_counter()
    orders["tcae_dtw"] = rerank(voted) if has_melody else []
    parts["rerank"] = (time.perf_counter() - t) * 1e3

    if profiles is not None:
        t = time.perf_counter()
        hum_prepared = alignment.prepare(contour, config.hop_s)
        if has_melody:
            key_similarity = alignment.key_profile_similarity(
                alignment.key_profile(hum_prepared.pitch), profiles)
            keyed = [int(i) for i in hum_candidate_order(votes, key_similarity)]
        else:
            keyed = []
        parts["key"] = (time.perf_counter() - t) * 1e3
        orders["tcae_key"] = keyed
        t = time.perf_counter()
        orders["tcae_key_dtw"] = rerank(keyed) if has_melody else []
        parts["rerank_key"] = (time.perf_counter() - t) * 1e3
        if screened is not None:
            t = time.perf_counter()
            orders["tcae_screen"] = [int(i) for i in hum_candidate_order(
                votes, key_similarity, screen_cost=alignment.screen(
                    hum_prepared, screened, profiles, config))] if has_melody else []
            parts["screen"] = (time.perf_counter() - t) * 1e3
            t = time.perf_counter()
            orders["tcae_screen_dtw"] = rerank(orders["tcae_screen"]) if has_melody else []
            parts["rerank_screen"] = (time.perf_counter() - t) * 1e3

    if run_dtw:
        t = time.perf_counter()
        if has_melody:
            orders["dtw"] = [i for i, _ in alignment.costs(contour, dict(enumerate(prepared)),
                                                           config)]
        else:
            orders["dtw"] = []
        parts["dtw"] = (time.perf_counter() - t) * 1e3
    return orders, parts, has_melody, (emb, hum_query.starts)


def run(
    corpus_dir: Path,
    split: str = "test",
    separator: str = "auto",
    model: str = "tcae",
    max_queries: int | None = None,
    rerank_k: int = HUM_RERANK,
    crop: bool = True,
    per_window: int = HUM_HITS_PER_WINDOW,
    scale_songs: tuple[int, ...] = (1000, 2000, 5000),
    cache: Path = Path("data/cache/qbh"),
    progress: Callable[[str, int, int], None] | None = None,
    weights: Path | None = None,
    extra: tuple[Path, ...] = (),
    pitch_method: str | None = None,
    singers: str = "all",
) -> BenchResult:
    """The QBH bench on ``corpus_dir``; see the module docstring. ``weights``: TCAE weights
    to use instead of the registry's ``model`` (e.g. a candidate not shipped yet).
    ``pitch_method``: the pitch tracker of catalog and hum contours, instead of the default.
    ``extra``: more corpora whose songs join the catalog (see :func:`_extra_queries`).
    ``singers``: "all", or only the queries of songs by singers the shipped separator
    "heard" in training or not ("unseen")."""
    import faiss
    import torch

    from embeddings import alignment, pitch
    from embeddings.audio import load
    from embeddings.registry import load_melody
    from recsys.corpus import Corpus

    if singers not in ("all", "heard", "unseen"):
        raise ValueError(f"singers is 'all', 'heard' or 'unseen', not {singers!r}")
    heard, tunes_heard = heard_singers(), heard_tunes()
    faiss.omp_set_num_threads(1)  # one query at a time: threads only add overhead here
    torch.set_num_threads(1)
    report = progress or (lambda *_: None)
    label, sep = resolve_separator(separator)
    if weights is not None:
        from embeddings.melody import load_pretrained

        encoder = load_pretrained(weights)
    else:
        encoder = load_melody(model)
    if pitch_method is not None:
        encoder.pitch_method = pitch.check_method(pitch_method)

    # The main corpus, then each extra corpus: its songs whose tune no earlier corpus has
    # (a hum of a shared tune would have two right answers), and its queries of the split.
    tracks: list[CatalogTrack] = []
    queries, targets, n_dropped, extra_notes = [], [], 0, []
    seen_tunes: set[str] = set()
    for c, root in enumerate([corpus_dir, *extra]):
        corpus = Corpus(root)
        main = c == 0
        songs = [s for s in corpus.songs() if not s.instrumental and s.tune_id not in seen_tunes]
        seen_tunes |= {s.tune_id for s in corpus.songs()}
        by_id = {s.song_id: s for s in songs}
        if main and split == "all":
            if any(s.tune_id in tunes_heard for s in corpus.songs()):
                raise ValueError(f"--split all is for a corpus no model trained on; {root} "
                                 "holds tunes the shipped models trained on")
            mine = corpus.queries()
        elif main:
            mine = corpus.queries(split)
        else:
            mine = _extra_queries(corpus, split)
        mine = [q for q in mine if q.song_id in by_id and (
            singers == "all" or (by_id[q.song_id].singer_id in heard) == (singers == "heard"))]
        kept = [q for q in mine if q.voice != by_id[q.song_id].voice]
        n_dropped += len(mine) - len(kept)
        row_of = {s.song_id: len(tracks) + i for i, s in enumerate(songs)}
        queries += kept
        targets += [row_of[q.song_id] for q in kept]
        tracks += build_catalog(songs, sep, label, encoder, corpus_cache(cache, corpus),
                                progress=lambda d, t, c=c: report(f"catalog {c}", d, t))
        if not main:
            extra_notes.append({"corpus": str(root), "songs": len(songs), "queries": len(kept)})
    order = sorted(range(len(queries)),
                   key=lambda i: hashlib.sha1(queries[i].query_id.encode()
                                              + str(targets[i]).encode()).hexdigest())
    queries, targets = [queries[i] for i in order], [targets[i] for i in order]
    if max_queries:
        queries, targets = queries[:max_queries], targets[:max_queries]
    if not queries:
        raise ValueError(f"no {split} hum queries in {corpus_dir}")

    config = alignment.AlignConfig()
    prepared = [alignment.prepare(t.contour, config.hop_s) for t in tracks]
    profiles = np.stack([alignment.key_profile(p.pitch) for p in prepared])
    screened = alignment.screen_contours(prepared)
    vectors = np.concatenate([t.embeddings for t in tracks])
    track_of = np.concatenate([np.full(len(t.embeddings), i) for i, t in enumerate(tracks)])
    starts = np.concatenate([t.starts for t in tracks])
    index = WindowIndex(vectors, track_of, len(tracks), starts)

    outcomes, no_melody, hum_embs, hum_parts = [], 0, [], []
    for n, (q, target_row) in enumerate(zip(queries, targets, strict=True), 1):
        hum = load(q.path)
        orders, parts, has_melody, emb = search_one(hum, tracks, prepared, index, encoder, config,
                                                    rerank_k, per_window, crop=crop,
                                                    profiles=profiles, screened=screened)
        no_melody += not has_melody
        target = {target_row}
        o = QueryOutcome(parts=parts)
        for system in SYSTEMS + ("tcae_key", "tcae_screen"):
            o.ranks[system] = _rank_of(orders[system], target)
        # other re-rank depths, from the exhaustive (whole-track) DTW order: free to compute
        dtw_pos = {t: r for r, t in enumerate(orders["dtw"])}
        for k in SWEEP_K:
            head = sorted((t for t in orders["tcae"][:k] if t in dtw_pos), key=dtw_pos.get)
            in_head = set(head)
            rest = [t for t in orders["tcae"] if t not in in_head]
            o.ranks[f"tcae_dtw_k{k}"] = _rank_of(head + rest, target) if has_melody else np.inf
        o.ms["dtw"] = parts["contour"] + parts["dtw"]
        o.ms["tcae"] = parts["embed"] + parts["search"] + parts["votes"]
        o.ms["tcae_dtw"] = parts["read"] + parts["votes"] + parts["rerank"]
        o.ms["tcae_key_dtw"] = parts["read"] + parts["votes"] + parts["key"] + parts["rerank_key"]
        o.ms["tcae_screen_dtw"] = (parts["read"] + parts["votes"] + parts["key"] + parts["screen"]
                                   + parts["rerank_screen"])
        outcomes.append(o)
        if n <= 64:
            hum_embs.append(emb)
            hum_parts.append(parts)
        report("queries", n, len(queries))

    systems = {s: _summary(outcomes, s) for s in SYSTEMS}
    sweep = {k: rank_metrics([o.ranks[f"tcae_dtw_k{k}"] for o in outcomes]) for k in SWEEP_K}
    # sung renditions by another voice are query-by-example of melody (a "cover" clip)
    kinds = ["hummed" if q.params.get("hummed", True) else "sung" for q in queries]
    by_kind = {}
    for kind in sorted(set(kinds)):
        subset = [o for o, k in zip(outcomes, kinds, strict=True) if k == kind]
        by_kind[kind] = {"n": len(subset), **{
            s: {m: v for m, v in _summary(subset, s).items() if not m.endswith("_ms")}
            for s in SYSTEMS}}
    durations = [float(np.sum(np.isfinite(t.contour))) * 0.01 for t in tracks]
    notes = {
        "catalog_songs": len(tracks),
        "catalog_windows": int(len(vectors)),
        "queries": len(queries),
        "queries_dropped_same_voice": n_dropped,
        "singers": singers,
        "extra_catalogs": extra_notes,
        "queries_without_melody": no_melody,
        "by_query_kind": by_kind,
        "separator": label,
        "melody_model": encoder.version,
        "pitch_tracker": getattr(encoder, "pitch_method", "?"),
        "pitch_tracker_version": _pitch_key(encoder).removeprefix("contour-"),
        "align_config": config.__dict__,
        "rerank_k": rerank_k,
        "rerank_around_hits": crop,
        "rerank_depth_sweep_whole_tracks": sweep,
        "tcae_recall_at_k": {k: round(float(np.mean([o.ranks["tcae"] <= k for o in outcomes])),
                                      4) for k in SWEEP_K},
        "tcae_key_recall_at_k": {
            k: round(float(np.mean([o.ranks["tcae_key"] <= k for o in outcomes])), 4)
            for k in SWEEP_K},
        "tcae_screen_recall_at_k": {
            k: round(float(np.mean([o.ranks["tcae_screen"] <= k for o in outcomes])), 4)
            for k in SWEEP_K},
        "faiss": f"IndexFlatIP, top {per_window} windows per hum window",
        "mean_voiced_seconds_per_track": round(float(np.mean(durations)), 1),
        "median_ms_by_part": {k: round(float(np.median([o.parts[k] for o in outcomes])), 1)
                              for k in outcomes[0].parts},
        "scaling": _scaling(vectors, track_of, starts, len(tracks), hum_embs, hum_parts,
                            per_window, scale_songs,
                            np.median([o.parts["dtw"] for o in outcomes]), profiles),
    }
    return BenchResult(bench="qbh", split=split, n_items=len(queries), systems=systems,
                       notes=notes)


def _extra_queries(corpus, split: str) -> list:
    """Hum queries an extra catalog corpus adds to ``split``. Neither the separator nor the
    melody encoder trains on an extra corpus (the tagger and timbre encoder may, but the hum
    path does not use them), so all of it is held out for this bench: its val-split songs'
    queries serve ``val`` and all its other queries serve ``test`` (they never mix)."""
    if split == "val":
        return corpus.queries("val")
    if split != "test":
        return []
    return [q for q in corpus.queries() if q.split != "val"]


def _read_ms(parts: dict[str, float], search_ms: float) -> float:
    """Time to read a hum (:func:`recsys.search.read_hum`) whose window search took
    ``search_ms``: the longer of its contour and its embedding + search, plus the
    threads' overhead measured on this hum (``parts``: its measured parts)."""
    overhead = parts["read"] - max(parts["contour"], parts["embed"] + parts["search"])
    return max(parts["contour"], parts["embed"] + search_ms) + overhead


def _scaling(vectors, track_of, starts, n_tracks, hum_embs, hum_parts, per_window, sizes,
             dtw_median_ms, profiles) -> dict:
    """Search + votes latency on window sets grown to ``sizes`` songs' worth of windows,
    and the key-profile ranking over that many tracks (``profiles`` repeated); the
    screening alignment's time scaled by the number of tracks (it aligns every one)."""
    from embeddings import alignment

    rng = np.random.default_rng(0)
    per_song = len(vectors) / n_tracks
    out = {}
    for songs in sizes:
        target = int(songs * per_song)
        reps = [vectors]
        while sum(len(r) for r in reps) < target:
            noisy = vectors + rng.normal(0, 0.05, vectors.shape).astype(np.float32)
            reps.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
        big = np.concatenate(reps)[:target]
        owners = np.concatenate([track_of + k * n_tracks for k in range(len(reps))])[:target]
        index = WindowIndex(big, owners, n_tracks * len(reps),
                            np.tile(starts, len(reps))[:target])
        many = np.tile(profiles, (len(reps), 1))
        search_ms, total_ms, key_ms, key_total_ms, screen_total_ms = [], [], [], [], []
        for (emb, hum_starts), parts in zip(hum_embs, hum_parts, strict=True):
            t = time.perf_counter()
            sims, ids = index.search(emb, per_window)
            found_ms = (time.perf_counter() - t) * 1e3
            votes = index.votes_of(sims, ids, hum_starts)
            ms = (time.perf_counter() - t) * 1e3
            search_ms.append(ms)
            # the hum is read as measured, with the bigger window search beside its contour
            front = _read_ms(parts, found_ms) + ms - found_ms
            total_ms.append(front + parts["rerank"])
            t = time.perf_counter()
            hum_candidate_order(votes, alignment.key_profile_similarity(profiles[0], many))
            key_ms.append((time.perf_counter() - t) * 1e3)
            key_total_ms.append(front + key_ms[-1] + parts["rerank_key"])
            if "screen" in parts:
                # the screening alignment runs over every track: its time grows with them
                screen_total_ms.append(front + key_ms[-1] + parts["screen"] * songs / n_tracks
                                       + parts["rerank_screen"])
        out[f"{songs}_songs"] = {
            "windows": target,
            "search_votes_p50_ms": round(float(np.percentile(search_ms, 50)), 2),
            "search_votes_p95_ms": round(float(np.percentile(search_ms, 95)), 2),
            "tcae_dtw_p50_ms": round(float(np.percentile(total_ms, 50)), 1),
            "tcae_dtw_p95_ms": round(float(np.percentile(total_ms, 95)), 1),
            "key_ranking_p95_ms": round(float(np.percentile(key_ms, 95)), 2),
            "tcae_key_dtw_p95_ms": round(float(np.percentile(key_total_ms, 95)), 1),
            "dtw_exhaustive_p50_ms_extrapolated": round(float(dtw_median_ms) * songs / n_tracks),
        }
        if screen_total_ms:
            out[f"{songs}_songs"]["tcae_screen_dtw_p95_ms_screen_extrapolated"] = round(
                float(np.percentile(screen_total_ms, 95)), 1)
    return out
