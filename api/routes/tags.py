"""`GET /tags`: the vocabulary a search may use, with how many tracks carry each tag."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CatalogDep, ServiceDep
from api.schemas import TagsResponse

router = APIRouter(tags=["tags"])


@router.get("/tags", response_model=TagsResponse, summary="Tag vocabulary with counts")
def list_tags(
    catalog: CatalogDep,
    service: ServiceDep,
    min_score: Annotated[float, Query(ge=0.0, le=1.0, description=(
        "Count a track for a tag when its score is at least this."))] = 0.5,
) -> TagsResponse:
    """Every tag of the tagger's vocabulary and of user uploads, most used first."""
    counts = dict(catalog.tags(min_score=min_score))
    vocabulary = list(service.models.tagger.vocabulary)
    names = vocabulary + [t for t in counts if t not in vocabulary]
    tags = sorted(({"name": t, "count": int(counts.get(t, 0))} for t in names),
                  key=lambda t: (-t["count"], t["name"]))
    return TagsResponse(tags=tags, vocabulary=vocabulary)
