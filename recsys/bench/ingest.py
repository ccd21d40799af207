"""Whole-pipeline ingest speed (x real time) and peak memory: corpus songs and one long file."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from recsys.bench.result import BenchResult

# One ingest in a fresh interpreter, so its max RSS is its own.
_PROBE = """
import gc, json, os, resource, sys, time
from pathlib import Path
from recsys.context import open_catalog
from recsys.ingest import ingest_paths
from recsys.metadata import discover
from recsys.pipeline import Models
from recsys.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]))
catalog = open_catalog(settings)
models = Models.load(settings)
sources = discover([Path(p) for p in sys.argv[2:]])
gc.collect()
page = os.sysconf("SC_PAGE_SIZE") // 1024
before = int(open("/proc/self/statm").read().split()[1]) * page
report = ingest_paths(sources, catalog, models, max_seconds=3600)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"audio_s": report.audio_seconds, "wall_s": report.wall_seconds,
                  "added": len(report.added), "failed": [r for _, r in report.failed],
                  "peak_kb": peak - before}))
"""


def _probe(data_dir: Path, files: list[Path]) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(data_dir), *map(str, files)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _long_file(songs: list[Path], minutes: float, path: Path) -> Path:
    """Corpus mixtures played back to back until ``minutes`` long (a realistic long track)."""
    from embeddings import audio

    parts, total, i = [], 0, 0
    target = int(minutes * 60 * audio.SAMPLE_RATE)
    while total < target:
        x = audio.load(songs[i % len(songs)])
        parts.append(x[: target - total])
        total += len(parts[-1])
        i += 1
    audio.save(path, np.concatenate(parts))
    return path


def run(corpus_dir: Path, split: str = "test", max_songs: int = 20,
        long_minutes: float = 10.0) -> BenchResult:
    from recsys.corpus import Corpus
    from recsys.settings import get_settings

    corpus = Corpus(corpus_dir)
    songs = [s.mixture for s in corpus.songs(split=split)][:max_songs]
    settings = get_settings()
    systems = {}
    with tempfile.TemporaryDirectory() as tmp:
        songs_run = _probe(Path(tmp) / "songs", songs)
        systems["pipeline"] = {
            "realtime_factor": round(songs_run["audio_s"] / songs_run["wall_s"], 2),
            "peak_mem_mb": round(songs_run["peak_kb"] / 1024, 1),
        }
        long_path = _long_file(songs, long_minutes, Path(tmp) / "long.wav")
        long_run = _probe(Path(tmp) / "long", [long_path])
        systems["pipeline_long_file"] = {
            "realtime_factor": round(long_run["audio_s"] / long_run["wall_s"], 2),
            "peak_mem_mb": round(long_run["peak_kb"] / 1024, 1),
        }
    return BenchResult(
        bench="ingest", split=split, n_items=len(songs), systems=systems,
        notes={
            "models": {"separator": settings.separator, "timbre": settings.timbre_model,
                       "melody": settings.melody_model, "tagger": settings.tagger,
                       "pitch_tracker": settings.pitch_tracker},
            "pipeline": f"{len(songs)} corpus songs ({songs_run['audio_s']:.0f} s of audio), "
                        "ingested one after another into an empty catalog",
            "pipeline_long_file": f"one {long_minutes:g}-minute file",
            "peak_mem_mb": "peak RSS during ingest minus the resident size after loading "
                           "models (fresh process)",
        },
    )
