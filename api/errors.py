"""Every error the API returns is JSON: ``{"error": {"code": "...", "message": "..."}}``.

Bad requests get the right 4xx with a message meant for a person. Only a real bug reaches
the catch-all handler, which logs the traceback, counts it (tests check the count stays 0)
and answers a JSON 500 without leaking internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from embeddings.audio import AudioError
from recsys.search import SearchError

log = logging.getLogger("api")

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal_error",
}


class ApiError(Exception):
    """An error raised by the API's own code (keys, uploads, parameters)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers=None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _catalog_errors() -> dict[type[Exception], tuple[int, str]]:
    """The storage layer's typed errors and the status each one means for a client.

    Imported defensively by name so the API keeps working if storage renames one."""
    found: dict[type[Exception], tuple[int, str]] = {}
    for module, name, status, code in [
        ("index.catalog", "NotFoundError", 404, "not_found"),
        ("index.catalog", "FilterError", 400, "bad_filter"),
        ("index.filters", "FilterError", 400, "bad_filter"),
        ("index.catalog", "CatalogError", 400, "bad_request"),
        ("index.spaces", "UnknownSpaceError", 400, "unknown_space"),
        ("embeddings.text", "TextQueryError", 400, "bad_text"),
    ]:
        try:
            cls = getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type) and issubclass(cls, Exception):
            found.setdefault(cls, (status, code))
    return found


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path",
                                                                          "header", "form"))
        msg = err.get("msg", "invalid value")
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error")
            parts.append("the body is not valid JSON" + (f" ({reason})" if reason else ""))
            continue
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``; ``app.state.internal_errors`` counts real bugs."""
    app.state.internal_errors = 0

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(AudioError)
    async def audio_error(request: Request, exc: AudioError):
        return error_response(422, f"audio_{exc.code}", str(exc))

    @app.exception_handler(SearchError)
    async def search_error(request: Request, exc: SearchError):
        status = int(getattr(exc, "status", 400))
        return error_response(status, STATUS_CODES.get(status, "bad_request"), str(exc))

    for cls, (status, code) in _catalog_errors().items():
        app.add_exception_handler(cls, _fixed(status, code))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, STATUS_CODES.get(exc.status_code, "error"),
                              message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        app.state.internal_errors += 1
        log.exception("unhandled error on %s %s", request.method, request.url.path,
                      exc_info=exc)
        return error_response(500, "internal_error",
                              "the server hit a bug while answering; it has been logged")


def _fixed(status: int, code: str):
    async def handler(request: Request, exc: Exception):
        return error_response(status, code, str(exc))

    return handler
