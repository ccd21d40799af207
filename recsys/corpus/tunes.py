"""Real melodies from the music21 corpus, as a cached table of tunes.

Four folk collections ship with music21 as ABC files, most holding many tunes each. We
split the files into tunes by their ``X:`` reference lines (cheap text work), order the
tunes by a fixed shuffle interleaved across collections, and parse them with music21 only
when a build needs them. Parsing is slow (~0.1 s a tune), so every parsed tune (or the
reason it was rejected) is cached as one small JSON file under ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

COLLECTIONS = ("oneills1850", "essenFolksong", "ryansMammoth", "airdsAirs")
# Fixed, not the corpus seed: the order of candidate tunes is part of the data, so that
# corpora built with different seeds draw from the same well-known table.
_ORDER_SEED = 20_240_521
TUNE_CACHE_VERSION = 1

MIN_NOTES = 16
MAX_RANGE = 24  # semitones; wider tunes do not fit a voice
MIN_NOTE_QL = 0.24  # shortest note in quarter lengths (a 16th note) a diphone voice can sing
MAX_NOTE_QL = 8.0


@dataclass(frozen=True)
class Tune:
    """A monophonic melody. Times are in quarter lengths (beats of a quarter note)."""

    tune_id: str  # "<collection>/<file>#<X number>"
    collection: str
    title: str
    notes: list[tuple[float, float, int]]  # (onset_ql, duration_ql, midi)
    length_ql: float  # whole bars, from 0
    bar_ql: float
    beats_per_bar: int
    tonic: int  # pitch class 0..11
    mode: str  # "major" or "minor"

    @property
    def median_midi(self) -> float:
        return float(sorted(n[2] for n in self.notes)[len(self.notes) // 2])


def candidate_ids() -> list[tuple[str, Path, str]]:
    """Every tune in the four collections as (tune_id, file, abc text), in the fixed order."""
    from music21 import corpus

    by_collection: dict[str, list[tuple[str, Path, str]]] = {c: [] for c in COLLECTIONS}
    for p in sorted(corpus.getPaths(fileExtensions=("abc",)), key=str):
        parts = Path(p).parts
        if "corpus" not in parts:
            continue
        rel = parts[parts.index("corpus") + 1:]
        coll = rel[0]
        if coll not in by_collection or Path(p).name.startswith("test"):
            continue
        for ref, text in _split_abc(Path(p).read_text(errors="replace")):
            by_collection[coll].append((f"{coll}/{'/'.join(rel[1:])}#{ref}", Path(p), text))
    rng = random.Random(_ORDER_SEED)
    for items in by_collection.values():
        rng.shuffle(items)
    # Round-robin so any prefix of the table mixes all collections.
    out = []
    longest = max(len(v) for v in by_collection.values())
    for i in range(longest):
        for c in COLLECTIONS:
            if i < len(by_collection[c]):
                out.append(by_collection[c][i])
    return out


def _split_abc(text: str) -> list[tuple[str, str]]:
    """Split an ABC file into (reference number, text of one tune with the file header)."""
    header: list[str] = []
    tunes: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("X:"):
            tunes.append((line[2:].strip(), [line]))
        elif tunes:
            tunes[-1][1].append(line)
        elif not line.startswith("%"):
            header.append(line)
    return [(ref, "\n".join(body[:1] + header + body[1:]) + "\n") for ref, body in tunes]


def parse_tune(tune_id: str, abc_text: str) -> Tune | str:
    """Parse one ABC tune; returns the Tune, or a short reason why it is unusable."""
    from music21 import converter, key, meter, stream

    coll = tune_id.split("/", 1)[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(abc_text, format="abc", forceSource=True)
            flat = score.flatten().stripTies()
    except Exception as e:  # music21 raises many types on odd ABC; all mean "skip this tune"
        return f"parse error: {type(e).__name__}"
    notes: list[tuple[float, float, int]] = []
    for n in flat.notes:
        ql = float(n.quarterLength)
        if ql <= 0:  # grace notes
            continue
        midi = max(p.midi for p in n.pitches)  # the top of a chord is the tune
        on = float(n.offset)
        if notes and on < notes[-1][0] + notes[-1][1] - 1e-6:
            return "overlapping notes"
        notes.append((round(on, 4), round(ql, 4), int(midi)))
    if len(notes) < MIN_NOTES:
        return "too few notes"
    pitches = [n[2] for n in notes]
    if max(pitches) - min(pitches) > MAX_RANGE:
        return "range too wide"
    if min(n[1] for n in notes) < MIN_NOTE_QL or max(n[1] for n in notes) > MAX_NOTE_QL:
        return "note durations out of range"
    ts = next(iter(flat.getElementsByClass(meter.TimeSignature)), None)
    bar_ql = float(ts.barDuration.quarterLength) if ts is not None else 4.0
    beats = int(ts.numerator) if ts is not None and ts.numerator in (2, 3, 4, 6, 9, 12) else 4
    if beats in (6, 9, 12):  # compound metres: count dotted quarters
        beats //= 3
    ks = next(iter(flat.getElementsByClass(key.KeySignature)), None)
    if isinstance(ks, key.Key) and ks.mode in ("major", "minor"):
        k = ks
    else:
        try:
            k = flat.analyze("key")
        except Exception:
            return "no key"
    # Put bar lines where the score has them: a pickup measure is padded to a full bar.
    first_measure = next(iter(score.recurse().getElementsByClass(stream.Measure)), None)
    shift = 0.0
    if first_measure is not None:
        pickup = float(first_measure.duration.quarterLength)
        if 0 < pickup < bar_ql - 1e-6:
            shift = bar_ql - pickup
    first_bar = -shift
    end = notes[-1][0] + notes[-1][1]
    n_bars = max(1, int(-(-(end - first_bar) // bar_ql)))
    title = (score.metadata.title if score.metadata is not None else None) or tune_id
    return Tune(
        tune_id=tune_id,
        collection=coll,
        title=str(title).strip(),
        notes=[(round(on - first_bar, 4), d, m) for on, d, m in notes],
        length_ql=n_bars * bar_ql,
        bar_ql=bar_ql,
        beats_per_bar=beats,
        tonic=int(k.tonic.pitchClass),
        mode=str(k.mode if k.mode in ("major", "minor") else "major"),
    )


def _cache_path(cache_dir: Path, tune_id: str) -> Path:
    h = hashlib.sha1(tune_id.encode()).hexdigest()[:16]
    return cache_dir / f"tunes-v{TUNE_CACHE_VERSION}" / f"{h}.json"


def _load_cached(path: Path) -> Tune | str | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if "rejected" in d:
        return d["rejected"]
    d["notes"] = [tuple(n) for n in d["notes"]]
    return Tune(**d)


def _store(path: Path, result: Tune | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    d = {"rejected": result} if isinstance(result, str) else asdict(result)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(d))
    os.replace(tmp, path)


def _parse_job(args: tuple[str, str]) -> Tune | str:
    return parse_tune(*args)


def tune_table(n: int, cache_dir: Path, workers: int = 1, progress=None) -> list[Tune]:
    """The first ``n`` usable tunes of the fixed candidate order (parsed or from cache)."""
    cache_dir = Path(cache_dir)
    candidates = candidate_ids()
    if n > len(candidates):  # known before minutes of parsing
        raise ValueError(f"{n} tunes asked for (tune offset + songs), but the music21 corpus "
                         f"has only {len(candidates)} candidates")
    tunes: list[Tune] = []
    pos = 0
    while len(tunes) < n and pos < len(candidates):
        # Parse in batches a little larger than what is still missing (some get rejected).
        batch = candidates[pos: pos + max(8, int((n - len(tunes)) * 1.3))]
        pos += len(batch)
        results: list[Tune | str | None] = [_load_cached(_cache_path(cache_dir, t[0]))
                                            for t in batch]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            jobs = [(batch[i][0], batch[i][2]) for i in todo]
            if workers > 1 and len(jobs) > 4:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(workers) as ex:
                    parsed = list(ex.map(_parse_job, jobs, chunksize=4))
            else:
                parsed = [_parse_job(j) for j in jobs]
            for i, r in zip(todo, parsed, strict=True):
                _store(_cache_path(cache_dir, batch[i][0]), r)
                results[i] = r
        for r in results:
            if isinstance(r, Tune) and len(tunes) < n:
                tunes.append(r)
        if progress is not None:
            progress(len(tunes), n)
    if len(tunes) < n:
        raise ValueError(f"the music21 corpus yielded only {len(tunes)} usable tunes, {n} needed")
    return tunes
