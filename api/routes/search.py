"""Searches: by example clip, by singer clip, by hum (multipart uploads), and by tags (JSON)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Body, File, Form, UploadFile

from api.deps import FormPagingDep, ServiceDep, SettingsDep, decode_clip, read_upload
from api.errors import ApiError
from api.schemas import ERROR_RESPONSES, UPLOAD_RESPONSES, SearchResponse, TagSearchRequest
from api.views import public_answer

router = APIRouter(prefix="/search", tags=["search"],
                   responses={**ERROR_RESPONSES, **UPLOAD_RESPONSES})

ClipFile = Annotated[UploadFile, File(description="An audio clip (wav, flac, ogg, mp3, webm...).")]


def _clip(file: UploadFile, settings):
    return decode_clip(read_upload(file, settings), settings, name=file.filename)


def _weights(raw: str | None) -> dict[str, float] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ApiError(400, "bad_weights", f"weights is not valid JSON ({e.msg})") from None
    if not isinstance(value, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
        raise ApiError(400, "bad_weights", 'weights must be a JSON object of numbers, e.g. '
                       '{"timbre": 1, "melody": 0.5, "tags": 0.5}')
    return {str(k): float(v) for k, v in value.items()}


@router.post("/example", response_model=SearchResponse, summary="Tracks that sound like a clip")
def search_example(
    service: ServiceDep,
    settings: SettingsDep,
    paging: FormPagingDep,
    file: ClipFile,
    space: Annotated[Literal["timbre", "melody", "tags", "mix"], Form(
        description="timbre (voice), melody (tune), tags (style) or mix of the three.")]
    = "timbre",
    weights: Annotated[str | None, Form(
        description='For space=mix: JSON weights, e.g. {"timbre": 1, "melody": 0.5}.')] = None,
) -> dict:
    """Query by example: the clip is separated and embedded like a catalog song, then
    matched in the chosen space. Results carry the matching window's time span."""
    parsed_weights = _weights(weights)  # a bad parameter fails before the clip is decoded
    clip = _clip(file, settings)
    answer = service.search_example(clip, space=space, weights=parsed_weights,
                                    **paging.kwargs())
    return public_answer(answer)


@router.post("/similar-singers", response_model=SearchResponse,
             summary="Singers who sound like the voice in a clip")
def search_similar_singers(service: ServiceDep, settings: SettingsDep, paging: FormPagingDep,
                           file: ClipFile) -> dict:
    """The artists closest to the clip's voice, each with the tracks that explain the match."""
    clip = _clip(file, settings)
    return public_answer(service.similar_singers(clip=clip, **paging.kwargs()))


@router.post("/hum", response_model=SearchResponse, summary="Which song goes like this hum")
def search_hum(service: ServiceDep, settings: SettingsDep, paging: FormPagingDep,
               file: ClipFile) -> dict:
    """Query by humming: key- and tempo-invariant; results carry `match_start` and
    `match_end` (seconds into the song)."""
    clip = _clip(file, settings)
    return public_answer(service.search_hum(clip, **paging.kwargs()))


@router.post("/tags", response_model=SearchResponse, summary="Tracks by tags or free text")
def search_tags(service: ServiceDep, request: Annotated[TagSearchRequest, Body()]) -> dict:
    """Tracks carrying every tag in `tags` and none in `not`; or free `text`, which is
    mapped to tags first (`understood` in the answer says how)."""
    return public_answer(service.search_tags(
        tags=request.tags, not_tags=request.not_, text=request.text,
        min_tag_score=request.min_tag_score, limit=request.limit, offset=request.offset,
        filter=request.filter, score_threshold=request.score_threshold,
    ))
