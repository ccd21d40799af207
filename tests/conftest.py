"""Session fixtures shared by the service and API tests: a tiny corpus built by the real
builder, ingested into a temporary catalog with the shipped models."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_SONGS = 12
TINY_SEED = 3
TINY_SECONDS = 12.0


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 12-song corpus (two singers, one instrumental song, hum queries), built once."""
    from recsys.corpus.build import BuildParams, build

    out = tmp_path_factory.mktemp("tiny-corpus") / "corpus"
    build(out, BuildParams(songs=TINY_SONGS, seed=TINY_SEED, song_seconds=TINY_SECONDS),
          workers=2)
    return out


@dataclass
class Ingested:
    settings: object
    catalog: object
    service: object
    corpus: object
    report: object

    def track_id(self, song) -> int:
        """The catalog id of a corpus song."""
        from recsys.metadata import content_hash

        return self.catalog.track_id_for_hash(content_hash(song.mixture))


@pytest.fixture(scope="session")
def ingested(tiny_corpus, tmp_path_factory) -> Ingested:
    """The tiny corpus ingested into a fresh SQLite catalog with the default models."""
    from recsys.context import open_catalog
    from recsys.corpus import Corpus
    from recsys.ingest import ingest_paths
    from recsys.metadata import discover
    from recsys.pipeline import Models
    from recsys.search import SearchService
    from recsys.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("catalog"), api_keys=["test-key"])
    catalog = open_catalog(settings)
    models = Models.load(settings)
    report = ingest_paths(discover([tiny_corpus]), catalog, models)
    assert not report.failed, report.failed
    service = SearchService(catalog, models=models)
    return Ingested(settings, catalog, service, Corpus(tiny_corpus), report)
