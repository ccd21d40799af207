"""Tracks: list, read, upload (ingest), delete, stream the audio, and similar tracks."""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from api.deps import (
    MAX_INT64,
    ApiKeyDep,
    CatalogDep,
    ListPagingDep,
    PagingDep,
    ServiceDep,
    SettingsDep,
    read_upload,
    store_upload,
)
from api.errors import ApiError
from api.schemas import (
    ERROR_RESPONSES,
    UPLOAD_RESPONSES,
    WRITE_RESPONSES,
    Deleted,
    Page,
    SearchResponse,
    UploadResponse,
)
from api.views import found_track, public_answer, track_view

router = APIRouter(prefix="/tracks", tags=["tracks"], responses=ERROR_RESPONSES)

TrackId = Annotated[int, PathParam(ge=1, le=MAX_INT64, description="Track id.",
                                   examples=[12])]
MAX_USER_TAGS = 20


@router.get("", response_model=Page, summary="List tracks")
def list_tracks(catalog: CatalogDep, paging: ListPagingDep) -> Page:
    """Tracks in id order, `limit` at a time from `offset`, optionally filtered
    (e.g. `filter={"must": [{"key": "gender", "match": {"value": "female"}}]}`)."""
    start = time.perf_counter()
    rows = [track_view(t) for t in
            catalog.list_tracks(limit=paging.limit, offset=paging.offset, filter=paging.filter)]
    total = catalog.count_tracks(filter=paging.filter)
    return Page(results=rows, limit=paging.limit, offset=paging.offset, total=total,
                took_ms=round((time.perf_counter() - start) * 1000, 2))


@router.get("/{track_id}", summary="One track, with its tags")
def get_track(track_id: TrackId, catalog: CatalogDep) -> dict:
    """Title, artist, duration and tags (predicted with their score, or given by a user)."""
    return track_view(found_track(catalog, track_id))


@router.post("", response_model=UploadResponse, status_code=201, summary="Upload a song",
             responses={**WRITE_RESPONSES, **UPLOAD_RESPONSES, 200: {
                 "model": UploadResponse, "description": "The same audio is already a "
                 "track: its id, with `status` \"existing\""}})
def upload_track(
    request: Request,
    response: Response,
    catalog: CatalogDep,
    service: ServiceDep,
    settings: SettingsDep,
    _key: ApiKeyDep,
    file: Annotated[UploadFile, File(description="Audio: wav, flac, ogg, mp3, m4a, webm...")],
    title: Annotated[str | None, Form(max_length=512)] = None,
    artist: Annotated[str | None, Form(max_length=255)] = None,
    tags: Annotated[str | None, Form(
        description="Comma-separated tags given by the uploader.")] = None,
) -> UploadResponse:
    """Ingest one song: separate the voice, embed it, tag it and add it to the catalog
    (201). The same audio twice is one track: `status` is then `"existing"` (200)."""
    from recsys.ingest import IngestReport, ingest_one
    from recsys.metadata import SongSource, bytes_hash

    data = read_upload(file, settings)
    user_tags = tuple(t.strip() for t in (tags or "").split(",") if t.strip())
    if len(user_tags) > MAX_USER_TAGS or any(len(t) > 128 for t in user_tags):
        raise ApiError(422, "bad_tags", f"give at most {MAX_USER_TAGS} tags of at most "
                       "128 characters each")
    digest = bytes_hash(data)
    before = {f.resolve() for f in (settings.data_dir / "uploads").glob(f"{digest}.*")}
    path = store_upload(data, digest, file.filename, settings)
    stored_now = path not in before  # only a file this request wrote may be removed again
    name = Path(file.filename or "upload").stem.replace("_", " ").strip() or "upload"
    source = SongSource(path, (title or name).strip(), (artist or "Unknown artist").strip(),
                        user_tags)
    report = IngestReport()
    # one ingest at a time: the models are shared and the work is CPU-bound anyway
    with request.app.state.ingest_lock:
        status = ingest_one(source, catalog, service.models, report,
                            max_seconds=settings.max_audio_seconds)
    if status == "failed":
        if stored_now:
            path.unlink(missing_ok=True)
        message = report.failed[0][1] if report.failed else "the file could not be ingested"
        raise ApiError(422, "audio_rejected", message.replace(str(path.name), file.filename
                                                               or "upload"))
    track_id = (report.added or report.existing)[0][1]
    track = found_track(catalog, track_id)
    if status == "existing":
        # the same audio is already a track, from another file (a CLI ingest, or this
        # upload under another extension): the copy just stored would be read by nothing
        response.status_code = 200
        if stored_now and Path(track.source_uri or "").resolve() != path:
            path.unlink(missing_ok=True)
    request.app.state.map_cache.clear()
    return UploadResponse(id=track_id, status=status, track=track_view(track))


@router.delete("/{track_id}", response_model=Deleted, summary="Delete a track",
               responses=WRITE_RESPONSES)
def delete_track(request: Request, track_id: TrackId, catalog: CatalogDep,
                 settings: SettingsDep, _key: ApiKeyDep) -> Deleted:
    """Remove the track, its windows, vectors and tags; its artist's vector is updated."""
    track = found_track(catalog, track_id)
    if not catalog.delete_track(track_id):
        raise ApiError(404, "not_found", f"track {track_id} does not exist")
    uploads = (settings.data_dir / "uploads").resolve()
    source = Path(track.source_uri or "")
    if source.parent == uploads:  # only files this API stored itself
        source.unlink(missing_ok=True)
    request.app.state.map_cache.clear()
    return Deleted(id=track_id, deleted=True)


@router.get("/{track_id}/audio", summary="Stream the track's audio",
            response_class=FileResponse,
            responses={200: {"content": {"audio/*": {}},
                             "description": "The audio file; supports HTTP Range."},
                       206: {"description": "The requested byte range."}})
def track_audio(track_id: TrackId, catalog: CatalogDep) -> FileResponse:
    """The original file, with `Range` support so a player can seek to a matched time."""
    track = found_track(catalog, track_id)
    path = Path(track.source_uri or "")
    if not track.source_uri or not path.is_file():
        raise ApiError(404, "audio_missing", f"the audio file of track {track_id} is no "
                       "longer where it was ingested from")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type)


@router.get("/{track_id}/similar", response_model=SearchResponse,
            summary="Tracks similar to a track")
def similar_tracks(
    track_id: TrackId,
    service: ServiceDep,
    paging: PagingDep,
    space: Annotated[Literal["timbre", "melody", "tags"], Query(
        description="timbre: same kind of voice; melody: same tune; tags: same style.")]
    = "timbre",
) -> dict:
    """The closest catalog tracks in one space (the track itself is left out)."""
    return public_answer(service.similar_tracks(track_id, space=space, **paging.kwargs()))
