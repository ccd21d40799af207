"""Artists (singers), who sings like them, and the 2-D map of singers for the page."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam

from api.deps import MAX_INT64, CatalogDep, PagingDep, ServiceDep
from api.schemas import ERROR_RESPONSES, Page, SearchResponse, SingerMap
from api.views import artist_view, found_artist, public_answer, track_view

router = APIRouter(tags=["artists"], responses=ERROR_RESPONSES)

GENDER_TAGS = {"male vocal": "male", "female vocal": "female"}
ArtistId = Annotated[int, PathParam(ge=1, le=MAX_INT64, description="Artist id.",
                                    examples=[3])]


@router.get("/artists", response_model=Page, summary="List artists")
def list_artists(
    catalog: CatalogDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many artists (1-100).")] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64, description="Artists to skip.")] = 0,
    name: Annotated[str | None, Query(max_length=255,
                                      description="Only names containing this.")] = None,
) -> Page:
    """Artists by name with their number of tracks."""
    start = time.perf_counter()
    rows = [artist_view(a) for a in catalog.list_artists(limit=limit, offset=offset,
                                                          name_contains=name)]
    total = len(catalog.list_artists(limit=10_000, name_contains=name)) if name else \
        catalog.count_artists()
    return Page(results=rows, limit=limit, offset=offset, total=total,
                took_ms=round((time.perf_counter() - start) * 1000, 2))


@router.get("/artists/{artist_id}", summary="One artist, with its tracks")
def get_artist(artist_id: ArtistId, catalog: CatalogDep) -> dict:
    artist = artist_view(found_artist(catalog, artist_id))
    artist["tracks"] = [track_view(t) for t in catalog.list_tracks(
        limit=1000, offset=0, filter={"must": [{"key": "artist_id", "match":
                                                {"value": artist_id}}]})]
    return artist


@router.get("/artists/{artist_id}/similar", response_model=SearchResponse,
            summary="Singers who sound like this artist")
def similar_artists(artist_id: ArtistId, service: ServiceDep, paging: PagingDep) -> dict:
    """Closest artists in the timbre space, each with its tracks closest to this voice
    (`payload.closest_tracks`) so a listener can hear why they match."""
    return public_answer(service.similar_singers(artist_id=artist_id, **paging.kwargs()))


@router.get("/singers/map", response_model=SingerMap, tags=["artists"],
            summary="2-D map of the singers")
def singer_map(request: Request, catalog: CatalogDep) -> SingerMap:
    """Every artist's timbre vector projected to 2-D with t-SNE (PCA below 5 artists),
    cached until the catalog changes. Close points sing alike; `gender` is the majority of
    the predicted vocal gender of the artist's tracks."""
    from recsys.pipeline import TIMBRE_ARTIST

    start = time.perf_counter()
    ids, vectors = catalog.artist_vectors(TIMBRE_ARTIST)
    # the vectors themselves are the cache key: any add or delete changes an artist's mean
    key = hashlib.sha1(ids.tobytes() + vectors.tobytes()).hexdigest()
    cache = request.app.state.map_cache
    if key not in cache:
        cache.clear()
        cache[key] = (_project(vectors), _genders(catalog))
    (coords, method), genders = cache[key]
    names = {a.id: a for a in catalog.list_artists(limit=10_000)}
    points = []
    for artist_id, (x, y) in zip(ids.tolist(), coords.tolist(), strict=True):
        a = names.get(artist_id)
        points.append({"id": artist_id, "name": a.name if a else f"artist {artist_id}",
                       "x": round(x, 3), "y": round(y, 3), "gender": genders.get(artist_id),
                       "tracks": a.n_tracks if a else None})
    return SingerMap(points=points, method=method,
                     took_ms=round((time.perf_counter() - start) * 1000, 2))


def _genders(catalog) -> dict[int, str]:
    """Artist id -> "male" / "female", by summed vocal-gender tag scores of its tracks."""
    totals: dict[int, dict[str, float]] = {}
    offset = 0
    while page := catalog.list_tracks(limit=1000, offset=offset):
        offset += len(page)
        for t in page:
            if t.artist_id is None:
                continue
            scores = totals.setdefault(t.artist_id, {"male": 0.0, "female": 0.0})
            for name, score, _ in t.tags:
                if name in GENDER_TAGS:
                    scores[GENDER_TAGS[name]] += score
    return {a: max(s, key=s.get) for a, s in totals.items() if max(s.values()) > 0}


def _project(vectors):
    """`(n, d)` -> `((n, 2), method)`: t-SNE needs more points than its perplexity."""
    import numpy as np

    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2)), "none"
    if n < 3:
        return np.array([[float(i), 0.0] for i in range(n)]), "none"
    if n < 5:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=0).fit_transform(vectors), "pca"
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), metric="cosine",
                init="pca", random_state=0)
    return tsne.fit_transform(vectors), "tsne"
