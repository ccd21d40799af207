"""Qdrant-like JSON filters over tracks, resolved in SQL to a set of track ids.

A filter is ``{"must": [...], "should": [...], "must_not": [...]}`` (any of the three);
each condition is either a nested filter or ``{"key": K, "match": {"value": v}}``,
``{"key": K, "match": {"any": [v, ...]}}`` or ``{"key": K, "range": {"gte": x, "lt": y}}``.

Keys: ``tag`` and ``gender`` (optional ``"min_score"``, default 0.5, since predicted tags
carry a score for every tag), ``gender`` (``"male"``/``"female"``: the tracks' ``male vocal`` /
``female vocal`` tag), ``artist`` (name), ``artist_id``, ``track_id``, ``title``,
``duration`` (seconds, match or range).
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from sqlalchemy import and_, exists, false, not_, or_, select, true
from sqlalchemy.sql import ColumnElement, Select

from index.models import Artist, Tag, Track, TrackTag

DEFAULT_MIN_SCORE = 0.5
# bounds that keep a filter's SQL within what the databases accept (SQLite refuses an
# expression tree deeper than 1000) and its validation within Python's recursion limit
MAX_DEPTH = 8
MAX_CONDITIONS = 200
MAX_ANY = 1000
INT64 = 2**63
GENDER_TAGS = {"male": "male vocal", "female": "female vocal"}
_KEYS = ("tag", "gender", "artist", "artist_id", "track_id", "title", "duration")
_RANGE_OPS = ("gt", "gte", "lt", "lte")


class FilterError(ValueError):
    """A filter that is not valid; the message says where and why."""


def parse_filter(filter: dict | str | None) -> dict | None:
    """Validate a filter (a dict or its JSON text); returns the dict, or None for no filter."""
    if filter is None:
        return None
    try:
        # a copy of a dict: validation normalises clauses in place
        filter = json.loads(filter) if isinstance(filter, str) else copy.deepcopy(filter)
    except json.JSONDecodeError as e:
        raise FilterError(f"filter is not valid JSON: {e}") from None
    except RecursionError:
        raise FilterError(f"filter: nested more than {MAX_DEPTH} levels deep") from None
    _check_filter(filter, "filter", _Budget())
    return filter


def filter_tags(f: dict | None) -> set[str]:
    """The tag names the ``tag`` conditions of a parsed filter ask for, at any depth."""
    names: set[str] = set()
    for conds in (f or {}).values():
        for c in conds:
            if "key" not in c:
                names |= filter_tags(c)
            elif c["key"] == "tag" and "match" in c:
                m = c["match"]
                names.update(m["any"] if "any" in m else [m["value"]])
    return names


def shown(names, at_most: int = 10) -> list[str]:
    """A few of ``names``, each cut to 80 characters: for an error message."""
    return [n if len(n) <= 80 else n[:80] + "..." for n in list(names)[:at_most]]


def track_condition(filter: dict | str | None) -> ColumnElement[bool]:
    """A SQL condition on ``Track`` equivalent to the filter (``true()`` for none)."""
    f = parse_filter(filter)
    return true() if f is None else _filter_sql(f)


def track_ids_query(filter: dict | str | None) -> Select:
    """``SELECT tracks.id`` of the tracks the filter lets through."""
    return select(Track.id).where(track_condition(filter))


# ---- validation ---------------------------------------------------------------------------

class _Budget:
    """Conditions left to a filter being checked, across all its nesting."""

    def __init__(self) -> None:
        self.conditions = MAX_CONDITIONS

    def spend(self, where: str) -> None:
        self.conditions -= 1
        if self.conditions < 0:
            raise FilterError(f"{where}: a filter holds at most {MAX_CONDITIONS} conditions")


def _check_filter(f: Any, where: str, budget: _Budget, depth: int = 1) -> None:
    if depth > MAX_DEPTH:
        raise FilterError(f"{where}: filters nest at most {MAX_DEPTH} levels deep")
    if not isinstance(f, dict):
        raise FilterError(f"{where}: expected an object with must / should / must_not")
    unknown = set(f) - {"must", "should", "must_not"}
    if unknown:
        raise FilterError(f"{where}: unknown field(s) {sorted(unknown)}; "
                          "use must, should, must_not")
    if not f:
        raise FilterError(f"{where}: empty filter; give must, should or must_not")
    for clause, conds in f.items():
        if isinstance(conds, dict):
            conds = [conds]
            f[clause] = conds
        if not isinstance(conds, list):
            raise FilterError(f"{where}.{clause}: expected a list of conditions")
        for i, cond in enumerate(conds):
            _check_condition(cond, f"{where}.{clause}[{i}]", budget, depth)


def _check_condition(c: Any, where: str, budget: _Budget, depth: int) -> None:
    budget.spend(where)
    if not isinstance(c, dict):
        raise FilterError(f"{where}: expected a condition object")
    if "key" not in c:
        if set(c) & {"must", "should", "must_not"}:
            return _check_filter(c, where, budget, depth + 1)
        raise FilterError(f"{where}: a condition needs a \"key\" (one of {', '.join(_KEYS)})")
    key = c["key"]
    if key not in _KEYS:
        raise FilterError(f"{where}.key: unknown key {key!r}; use one of {', '.join(_KEYS)}")
    unknown = set(c) - {"key", "match", "range", "min_score"}
    if unknown:
        raise FilterError(f"{where}: unknown field(s) {sorted(unknown)}")
    if ("match" in c) == ("range" in c):
        raise FilterError(f"{where}: give exactly one of \"match\" or \"range\"")
    if "min_score" in c:
        if key not in ("tag", "gender"):
            raise FilterError(f"{where}.min_score: only \"tag\" and \"gender\" take a "
                              "min_score")
        if not _is_number(c["min_score"]):
            raise FilterError(f"{where}.min_score: expected a number")
    if "range" in c:
        if key not in ("duration", "artist_id", "track_id"):
            raise FilterError(f"{where}.range: key {key!r} takes a match, not a range")
        r = c["range"]
        if not isinstance(r, dict) or not r or set(r) - set(_RANGE_OPS):
            raise FilterError(f"{where}.range: expected an object with gt, gte, lt and/or lte")
        for op, v in r.items():
            if not _is_number(v):
                raise FilterError(f"{where}.range.{op}: expected a number, got {v!r}")
        return None
    m = c["match"]
    if not isinstance(m, dict) or len(m) != 1 or next(iter(m)) not in ("value", "any"):
        raise FilterError(f"{where}.match: expected {{\"value\": ...}} or {{\"any\": [...]}}")
    values = m["any"] if "any" in m else [m["value"]]
    if "any" in m and (not isinstance(values, list) or not values):
        raise FilterError(f"{where}.match.any: expected a non-empty list")
    if len(values) > MAX_ANY:
        raise FilterError(f"{where}.match.any: at most {MAX_ANY} values")
    for v in values:
        _check_value(key, v, f"{where}.match")
    return None


def _check_value(key: str, v: Any, where: str) -> None:
    if key in ("artist_id", "track_id"):
        if not isinstance(v, int) or isinstance(v, bool) or not -INT64 <= v < INT64:
            raise FilterError(f"{where}: {key} takes integer ids (64-bit), got {v!r}")
    elif key == "duration":
        if not _is_number(v):
            raise FilterError(f"{where}: duration takes a number of seconds, got {v!r}")
    elif key == "gender":
        if not isinstance(v, str) or v not in GENDER_TAGS:
            raise FilterError(f"{where}: gender is \"male\" or \"female\", got {v!r}")
    elif not isinstance(v, str) or not v:
        raise FilterError(f"{where}: {key} takes a non-empty string, got {v!r}")


def _is_number(v: Any) -> bool:
    """A finite int or float a database column can compare with (a 64-bit int at most)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -INT64 <= v < INT64
    return isinstance(v, float) and math.isfinite(v)


