"""Opening the catalog and the search service from settings: the one place that wires
``index`` (storage) to ``embeddings`` (models) for the CLI, the API and the benches."""

from __future__ import annotations

from recsys.pipeline import Models
from recsys.search import SearchService
from recsys.settings import Settings, get_settings


class NoCatalogError(LookupError):
    """A command that only reads the catalog was pointed where there is none (a mistyped
    ``RECSYS_DATA_DIR``, say): said, rather than an empty catalog made there."""


def require_catalog(settings: Settings) -> None:
    """Raise ``NoCatalogError`` when the settings name a SQLite catalog file that does not
    exist (a server database is always there to be connected to)."""
    path = settings.sqlite_path
    if path is not None and path.parent.exists() and not path.parent.is_dir():
        raise NoCatalogError(f"cannot open the catalog: the data directory {path.parent} is a "
                             "file")
    if path is not None and not path.exists():
        raise NoCatalogError(f"no catalog at {path}: add songs with `recsys ingest` (or make "
                             "an empty one with `recsys db upgrade`), or set RECSYS_DATA_DIR "
                             "to the folder of an existing catalog")


def open_catalog(settings: Settings | None = None, create: bool = True):
    """The catalog at the settings' database and index directory, migrated to the latest
    schema (Alembic) and with its indexes checked against SQL. With ``create=False`` a
    missing SQLite catalog raises ``NoCatalogError`` instead of being made empty."""
    from index.catalog import Catalog

    settings = settings or get_settings()
    if not create:
        require_catalog(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Catalog(settings.sqlalchemy_url, settings.index_dir,
                   exact_max=settings.exact_index_max, migrate=True)


def open_service(settings: Settings | None = None, catalog=None,
                 models: Models | None = None, create: bool = True) -> SearchService:
    """The search service over the settings' catalog (``create`` as in ``open_catalog``)."""
    settings = settings or get_settings()
    catalog = catalog if catalog is not None else open_catalog(settings, create=create)
    return SearchService(catalog, models=models, models_factory=lambda: Models.load(settings),
                         hum_search=settings.hum_search)
