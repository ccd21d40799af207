"""`GET /health`: the service answers and the catalog can be read."""

from fastapi import APIRouter

from api.deps import CatalogDep, SettingsDep
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Service health and catalog size")
def health(catalog: CatalogDep, settings: SettingsDep) -> Health:
    """Counts the catalog's tracks and artists, which also proves the database answers."""
    return Health(status="ok", tracks=catalog.count_tracks(), artists=catalog.count_artists(),
                  writes_enabled=any(settings.api_keys))
