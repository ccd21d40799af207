"""Reading (and writing) a demo corpus's manifest files.

A corpus directory ``CORPUS`` holds::

    corpus.json      seed, counts, tag vocabulary, version, build parameters (written last:
                     its presence marks a complete corpus)
    songs.jsonl      one song per line
    singers.jsonl    one singer (voice + persona) per line
    queries.jsonl    one hum query per line
    songs/<song_id>/{mixture,vocals,accompaniment}.wav, songs/<song_id>/stems/<name>.wav
    queries/<query_id>.wav

Paths inside the manifests are relative to ``CORPUS``; the reader turns them into absolute
paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test", "test_seen")


class CorpusError(ValueError):
    """A corpus directory is missing, incomplete or malformed."""


@dataclass(frozen=True)
class Song:
    """One synthetic song; ``notes`` are the notes actually sung (onset s, offset s, MIDI)."""

    song_id: str
    title: str
    artist: str
    singer_id: str | None
    voice: str | None
    gender: str | None
    tags: list[str]
    instrumental: bool
    split: str
    duration: float
    tune_id: str
    collection: str
    mixture: Path
    vocals: Path
    accompaniment: Path
    stems: dict[str, Path]
    notes: list[tuple[float, float, float]]
    style: str = ""
    tempo: float = 0.0
    key: str = ""
    persona: dict = field(default_factory=dict)
    melody_instrument: str | None = None
    extra: dict = field(default_factory=dict)  # any other manifest fields (mix levels, ...)


@dataclass(frozen=True)
class Singer:
    """A voice with a persona; ``split`` is "train" for training singers, "test" for unseen."""

    singer_id: str
    name: str
    voice: str
    gender: str
    language: str
    persona: dict
    split: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    """A hummed/sung imitation of ``song_id`` between ``start_s`` and ``end_s`` of that song."""

    query_id: str
    song_id: str
    path: Path
    start_s: float
    end_s: float
    voice: str
    params: dict
    split: str
    singer_id: str | None = None
    duration: float = 0.0
    notes: list[tuple[float, float, float]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _known(cls, r: dict) -> dict:
    """Split a manifest row into the dataclass's fields and ``extra`` (forward compatible)."""
    names = {f.name for f in fields(cls)}
    out = {k: v for k, v in r.items() if k in names and k != "extra"}
    out["extra"] = {k: v for k, v in r.items() if k not in names}
    return out


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise CorpusError(f"{path} is missing; is this a corpus built by `recsys corpus build`?")
    rows = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{n} is not valid JSON: {e.msg}") from None
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)} or None")


class Corpus:
    """Read-only view of a built corpus.

    >>> c = Corpus("/work/corpus")
    >>> songs = c.songs(split="train")
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        meta_path = self.root / "corpus.json"
        if not meta_path.exists():
            raise CorpusError(
                f"{self.root} is not a complete corpus (no corpus.json); build one with "
                "`recsys corpus build --out DIR`"
            )
        try:
            self.meta: dict = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise CorpusError(f"{meta_path} is not valid JSON: {e.msg}") from None
        if self.meta.get("version") != MANIFEST_VERSION:
            raise CorpusError(
                f"{meta_path} has manifest version {self.meta.get('version')!r}; "
                f"this reader understands {MANIFEST_VERSION}"
            )
        try:
            self._singers = [Singer(**_known(Singer, r))
                             for r in _read_jsonl(self.root / "singers.jsonl")]
            self._songs = [self._song(r) for r in _read_jsonl(self.root / "songs.jsonl")]
            self._queries = [self._query(r) for r in _read_jsonl(self.root / "queries.jsonl")]
        except (KeyError, TypeError) as e:
            raise CorpusError(f"{self.root}: malformed manifest row ({e})") from None
        self._by_id = {s.song_id: s for s in self._songs}

    @property
    def vocabulary(self) -> list[str]:
        """The tag vocabulary, in a fixed order (column order for tag matrices)."""
        return list(self.meta["vocabulary"])

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    def songs(self, split: str | None = None) -> list[Song]:
        _check_split(split)
        return [s for s in self._songs if split is None or s.split == split]

    def song(self, song_id: str) -> Song:
        try:
            return self._by_id[song_id]
        except KeyError:
            raise CorpusError(f"no song {song_id!r} in {self.root}") from None

    def singers(self, split: str | None = None) -> list[Singer]:
        if split is not None and split not in ("train", "test"):
            raise CorpusError(f"singer split is 'train' or 'test', not {split!r}")
        return [s for s in self._singers if split is None or s.split == split]

    def queries(self, split: str | None = None) -> list[Query]:
        _check_split(split)
        return [q for q in self._queries if split is None or q.split == split]

    def __len__(self) -> int:
        return len(self._songs)

    def __repr__(self) -> str:
        return f"Corpus({str(self.root)!r}, songs={len(self._songs)}, queries={len(self._queries)})"

    def _song(self, r: dict) -> Song:
        r = dict(r)
        for key in ("mixture", "vocals", "accompaniment"):
            r[key] = self.root / r[key]
        r["stems"] = {k: self.root / v for k, v in r["stems"].items()}
        r["notes"] = [tuple(n) for n in r["notes"]]
        return Song(**_known(Song, r))

    def _query(self, r: dict) -> Query:
        r = dict(r)
        r["path"] = self.root / r["path"]
        r["notes"] = [tuple(n) for n in r.get("notes", [])]
        return Query(**_known(Query, r))


def extension_songs(corpus: Corpus, extra: Corpus, split: str | None) -> list[Song]:
    """Songs of another corpus that may join ``corpus``' ``split`` for training: ``extra``'s
    own ``split`` songs (every song when ``split`` is None), less any sung by one of
    ``corpus``' test singers or set to one of ``corpus``' tunes, so that nothing of
    ``corpus``' test split is heard in training."""
    if extra.vocabulary != corpus.vocabulary:
        raise CorpusError(f"{extra.root} has another tag vocabulary than {corpus.root}")
    test_singers = {s.singer_id for s in corpus.singers("test")}
    tunes = {s.tune_id for s in corpus.songs()}
    return [s for s in extra.songs(split)
            if s.singer_id not in test_singers and s.tune_id not in tunes]
