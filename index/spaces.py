"""The vector spaces the catalog knows, and which kind of owner each one holds.

A track space holds one vector per track, a window space one per window (3 s excerpt),
an artist space one per artist. An artist space is ``derived_from`` a track space: the
catalog keeps it as the L2-normalised mean of the artist's track vectors.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Space:
    name: str
    owner: str  # "track" | "window" | "artist"
    derived_from: str | None = None
    description: str = ""


SPACES: dict[str, Space] = {s.name: s for s in [
    Space("timbre-track", "track", description="singing-voice timbre of a track"),
    Space("timbre-window", "window", description="singing-voice timbre of a 3 s window"),
    Space("timbre-artist", "artist", derived_from="timbre-track",
          description="mean timbre of an artist's tracks"),
    Space("melody-window", "window", description="melody of a 3 s window"),
    Space("tag-joint", "track", description="audio in the joint audio-tag embedding space"),
    Space("tag-prob", "track", description="predicted tag probabilities, L2-normalised"),
]}


class UnknownSpaceError(ValueError):
    """A space name that is not in ``SPACES``."""


def get_space(name: str) -> Space:
    try:
        return SPACES[name]
    except KeyError:
        raise UnknownSpaceError(
            f"unknown vector space {name!r}; known: {', '.join(SPACES)}") from None


def derived_spaces(source: str) -> list[Space]:
    """The artist spaces computed from track space ``source``."""
    return [s for s in SPACES.values() if s.derived_from == source]
