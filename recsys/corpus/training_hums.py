"""Extra hum queries for training (and validating) the melody encoder.

A built corpus holds about one hum query per song: far too few to teach an encoder that
a hum by another voice, in another key and tempo, is the same tune. This module renders
more with the corpus' own generator (:func:`recsys.corpus.hum.make_query`: another voice,
transposition, tempo change, timing jitter, wrong notes, breaths, noise), from the notes
each song's singer sang, and caches them as WAV + JSON.

Only songs of the ``train`` and ``val`` splits can be used: the test splits' tunes must
stay unseen by training so that the QBH bench scores tunes the encoder never heard.
The seeds are disjoint from the corpus build's (which seeds ``[seed, song index, 2, j]``),
so no generated hum repeats a corpus query.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.corpus.manifest import Corpus, CorpusError, write_json

ALLOWED_SPLITS = ("train", "val")
SEED_TAG = 7_2026  # namespaces these seeds away from the corpus build's
VERSION = 1


class TrainingHumError(CorpusError):
    """Hums asked for a split whose tunes must stay unseen, or for an empty split."""


@dataclass(frozen=True)
class TrainingHum:
    """One generated hum of ``song_id``: audio file, its notes (hum time) and the span of
    the song it imitates, from song note ``first_note`` on."""

    path: Path
    song_id: str
    split: str
    start_s: float
    end_s: float
    first_note: int
    notes: list[tuple[float, float, float]]
    voice: str


def _song_number(song_id: str) -> int:
    return int(hashlib.sha1(song_id.encode()).hexdigest()[:8], 16)


def cache_dir(cache: Path, corpus: Corpus) -> Path:
    """Folder of one corpus's generated hums (song ids repeat across corpora)."""
    key = f"{corpus.root}:{corpus.seed}:{VERSION}"
    return Path(cache) / hashlib.sha1(key.encode()).hexdigest()[:10]


def generate(corpus: Corpus, split: str, per_song: int, cache: Path,
             progress: Callable[[int, int], None] | None = None,
             song_ids: set[str] | None = None) -> list[TrainingHum]:
    """``per_song`` hums of every song with vocals in ``split`` (train or val; only those
    in ``song_ids`` if given), rendered once and then read from ``cache``. Deterministic:
    the corpus seed, the song id and the hum number fix every choice."""
    from embeddings import audio
    from recsys.corpus.hum import make_query

    if split not in ALLOWED_SPLITS:
        raise TrainingHumError(
            f"training hums come from the {' or '.join(ALLOWED_SPLITS)} split only, not "
            f"{split!r}: the test tunes must stay unseen by training")
    songs = [s for s in corpus.songs(split) if not s.instrumental and s.notes
             and (song_ids is None or s.song_id in song_ids)]
    if per_song < 0:
        raise TrainingHumError(f"per_song must be >= 0, got {per_song}")
    folder = cache_dir(cache, corpus) / split
    folder.mkdir(parents=True, exist_ok=True)
    out: list[TrainingHum] = []
    total = len(songs) * per_song
    for i, song in enumerate(songs):
        for j in range(per_song):
            wav, meta = folder / f"{song.song_id}-h{j}.wav", folder / f"{song.song_id}-h{j}.json"
            if not (wav.exists() and meta.exists()):
                rng = np.random.default_rng([corpus.seed, SEED_TAG, _song_number(song.song_id), j])
                y, params, notes, start_s, end_s = make_query(list(song.notes), song.voice, rng)
                audio.save(wav, y)  # atomic
                doc = {"song_id": song.song_id, "split": split, "start_s": start_s,
                       "end_s": end_s, "first_note": int(params["song_note_indices"][0]),
                       "notes": [list(n) for n in notes], "voice": params["voice"],
                       "params": params}
                write_json(meta, doc)
            doc = json.loads(meta.read_text())
            out.append(TrainingHum(
                path=wav, song_id=doc["song_id"], split=doc["split"], start_s=doc["start_s"],
                end_s=doc["end_s"], first_note=doc["first_note"],
                notes=[tuple(n) for n in doc["notes"]], voice=doc["voice"]))
            if progress:
                progress(i * per_song + j + 1, total)
    return out
