"""Ingest: files -> audio -> models -> catalog, one bad file never stopping the rest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embeddings import audio
from embeddings.base import l2_normalize
from index.catalog import InputError
from recsys.metadata import SongSource, bytes_hash, content_hash
from recsys.pipeline import (
    GENDER_TAGS,
    MELODY_WINDOW,
    PITCH_CONTOUR,
    TAG_JOINT,
    TAG_PROB,
    TIMBRE_TRACK,
    Analysis,
    Models,
    analyse,
)

log = logging.getLogger(__name__)

# Predicted tags below this score are not stored (they would only add noise to filters).
MIN_STORED_TAG_SCORE = 0.05
# Tracks added between two writes of the index files.
BATCH_TRACKS = 25


@dataclass
class IngestReport:
    added: list[tuple[Path, int]] = field(default_factory=list)
    existing: list[tuple[Path, int]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0


def ingest_paths(sources: list[SongSource], catalog, models: Models, *,
                 on_progress: Callable[[SongSource, str], None] | None = None,
                 max_seconds: float = audio.DEFAULT_MAX_SECONDS,
                 report: IngestReport | None = None) -> IngestReport:
    """Ingest every source (see :func:`recsys.metadata.discover`); one bad file never stops
    the rest. ``on_progress(source, status)`` is called after each; it can read a failure's
    reason from ``report.failed[-1]`` when it holds the ``report`` passed in (a new one
    otherwise), which is also returned."""
    report = report if report is not None else IngestReport()
    start = time.perf_counter()
    for first in range(0, len(sources), BATCH_TRACKS):
        # index files are written once per batch; the tracks stay 'pending' until then
        with catalog.batch():
            for source in sources[first: first + BATCH_TRACKS]:
                status = ingest_one(source, catalog, models, report, max_seconds=max_seconds)
                if on_progress:
                    on_progress(source, status)
    report.wall_seconds = time.perf_counter() - start
    return report


def ingest_one(source: SongSource, catalog, models: Models, report: IngestReport, *,
               max_seconds: float = audio.DEFAULT_MAX_SECONDS,
               data: bytes | None = None) -> str:
    """Add one song; returns "added", "existing" or "failed" and records it in ``report``."""
    try:
        digest = content_hash(source.path) if data is None else bytes_hash(data)
        existing = catalog.track_id_for_hash(digest)
        if existing is not None:
            report.existing.append((source.path, existing))
            return "existing"
        mixture = audio.load(data if data is not None else source.path,
                             max_seconds=max_seconds, name=source.path.name)
        analysis = analyse(mixture, models)
        track_id, created = catalog.add_track(
            track_input(source, digest, len(mixture) / audio.SAMPLE_RATE, analysis, models)
        )
    except audio.AudioError as e:
        report.failed.append((source.path, str(e)))
        return "failed"
    except InputError as e:  # the analysis gave what the catalog cannot store
        report.failed.append((source.path, f"{source.path.name}: the models' output could "
                              f"not be stored ({e})"))
        return "failed"
    except OSError as e:
        report.failed.append((source.path, f"{source.path.name}: cannot read ({e.strerror})"))
        return "failed"
    report.audio_seconds += len(mixture) / audio.SAMPLE_RATE
    (report.added if created else report.existing).append((source.path, track_id))
    return "added" if created else "existing"


def track_input(source: SongSource, digest: str, duration: float, analysis: Analysis,
                models: Models):
    """The catalog's record of one analysed song."""
    from index.catalog import TrackInput, WindowInput

    windows = analysis.windows
    melody = analysis.melody_windows
    windows_in = [
        WindowInput(
            start=float(windows.starts[i]), end=float(windows.ends[i]),
            voiced=bool(analysis.voiced[i]),
            vectors={MELODY_WINDOW: melody[i]} if analysis.melodic[i] else {},
        )
        for i in range(len(windows))
    ]
    tags = [(t, s, "predicted") for t, s in
            analysis.predicted_tags(models.tagger.vocabulary, MIN_STORED_TAG_SCORE)
            if analysis.gender is None or t not in GENDER_TAGS.values()]
    if analysis.gender is not None:  # the classifier on the voice outranks the mixture tagger
        tags.append((GENDER_TAGS[analysis.gender], float(analysis.gender_prob), "predicted"))
    tags += [(t, 1.0, "user") for t in source.user_tags]
    vectors = {TAG_JOINT: analysis.tag_joint, TAG_PROB: l2_normalize(analysis.tag_probs)}
    if analysis.timbre_track is not None:
        vectors[TIMBRE_TRACK] = analysis.timbre_track
    return TrackInput(
        content_hash=digest,
        title=source.title,
        artist=source.artist,
        duration=duration,
        source_uri=str(source.path),
        windows=windows_in,
        vectors=vectors,
        arrays={PITCH_CONTOUR: analysis.contour},
        tags=tags,
        model_versions=models.versions,
    )
