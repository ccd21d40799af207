"""Loaders for the standard layouts of real datasets, so users can bring their own data.

- MUSDB18 (decoded to WAV stems): ``<root>/<split>/<track>/{mixture,vocals,drums,bass,other}.wav``
- MagnaTagATune: ``<root>/annotations_final.csv`` (tab-separated: ``clip_id``, 188 tag
  columns of 0/1, ``mp3_path``) and the clips under ``<root>/`` (or ``audio_dir``); the
  usual top-50 tags by frequency, and the usual split by the clip's first folder (``0``-``f``):
  ``0``-``b`` train, ``c`` val, ``d``-``f`` test (:data:`MTAT_SPLITS`).
- Singer folders: ``<root>/<artist>/<song>.<ext>`` -> artist, title.
- MIR-QBSH: ``waveFile/<year>/<person>/<song id>.wav`` with ``.pv`` pitch vectors beside the
  WAVs (one semitone value per 32 ms frame, 0 = unvoiced) and ``midiFile/<song id>.mid``.

Each loader only reads the layout (file lists, labels); audio is decoded later with
``embeddings.audio.load``. Problems raise :class:`DatasetError` with a message saying what is
wrong and where.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus")
MUSDB_STEMS = ("vocals", "drums", "bass", "other")
QBSH_FRAME_SECONDS = 256 / 8000  # MIR-QBSH pitch vectors: 256-sample frames at 8 kHz


class DatasetError(ValueError):
    """A dataset folder is missing or does not have the expected layout."""


def _dir(root: str | os.PathLike, what: str) -> Path:
    p = Path(root)
    if not p.is_dir():
        raise DatasetError(f"{what}: {p} is not a directory")
    return p


# --- MUSDB18 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MusdbTrack:
    name: str
    split: str  # "train" or "test"
    mixture: Path
    stems: dict[str, Path]  # vocals, drums, bass, other

    @property
    def accompaniment(self) -> list[Path]:
        """The stems that sum to the accompaniment (everything but vocals)."""
        return [self.stems[s] for s in MUSDB_STEMS if s != "vocals"]


def load_musdb(root: str | os.PathLike, split: str | None = None) -> list[MusdbTrack]:
    """Tracks of a MUSDB18 (WAV stems) folder; ``split`` is "train", "test" or None (both)."""
    root = _dir(root, "MUSDB18")
    splits = ("train", "test") if split is None else (split,)
    if any(s not in ("train", "test") for s in splits):
        raise DatasetError(f"MUSDB18 split is 'train' or 'test', not {split!r}")
    tracks = []
    for sp in splits:
        d = root / sp
        if not d.is_dir():
            if split is not None:
                raise DatasetError(f"MUSDB18: no {sp}/ folder in {root}")
            continue
        for track in sorted(p for p in d.iterdir() if p.is_dir()):
            files = {s: track / f"{s}.wav" for s in ("mixture", *MUSDB_STEMS)}
            missing = [k for k, f in files.items() if not f.is_file()]
            if missing:
                raise DatasetError(f"MUSDB18 track {track} lacks {', '.join(missing)}.wav "
                                   "(decode the .stem.mp4 files with musdb/stempeg first)")
            tracks.append(MusdbTrack(track.name, sp, files["mixture"],
                                     {s: files[s] for s in MUSDB_STEMS}))
    if not tracks:
        raise DatasetError(f"MUSDB18: no tracks under {root}/train or {root}/test")
    return tracks


# --- MagnaTagATune -------------------------------------------------------------------------


# MagnaTagATune's usual split (Dieleman & Schrauwen 2014, Lee et al. 2017): by the first
# folder of ``mp3_path``, one hex digit 0-f.
MTAT_SPLITS = {"train": "0123456789ab", "val": "c", "test": "def"}


def mtat_split(mp3_path: str) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a clip's ``mp3_path`` (e.g. ``"c/x.mp3"``)."""
    folder = Path(mp3_path).parts[0].lower() if Path(mp3_path).parts else ""
    for split, folders in MTAT_SPLITS.items():
        if len(folder) == 1 and folder in folders:
            return split
    raise DatasetError(f"MagnaTagATune: {mp3_path!r} is not under a folder 0-f, so it has no "
                       "split (0-b train, c val, d-f test)")


@dataclass(frozen=True)
class MTATClip:
    clip_id: int
    path: Path
    tags: list[str]
    split: str  # from the clip's folder, see MTAT_SPLITS


