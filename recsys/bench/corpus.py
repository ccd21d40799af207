"""Benchmark: how long building the demo corpus takes (wall and CPU time, all processes)."""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

from recsys.bench.result import BenchResult


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(songs: int = 100, song_seconds: float = 20.0, seed: int = 2,
        workers: int | None = None, out: Path | None = None,
        cache_dir: Path | None = None, keep: bool = False, progress=None) -> BenchResult:
    """Build a corpus from scratch and time it.

    ``cache_dir=None`` uses a fresh tune cache, so music21 parsing is included in the time.
    The machine may be shared: CPU seconds (this process and every child: workers,
    Festival, FluidSynth) are reported next to wall seconds.
    """
    import os

    from recsys.corpus import Corpus
    from recsys.corpus.build import BuildParams, build

    workers = workers or os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="recsys-bench-corpus-"))
    target = out or tmp / "corpus"
    cache = cache_dir or tmp / "cache"
    try:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        build(target, BuildParams(songs=songs, seed=seed, song_seconds=song_seconds),
              workers=workers, cache_dir=cache, progress=progress)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        c = Corpus(target)
        audio_s = sum(s.duration for s in c.songs())
        load = os.getloadavg()[0]
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return BenchResult(
        bench="corpus", split="all", n_items=songs,
        systems={"corpus_build": {
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "songs_per_min": round(60 * songs / wall, 2),
            "realtime_factor": round(audio_s / wall, 2),
            "cpu_realtime_factor": round(audio_s / cpu, 2),
        }},
        notes={"workers": workers, "song_seconds": song_seconds, "seed": seed,
               "n_queries": len(c.queries()), "tune_cache": "cold" if cache_dir is None
               else "given", "load_average_1min_at_end": round(load, 2),
               "bar": "100 songs of 20 s in <= 5 min on 2 cores"},
    )
