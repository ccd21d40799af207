"""The catalog's records as JSON for clients, and the 404 every unknown id gets."""

from __future__ import annotations

from typing import Any

from api.errors import ApiError


def track_view(record) -> dict[str, Any]:
    """A ``TrackRecord`` as the API shows it (the server-side file path stays private)."""
    return {
        "id": record.id,
        "title": record.title,
        "artist": record.artist,
        "artist_id": record.artist_id,
        "duration": round(float(record.duration), 3),
        "status": record.status,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "n_windows": record.n_windows,
        "tags": [{"name": n, "score": round(float(s), 4), "source": src}
                 for n, s, src in record.tags],
        "audio_url": f"/tracks/{record.id}/audio",
    }


def artist_view(record) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "n_tracks": record.n_tracks}


def found_track(catalog, track_id: int):
    record = catalog.get_track(track_id)
    if record is None:
        raise ApiError(404, "not_found", f"track {track_id} does not exist")
    return record


def found_artist(catalog, artist_id: int):
    record = catalog.get_artist(artist_id)
    if record is None:
        raise ApiError(404, "not_found", f"artist {artist_id} does not exist")
    return record


def public_answer(answer) -> dict[str, Any]:
    """A ``SearchAnswer`` as JSON, without server-side file paths in the payloads."""
    out = answer.as_dict()
    for result in out["results"]:
        result["payload"].pop("source_uri", None)
    return out
