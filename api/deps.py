"""Every dependency of the routes, in one place: settings, catalog and search service, the
API-key check, query parameters shared by all searches, and reading an upload within the size
limit (the middleware here refuses an oversized body before anything stores it)."""

from __future__ import annotations

import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Form, Header, Query, Request, UploadFile

from api.errors import ApiError, error_body
from recsys.search import MAX_ANY, MAX_CONDITIONS, MAX_DEPTH, SearchService
from recsys.settings import Settings

MB = 1024 * 1024
# A multipart body carries form fields and boundaries beside the file itself.
MULTIPART_SLACK = 64 * 1024
READ_BLOCK = MB


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> SearchService:
    return request.app.state.service


def get_catalog(request: Request):
    return request.app.state.service.catalog


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[SearchService, Depends(get_service)]
CatalogDep = Annotated[Any, Depends(get_catalog)]


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key",
                                            description="A key listed in RECSYS_API_KEYS.")] = None,
) -> str:
    """Writes need a key from ``RECSYS_API_KEYS``; with none configured, writes are off."""
    keys = [k for k in settings.api_keys if k]
    if not keys:
        raise ApiError(403, "writes_disabled",
                       "writes are disabled because no API key is configured; set "
                       "RECSYS_API_KEYS='[\"your-key\"]' and restart the server, then send "
                       "the key in the X-API-Key header")
    if not x_api_key:
        raise ApiError(401, "missing_api_key", "this request writes to the catalog and needs "
                       "an API key in the X-API-Key header")
    # compare_digest over every key so the time taken does not reveal a prefix
    if not any(hmac.compare_digest(x_api_key.encode(), k.encode()) for k in keys):
        raise ApiError(403, "wrong_api_key", "the X-API-Key header does not hold a valid key")
    return x_api_key


ApiKeyDep = Annotated[str, Depends(require_api_key)]


# ----- parameters shared by every search -------------------------------------------------

# ids and offsets are 64-bit integers in SQL; a larger number is a 422, not a driver error
MAX_INT64 = 2**63 - 1
FILTER_LIMITS = (f"At most {MAX_DEPTH} levels deep, {MAX_CONDITIONS} conditions and "
                 f"{MAX_ANY} `any` values; a tag the catalog does not know (GET /tags) is a "
                 "400.")


def parse_filter(raw: str | dict | None) -> dict | None:
    """A filter given as a JSON string (query parameter or form field) -> dict."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ApiError(400, "bad_filter", f"filter is not valid JSON ({e.msg} at "
                       f"character {e.pos})") from None
    except RecursionError:
        raise ApiError(400, "bad_filter", "filter is nested too deeply") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_filter", 'filter must be a JSON object, e.g. '
                       '{"must": [{"key": "artist_id", "match": {"value": 3}}]}')
    return value


@dataclass
class Paging:
    limit: int
    offset: int
    filter: dict | None
    score_threshold: float | None

    def kwargs(self) -> dict:
        return {"limit": self.limit, "offset": self.offset, "filter": self.filter,
                "score_threshold": self.score_threshold}


def paging(
    limit: Annotated[int, Query(ge=1, le=100, description="How many results (1-100).")] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000, description="Results to skip.")] = 0,
    filter: Annotated[str | None, Query(
        description='Qdrant-like filter as a JSON string, e.g. '
                    '`{"must": [{"key": "artist_id", "match": {"value": 3}}]}`. '
                    + FILTER_LIMITS)] = None,
    score_threshold: Annotated[float | None, Query(
        ge=-1.0, le=1.0, description="Drop results scoring below this.")] = None,
) -> Paging:
    return Paging(limit, offset, parse_filter(filter), score_threshold)


PagingDep = Annotated[Paging, Depends(paging)]


def list_paging(
    limit: Annotated[int, Query(ge=1, le=100, description="How many items (1-100).")] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64, description="Items to skip.")] = 0,
    filter: Annotated[str | None, Query(
        description='Qdrant-like filter as a JSON string, e.g. '
                    '`{"must": [{"key": "gender", "match": {"value": "female"}}]}`. '
                    + FILTER_LIMITS)] = None,
) -> Paging:
    """Paging of plain listings, which have no scores to threshold."""
    return Paging(limit, offset, parse_filter(filter), None)


ListPagingDep = Annotated[Paging, Depends(list_paging)]


# ----- uploads ---------------------------------------------------------------------------


def read_upload(file: UploadFile, settings: Settings) -> bytes:
    """The upload's bytes, counted block by block so no more than the limit is ever read."""
    limit = int(settings.max_upload_mb * MB)
    chunks, size = [], 0
    file.file.seek(0)
    while block := file.file.read(READ_BLOCK):
        size += len(block)
        if size > limit:
            raise too_large(settings)
        chunks.append(block)
    if size == 0:
        raise ApiError(422, "audio_empty", f"{file.filename or 'upload'}: the file is empty")
    return b"".join(chunks)


def too_large(settings: Settings) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"the upload is larger than the {settings.max_upload_mb:g} MB limit "
                    f"(RECSYS_MAX_UPLOAD_MB)")


def decode_clip(data: bytes, settings: Settings, name: str | None = None) -> np.ndarray:
    """Upload bytes -> 16 kHz mono float32; bad audio raises ``AudioError`` (answered 422)."""
    from embeddings import audio

    return audio.load(data, max_seconds=settings.max_audio_seconds,
                      min_seconds=settings.min_audio_seconds, name=name or "upload")


def store_upload(data: bytes, digest: str, filename: str | None, settings: Settings) -> Path:
    """Keep an uploaded song under ``data_dir/uploads`` (temp file + rename) so the catalog's
    source URI points at a file the audio route can stream."""
    suffix = Path(filename or "").suffix.lower()
    if not suffix or len(suffix) > 8 or not suffix[1:].isalnum():
        suffix = ".bin"
    folder = settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if path.exists():
        return path.resolve()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.resolve()


class UploadLimit:
    """ASGI middleware: refuses a request body over the upload limit with 413.

    It checks ``Content-Length`` first, then counts the bytes as they arrive (a chunked
    body has no length), so an oversized body is never spooled to disk or memory."""

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes  # callable -> int, so tests can change settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_json(send, 400, "bad_request", "Content-Length is not a number")
                return
            if declared > limit:
                await _send_json(send, 413, "payload_too_large", self._message(limit))
                return
        received = 0
        exceeded = False

        async def counted_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    # the app sees the client go away and stops reading
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await _send_json(send, 413, "payload_too_large", self._message(limit))

    @staticmethod
    def _message(limit: int) -> str:
        return (f"the request body is larger than the {limit / MB:.0f} MB upload limit "
                f"(RECSYS_MAX_UPLOAD_MB)")


async def _send_json(send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def form_paging(
    limit: Annotated[int, Form(ge=1, le=100, description="How many results (1-100).")] = 10,
    offset: Annotated[int, Form(ge=0, le=10_000, description="Results to skip.")] = 0,
    filter: Annotated[str | None, Form(description="Qdrant-like filter as JSON text. "
                                       + FILTER_LIMITS)] = None,
    score_threshold: Annotated[float | None, Form(
        ge=-1.0, le=1.0, description="Drop results scoring below this.")] = None,
) -> Paging:
    """The search parameters sent as form fields beside an uploaded clip."""
    return Paging(limit, offset, parse_filter(filter), score_threshold)


FormPagingDep = Annotated[Paging, Depends(form_paging)]