@dataclass(frozen=True)
class MTATDataset:
    clips: list[MTATClip]
    vocabulary: list[str]  # the top-N tags, most frequent first
    missing_audio: int  # annotated clips whose file is absent (skipped)

    def split(self, name: str) -> list[MTATClip]:
        """The clips of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in MTAT_SPLITS:
            raise DatasetError(f"MagnaTagATune split is one of {sorted(MTAT_SPLITS)}, "
                               f"not {name!r}")
        return [c for c in self.clips if c.split == name]

    def label_matrix(self) -> np.ndarray:
        """(n_clips, n_tags) float32 0/1 matrix in ``vocabulary`` order."""
        col = {t: i for i, t in enumerate(self.vocabulary)}
        y = np.zeros((len(self.clips), len(self.vocabulary)), np.float32)
        for r, c in enumerate(self.clips):
            for t in c.tags:
                y[r, col[t]] = 1.0
        return y


def load_magnatagatune(root: str | os.PathLike, top: int = 50,
                       audio_dir: str | os.PathLike | None = None,
                       require_audio: bool = True) -> MTATDataset:
    """MagnaTagATune annotations with the ``top`` most frequent tags.

    Clips without any of the top tags are kept (with no tags), as in the usual benchmark
    setup. With ``require_audio`` clips whose audio file is missing are skipped and counted.
    """
    root = _dir(root, "MagnaTagATune")
    ann = root / "annotations_final.csv"
    if not ann.is_file():
        raise DatasetError(f"MagnaTagATune: {ann} not found")
    audio_root = Path(audio_dir) if audio_dir else root
    with ann.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError(f"MagnaTagATune: {ann} is empty") from None
        header = [h.strip().strip('"') for h in header]
        if "clip_id" not in header or "mp3_path" not in header:
            raise DatasetError(f"MagnaTagATune: {ann} has no clip_id/mp3_path columns "
                               "(is it tab-separated?)")
        i_id, i_path = header.index("clip_id"), header.index("mp3_path")
        tag_cols = [i for i in range(len(header)) if i not in (i_id, i_path)]
        rows = []
        for n, row in enumerate(reader, 2):
            if not row:
                continue
            row = [c.strip().strip('"') for c in row]
            if len(row) != len(header):
                raise DatasetError(f"MagnaTagATune: {ann}:{n} has {len(row)} columns, "
                                   f"expected {len(header)}")
            try:
                tags = [header[i] for i in tag_cols if int(row[i])]
                rows.append((int(row[i_id]), row[i_path], tags))
            except ValueError:
                raise DatasetError(f"MagnaTagATune: {ann}:{n} has a non-integer value") from None
    counts = Counter(t for _, _, tags in rows for t in tags)
    vocab = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    keep = set(vocab)
    clips, missing = [], 0
    for cid, rel, tags in rows:
        path = audio_root / rel
        if require_audio and not path.is_file():
            missing += 1
            continue
        clips.append(MTATClip(cid, path, [t for t in tags if t in keep], mtat_split(rel)))
    if not clips:
        raise DatasetError(f"MagnaTagATune: none of the {len(rows)} annotated clips has its "
                           f"audio file under {audio_root}")
    return MTATDataset(clips, vocab, missing)


# --- singer folders ------------------------------------------------------------------------


@dataclass(frozen=True)
class SingerTrack:
    artist: str
    title: str
    path: Path


def load_singer_folders(root: str | os.PathLike) -> list[SingerTrack]:
    """Every audio file in ``<root>/<artist>/`` (one level; hidden files ignored)."""
    root = _dir(root, "singer folders")
    tracks = []
    for artist in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(artist.iterdir()):
            if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith("."):
                tracks.append(SingerTrack(artist.name, f.stem, f))
    if not tracks:
        raise DatasetError(f"singer folders: no audio files ({', '.join(AUDIO_EXTENSIONS)}) "
                           f"in {root}/<artist>/")
    return tracks


# --- MIR-QBSH ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QBSHQuery:
    path: Path
    pitch_vector: Path | None
    song_id: str  # the target's MIDI file stem
    person: str
    year: str


@dataclass(frozen=True)
class QBSHDataset:
    queries: list[QBSHQuery]
    songs: dict[str, Path]  # song id -> MIDI file


def load_qbsh(root: str | os.PathLike) -> QBSHDataset:
    """MIR-QBSH: hummed queries (wav + .pv) and the target MIDI songs."""
    root = _dir(root, "MIR-QBSH")
    midi_dir = next((root / d for d in ("midiFile", "midi", "MIDI") if (root / d).is_dir()), None)
    wave_dir = next((root / d for d in ("waveFile", "wav", "wave") if (root / d).is_dir()), None)
    if midi_dir is None or wave_dir is None:
        raise DatasetError(f"MIR-QBSH: expected midiFile/ and waveFile/ in {root}")
    songs = {p.stem: p for p in sorted(midi_dir.glob("*.mid"))}
    if not songs:
        raise DatasetError(f"MIR-QBSH: no .mid files in {midi_dir}")
    queries = []
    for wav in sorted(wave_dir.rglob("*.wav")):
        rel = wav.relative_to(wave_dir).parts
        pv = wav.with_suffix(".pv")
        queries.append(QBSHQuery(
            path=wav, pitch_vector=pv if pv.is_file() else None, song_id=wav.stem,
            person=rel[-2] if len(rel) >= 2 else "", year=rel[0] if len(rel) >= 3 else "",
        ))
    unknown = sorted({q.song_id for q in queries} - set(songs))
    if unknown:
        raise DatasetError(f"MIR-QBSH: queries name songs with no MIDI file: {unknown[:5]}")
    if not queries:
        raise DatasetError(f"MIR-QBSH: no .wav queries under {wave_dir}")
    return QBSHDataset(queries, songs)


def read_pitch_vector(path: str | os.PathLike) -> np.ndarray:
    """A QBSH ``.pv`` file: semitones (MIDI numbers) per 32 ms frame, NaN where unvoiced."""
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a pitch vector file ({e})") from None
    values[values <= 0] = np.nan
    return values


def midi_notes(path: str | os.PathLike) -> list[tuple[float, float, int]]:
    """Notes (onset s, offset s, MIDI) of a monophonic MIDI melody, in time order."""
    import pretty_midi

    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # pretty_midi/mido raise many types on bad files
        raise DatasetError(f"{path}: not a readable MIDI file ({type(e).__name__})") from None
    notes = [(float(n.start), float(n.end), int(n.pitch))
             for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    return sorted(notes)
