"""Pitch tracker bench: accuracy and speed of YIN, pYIN and the learned tracker on corpus
vocals.

References are the corpus' sung notes (``song.notes``, as actually sung; for hums
``query.notes``) rendered to a 10 ms contour. Each tracker runs on the clean vocal stem, on
the separated vocals (the ingest condition) and on hum queries (the query condition).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recsys.bench.result import BenchResult


def run(
    corpus_dir: Path,
    split: str = "val",
    separator: str = "auto",
    max_songs: int = 10,
    max_queries: int = 10,
    max_seconds: float = 30.0,
    methods: tuple[str, ...] = ("yin", "pyin", "cnn"),
    cache: Path = Path("data/cache/qbh"),
    progress: Callable[[str, int, int], None] | None = None,
) -> BenchResult:
    from embeddings import pitch
    from embeddings.audio import SAMPLE_RATE, load
    from recsys.bench.qbh import corpus_cache
    from recsys.bench.vocals import resolve_separator, separated_vocals
    from recsys.corpus import Corpus

    report = progress or (lambda *_: None)
    corpus = Corpus(corpus_dir)
    songs = [s for s in corpus.songs(split) if not s.instrumental and s.notes][:max_songs]
    queries = [q for q in corpus.queries(split) if q.notes][:max_queries]
    label, sep = resolve_separator(separator)
    n = int(max_seconds * SAMPLE_RATE)
    items: list[tuple[str, np.ndarray, list]] = []
    folder = corpus_cache(cache, corpus)
    for i, song in enumerate(songs):
        items.append(("clean", load(song.vocals)[:n], song.notes))
        items.append(("separated", separated_vocals(song, sep, label, folder)[:n], song.notes))
        report("load", i + 1, len(songs))
    for q in queries:
        items.append(("hum", load(q.path)[:n], q.notes))
    for m in methods:  # compile numba kernels before timing
        pitch.contour(items[0][1][: 2 * SAMPLE_RATE], m)

    systems: dict[str, dict[str, float]] = {}
    for m in methods:
        scores: dict[str, list[dict]] = {}
        audio_s: dict[str, float] = {}
        wall_s: dict[str, float] = {}
        for j, (cond, audio, notes) in enumerate(items):
            t = time.perf_counter()
            est = pitch.contour(audio, m)
            wall_s[cond] = wall_s.get(cond, 0.0) + time.perf_counter() - t
            audio_s[cond] = audio_s.get(cond, 0.0) + len(audio) / SAMPLE_RATE
            ref = pitch.notes_to_contour(notes, len(est))
            scores.setdefault(cond, []).append(pitch.raw_pitch_accuracy(est, ref))
            report(m, j + 1, len(items))
        for cond, rows in scores.items():
            systems[f"{m}_{cond}"] = {
                **{k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]},
                "realtime_factor": round(audio_s[cond] / wall_s[cond], 1),
            }
    return BenchResult(
        bench="pitch", split=split, n_items=len(items), systems=systems,
        notes={"songs": len(songs), "hum_queries": len(queries), "separator": label,
               "seconds_per_item": max_seconds,
               "tolerance": "50 cents; unvoiced estimates on voiced reference frames count "
                            "as misses"},
    )
