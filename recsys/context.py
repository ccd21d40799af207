"""Opening the catalog and the search service from settings: the one place that wires
``index`` (storage) to ``embeddings`` (models) for the CLI, the API and the benches."""

from __future__ import annotations

from recsys.pipeline import Models
from recsys.search import SearchService
from recsys.settings import Settings, get_settings


def open_catalog(settings: Settings | None = None):
    """The catalog at the settings' database and index directory, migrated to the latest
    schema (Alembic) and with its indexes checked against SQL."""
    from index.catalog import Catalog

    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Catalog(settings.sqlalchemy_url, settings.index_dir,
                   exact_max=settings.exact_index_max, migrate=True)


def open_service(settings: Settings | None = None, catalog=None,
                 models: Models | None = None) -> SearchService:
    settings = settings or get_settings()
    catalog = catalog if catalog is not None else open_catalog(settings)
    return SearchService(catalog, models=models, models_factory=lambda: Models.load(settings),
                         hum_search=settings.hum_search)
