"""Where a song's artist and title come from: the corpus manifest, file tags, or folder names."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".aiff", ".aif"}


@dataclass(frozen=True)
class SongSource:
    """A file to ingest and what we know about it before listening."""

    path: Path
    title: str
    artist: str
    user_tags: tuple[str, ...] = ()


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes: the same audio file twice is one track."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bytes_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def discover(paths: list[Path]) -> list[SongSource]:
    """Files to ingest under ``paths`` (files or folders, recursive), with artist and title.

    A folder holding a corpus (``corpus.json``) contributes the mixtures of its songs with
    the manifest's names; other audio files take their tags (ffprobe) or, failing that,
    ``artist/title.ext`` folder names.
    """
    sources: list[SongSource] = []
    seen: set[Path] = set()
    for root in paths:
        root = Path(root)
        if root.is_dir() and (root / "corpus.json").exists():
            for src in _from_corpus(root):
                if src.path not in seen:
                    seen.add(src.path)
                    sources.append(src)
            continue
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
        )
        if not root.exists():
            files = [root]  # reported as a bad file by ingest, with its reason
        for path in files:
            try:
                resolved = path.resolve()
            except (OSError, RuntimeError):  # a symlink loop: ingest reports it as missing
                resolved = path.absolute()
            if resolved not in seen:
                seen.add(resolved)
                sources.append(_from_file(resolved))
    return sources


def _from_corpus(root: Path) -> list[SongSource]:
    from recsys.corpus import Corpus

    corpus = Corpus(root)
    return [
        SongSource(song.mixture, song.title, song.artist)
        for song in corpus.songs()
    ]


def _from_file(path: Path) -> SongSource:
    tags = _file_tags(path)
    title = tags.get("title") or path.stem.replace("_", " ")
    artist = tags.get("artist") or tags.get("album_artist")
    if not artist:
        artist = path.parent.name if path.parent.name else "Unknown artist"
    return SongSource(path, title.strip(), artist.strip())


def _file_tags(path: Path) -> dict[str, str]:
    ffprobe = shutil.which("ffprobe")
    if not ffprobe or not path.exists():
        return {}
    try:
        proc = subprocess.run(
            [ffprobe, "-v", "error", "-print_format", "json", "-show_format", str(path)],
            capture_output=True, timeout=30,
        )
        tags = json.loads(proc.stdout or b"{}").get("format", {}).get("tags", {})
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return {}
    return {k.lower(): str(v) for k, v in tags.items()}