# ---- SQL ----------------------------------------------------------------------------------

def _filter_sql(f: dict) -> ColumnElement[bool]:
    parts = []
    if "must" in f:
        parts.append(and_(true(), *[_cond_sql(c) for c in f["must"]]))
    if "should" in f and f["should"]:
        parts.append(or_(false(), *[_cond_sql(c) for c in f["should"]]))
    if "must_not" in f:
        parts.extend(not_(_cond_sql(c)) for c in f["must_not"])
    return and_(true(), *parts)


def _cond_sql(c: dict) -> ColumnElement[bool]:
    if "key" not in c:
        return _filter_sql(c)
    key = c["key"]
    if "range" in c:
        col = {"duration": Track.duration, "artist_id": Track.artist_id,
               "track_id": Track.id}[key]
        ops = {"gt": col.__gt__, "gte": col.__ge__, "lt": col.__lt__, "lte": col.__le__}
        return and_(*[ops[op](v) for op, v in c["range"].items()])
    m = c["match"]
    values = m["any"] if "any" in m else [m["value"]]
    if key in ("tag", "gender"):
        names = values if key == "tag" else [GENDER_TAGS[v] for v in values]
        min_score = float(c.get("min_score", DEFAULT_MIN_SCORE))
        return exists().where(TrackTag.track_id == Track.id, TrackTag.tag_id == Tag.id,
                              Tag.name.in_(names), TrackTag.score >= min_score)
    if key == "artist":
        return exists().where(Artist.id == Track.artist_id, Artist.name.in_(values))
    col = {"artist_id": Track.artist_id, "track_id": Track.id, "title": Track.title,
           "duration": Track.duration}[key]
    return col.in_(values)
