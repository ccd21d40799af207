"""Request and response models of the API, with the examples the OpenAPI page shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TRACK_EXAMPLE = {
    "id": 12, "title": "The Lark in the Clear Air", "artist": "Kal Baritone", "artist_id": 3,
    "duration": 31.5, "status": "ready",
    "tags": [{"name": "male vocal", "score": 0.93, "source": "predicted"},
             {"name": "piano", "score": 0.81, "source": "predicted"}],
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable name of the error.")
    message: str = Field(description="What went wrong, for a person.")


class ErrorResponse(BaseModel):
    error: ErrorDetail

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": {"code": "not_found", "message": "track 999 does not exist"}}]})


class Health(BaseModel):
    status: str = Field(description='"ok" when the catalog answers.')
    tracks: int
    artists: int
    writes_enabled: bool = Field(description="Whether an API key is configured.")

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "tracks": 120, "artists": 16, "writes_enabled": True}]})


class Result(BaseModel):
    id: int = Field(description="Track or artist id.")
    score: float = Field(description="Similarity; higher is closer.")
    payload: dict[str, Any] = Field(description="What the catalog knows about the hit, plus "
                                    "match details (e.g. match_start / match_end seconds).")


class SearchResponse(BaseModel):
    results: list[Result]
    took_ms: float
    message: str | None = Field(None, description="Set when nothing is close enough.")
    understood: dict[str, Any] | None = Field(
        None, description="For free text: the tags and NOT tags it was understood as.")

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "results": [{"id": 12, "score": 0.87, "payload": {
            "title": "The Lark in the Clear Air", "artist": "Kal Baritone", "artist_id": 3,
            "match_start": 4.5, "match_end": 13.2}}],
        "took_ms": 8.1}]})


MAX_QUERY_TAGS = 50  # each tag is one more condition in the search's SQL


class TagSearchRequest(BaseModel):
    tags: list[str] = Field(default_factory=list, max_length=MAX_QUERY_TAGS,
                            description="Every one is required (AND).")
    not_: list[str] = Field(default_factory=list, alias="not", max_length=MAX_QUERY_TAGS,
                            description="None of these may be present (NOT).")
    text: str | None = Field(None, max_length=500,
                             description="Free text, mapped to tags by a sentence model.")
    limit: int = Field(10, ge=1, le=100)
    offset: int = Field(0, ge=0, le=10_000)
    filter: dict[str, Any] | None = Field(None, description="Qdrant-like filter.")
    score_threshold: float | None = Field(None, ge=-1.0, le=1.0)
    min_tag_score: float = Field(0.5, ge=0.0, le=1.0,
                                 description="A track carries a tag at or above this score.")

    model_config = ConfigDict(populate_by_name=True, extra="forbid", json_schema_extra={
        "examples": [
            {"tags": ["female vocal", "piano"], "not": ["drums"], "limit": 10},
            {"text": "a calm piano song with a woman singing"},
        ]})


class TagOut(BaseModel):
    name: str
    count: int = Field(description="Tracks carrying the tag.")


class TagsResponse(BaseModel):
    tags: list[TagOut]
    vocabulary: list[str] = Field(description="Every tag a search may use.")

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"tags": [{"name": "piano", "count": 40}, {"name": "female vocal", "count": 55}],
         "vocabulary": ["piano", "female vocal", "drums"]}]})


class Page(BaseModel):
    results: list[dict[str, Any]]
    limit: int
    offset: int
    total: int | None = Field(None, description="How many items match, when known.")
    took_ms: float

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"results": [TRACK_EXAMPLE], "limit": 10, "offset": 0, "total": 120, "took_ms": 2.3}]})


class UploadResponse(BaseModel):
    id: int
    status: str = Field(description='"added", or "existing" when the same audio was there.')
    track: dict[str, Any]

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": 121, "status": "added", "track": TRACK_EXAMPLE}]})


class Deleted(BaseModel):
    id: int
    deleted: bool

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 12, "deleted": True}]})


class MapPoint(BaseModel):
    id: int
    name: str
    x: float
    y: float
    gender: str | None = Field(None, description='"male", "female" or null (unknown).')
    tracks: int | None = None


class SingerMap(BaseModel):
    points: list[MapPoint]
    method: str = Field(description='"tsne", "pca" (too few artists for t-SNE) or "none".')
    took_ms: float

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "points": [{"id": 3, "name": "Kal Baritone", "x": -4.2, "y": 10.3, "gender": "male",
                    "tracks": 8}], "method": "tsne", "took_ms": 1.2}]})


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad parameter or filter."},
    404: {"model": ErrorResponse, "description": "Unknown id."},
    422: {"model": ErrorResponse, "description": "Invalid request or undecodable audio."},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No X-API-Key header."},
    403: {"model": ErrorResponse, "description": "Wrong key, or no key configured."},
}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Upload over RECSYS_MAX_UPLOAD_MB."},
}
