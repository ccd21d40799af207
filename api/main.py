"""The FastAPI application: routes, error handlers, upload limit and the web page at ``/``.

``create_app(settings, service)`` builds it around one :class:`recsys.search.SearchService`
(and its catalog); ``serve(settings, host, port)`` opens the catalog, loads the models once
and runs uvicorn.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import errors
from api.deps import MB, MULTIPART_SLACK, UploadLimit
from recsys.settings import Settings, get_settings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("api")

DESCRIPTION = """
Vocal-aware music search over your own catalog:

* **who sings like this?** `GET /artists/{id}/similar`, `POST /search/similar-singers`
* **what sounds like this?** `POST /search/example`, `GET /tracks/{id}/similar`
* **find songs tagged ...** `POST /search/tags` (AND, NOT, free text)
* **which song goes like this hum?** `POST /search/hum`

Searches take `limit` (1-100), `offset`, `filter` (Qdrant-like JSON) and `score_threshold`,
and answer `{"results": [{"id", "score", "payload"}], "took_ms"}`. Errors are
`{"error": {"code", "message"}}` with a 4xx status. Writes need an `X-API-Key` header
holding one of `RECSYS_API_KEYS`.
"""

TAGS = [
    {"name": "health", "description": "Is the service up."},
    {"name": "tracks", "description": "The catalog's tracks: list, read, upload, delete, play."},
    {"name": "artists", "description": "Artists (singers) and who sings like them."},
    {"name": "search", "description": "Query by example, by humming, by singer and by tags."},
    {"name": "tags", "description": "The tag vocabulary."},
]


def create_app(settings: Settings | None = None, service=None) -> FastAPI:
    """The app over ``service`` (a ``SearchService``); opened from ``settings`` if not given."""
    from api.routes import artists, health, search, tags, tracks

    settings = settings or get_settings()
    app = FastAPI(
        title="recsys",
        version="0.1.0",
        summary="Vocal-aware music search and recommendation.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        # Swagger UI and ReDoc load from a CDN; /docs is our own offline reader instead
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.service_lock = threading.Lock()
    app.state.ingest_lock = threading.Lock()
    app.state.map_cache = {}
    if service is None:
        _open_service(app)
    errors.install(app)
    app.add_middleware(
        UploadLimit,
        max_bytes=lambda: int(app.state.settings.max_upload_mb * MB) + MULTIPART_SLACK,
    )
    for module in (health, tracks, artists, search, tags):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return FileResponse(STATIC / "docs.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _open_service(app: FastAPI) -> None:
    from recsys.context import open_service

    app.state.service = open_service(app.state.settings)


def _one_thread_per_query() -> None:
    """A server runs many small searches at once: parallelism comes from concurrent requests,
    and FAISS's OpenMP threads inside each tiny search only wait on each other (measured on
    2 loaded cores: similar singers 46 ms with one thread vs 279 ms with two)."""
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(1)


def serve(settings: Settings | None = None, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info") -> None:
    """Open the catalog (its indexes are checked against SQL), load the models once, and
    serve the API and the page until interrupted."""
    import uvicorn

    from recsys.context import open_service

    settings = settings or get_settings()
    _one_thread_per_query()
    service = open_service(settings)
    _ = service.models  # load every model now, not on the first request
    app = create_app(settings, service)
    print(f"serving on http://{host}:{port}/  (API docs at /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
