"""Build the demo corpus: plan (singers, splits, tunes, arrangements), render, write manifests.

The plan is drawn in the main process from the seed; each song is then rendered by a
worker with its own RNG derived from (seed, song index), so the files do not depend on
the number of workers or the order they finish in. A song directory (with its queries)
is written under a temporary name and renamed when complete; ``corpus.json`` is written
last and marks a complete corpus. An interrupted build resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from recsys.corpus.arrange import (
    INSTRUMENTS,
    TEMPLATES,
    Part,
    choose_chords,
    make_part,
    render_part,
    tempfolder,
)
from recsys.corpus.hum import make_query
from recsys.corpus.manifest import MANIFEST_VERSION, write_json, write_jsonl
from recsys.corpus.singers import SR, SingerSpec, all_singers, fit_transpose, perform
from recsys.corpus.tunes import Tune, tune_table
from recsys.corpus.vocabulary import VOCABULARY

INSTRUMENTAL_FRACTION = 0.1
TEST_SINGER_FRACTION = 0.25
MIN_SONGS_PER_SINGER = 6
MIN_NOTE_SECONDS = 0.13  # shortest note a diphone voice sings cleanly
LEAD_REGISTER = {"flute": 76, "violin": 72, "oboe": 72, "clarinet": 67, "saxophone": 65,
                 "trumpet": 69, "synth lead": 72, "piano": 72, "guitar": 64,
                 "electric guitar": 64, "accordion": 69}
LOUDNESS_DBFS = {"loud": -14.0, "quiet": -30.0, None: -21.0}
VELOCITY = {"loud": 105, "quiet": 62, None: 86}


class BuildError(RuntimeError):
    """The corpus cannot be built as asked (bad arguments, an existing different corpus)."""


@dataclass(frozen=True)
class BuildParams:
    songs: int
    seed: int
    song_seconds: float = 20.0
    queries_per_song: float = 1.0
    # Skip the first tunes of the fixed tune table: a corpus built with the offset of another
    # corpus' song count shares no tune with it (a held-out catalog extension).
    tune_offset: int = 0

    def check(self) -> None:
        if self.songs < 1:
            raise BuildError("--songs must be at least 1")
        if not 8.0 <= self.song_seconds <= 600.0:
            raise BuildError("--song-seconds must be between 8 and 600")
        if not 0.0 <= self.queries_per_song <= 10.0:
            raise BuildError("--queries-per-song must be between 0 and 10")
        if self.tune_offset < 0:
            raise BuildError("--tune-offset must not be negative")


@dataclass
class SongPlan:
    index: int
    song_id: str
    split: str
    singer: SingerSpec | None
    template: str
    tune: Tune
    n_queries: int


def plan(params: BuildParams, tunes: list[Tune]) -> tuple[list[SongPlan], dict[str, str]]:
    """Who sings what, in which style and split. Returns (song plans, singer_id -> split)."""
    rng = np.random.default_rng([params.seed, 0])
    n = params.songs
    n_instr = max(1, int(round(INSTRUMENTAL_FRACTION * n))) if n >= 4 else 0
    n_vocal = n - n_instr

    # Singers: as many as keep >= 6 songs each, alternating female/male for balance.
    table = all_singers()
    fem = [table[i] for i in rng.permutation(len(table)) if table[i].gender == "female"]
    mal = [table[i] for i in rng.permutation(len(table)) if table[i].gender == "male"]
    balanced = [s for pair in zip(fem, mal, strict=False) for s in pair]
    balanced += [s for s in fem + mal if s not in balanced]
    n_singers = int(np.clip(n_vocal // MIN_SONGS_PER_SINGER, min(2, n_vocal), len(table)))
    singers = balanced[:n_singers]
    n_test = max(1, int(round(TEST_SINGER_FRACTION * n_singers))) if n_singers >= 2 else 0
    # Alternate genders among test singers too (singers[] already alternates).
    test_ids = {s.singer_id for s in singers[:n_test]}
    singer_split = {s.singer_id: ("test" if s.singer_id in test_ids else "train")
                    for s in singers}

    # Vocal songs round-robin over a shuffled singer order: counts differ by at most one.
    order = [singers[i] for i in rng.permutation(len(singers))] if singers else []
    owners = [order[k % len(order)] for k in range(n_vocal)] if order else []
    splits: list[str] = [""] * n_vocal
    for s in order:
        mine = [k for k, o in enumerate(owners) if o is s]
        if s.singer_id in test_ids:
            for k in mine:
                splits[k] = "test"
            continue
        n_val = int(0.12 * len(mine) + rng.random())
        n_ts = int(0.16 * len(mine) + rng.random())
        while len(mine) - n_val - n_ts < 1 and (n_val or n_ts):
            n_val, n_ts = (n_val - 1, n_ts) if n_val >= n_ts else (n_val, n_ts - 1)
        labels = ["val"] * n_val + ["test_seen"] * n_ts
        labels += ["train"] * (len(mine) - len(labels))
        for k, lab in zip(mine, rng.permutation(labels), strict=True):
            splits[k] = str(lab)
    instr_splits = [str(x) for x in rng.choice(["train", "val", "test"], size=n_instr,
                                               p=[0.6, 0.15, 0.25])]

    entries = [(owners[k], splits[k]) for k in range(n_vocal)] + \
              [(None, sp) for sp in instr_splits]
    entries = [entries[i] for i in rng.permutation(len(entries))]
    tune_order = rng.permutation(len(tunes))
    plans = []
    for i, (singer, split) in enumerate(entries):
        nq = int(params.queries_per_song) + int(rng.random() < params.queries_per_song % 1)
        plans.append(SongPlan(
            index=i, song_id=f"s{i:05d}", split=split, singer=singer,
            template=TEMPLATES[int(rng.integers(len(TEMPLATES)))].name,
            tune=tunes[int(tune_order[i])], n_queries=nq,
        ))
    return plans, singer_split


def _timeline(melody_ql: list[tuple[float, float, float]], intro: float, rep_s: float,
              q: float, end_s: float) -> tuple[list[tuple[float, float, float]], int]:
    """The tune's ``(onset ql, duration ql, MIDI)`` notes repeated after ``intro`` seconds
    every ``rep_s`` seconds (``q`` seconds a quarter) until ``end_s``: ``(notes (onset s,
    offset s, MIDI), repetitions started)``."""
    notes: list[tuple[float, float, float]] = []
    k = 0
    while intro + k * rep_s < end_s:
        base = intro + k * rep_s
        for on, d, m in melody_ql:
            a = base + on * q
            b = min(base + (on + d) * q, end_s)
            if a < end_s - 0.15:
                notes.append((round(a, 4), round(b, 4), float(m)))
        k += 1
    return notes, k


def render_song(p: SongPlan, params: BuildParams, out: Path) -> dict:
    """Render one song (and its queries) into ``out/songs/<id>``; returns its record."""
    final = out / "songs" / p.song_id
    record_path = final / "song.json"
    if record_path.exists():  # resumed build: this song is complete
        return json.loads(record_path.read_text())
    rng = np.random.default_rng([params.seed, p.index, 1])
    tpl = next(t for t in TEMPLATES if t.name == p.template)
    tune = p.tune
    length = int(round(params.song_seconds * SR))

    # Tempo: from the template, but slow enough that the shortest note can be sung.
    min_ql = min(n[1] for n in tune.notes)
    bpm = float(rng.uniform(*tpl.tempo))
    bpm = min(bpm, 60.0 * min_ql / MIN_NOTE_SECONDS)
    q = 60.0 / bpm
    bar_s = tune.bar_ql * q

    lead = None if p.singer else str(rng.choice(tpl.leads))
    pitches = [n[2] for n in tune.notes]
    if p.singer:
        shift = fit_transpose(pitches, p.singer.persona.register, p.singer.persona.formant)
    else:
        shift = int(round(LEAD_REGISTER.get(lead, 72) - tune.median_midi))
    tonic = (tune.tonic + shift) % 12
    melody_ql = [(on, d, m + shift) for on, d, m in tune.notes]

    # Timeline: one bar of intro, then the tune repeated to the end of the song. A tune with
    # long bars and a long rest before its first note may leave no note in a short song
    # after that intro: it then starts at once.
    rep_s = tune.length_ql * q
    end_s = params.song_seconds - 0.4  # the last 0.5 s fades out
    intro = bar_s
    notes, k = _timeline(melody_ql, intro, rep_s, q, end_s)
    if not notes:
        intro = 0.0
        notes, k = _timeline(melody_ql, intro, rep_s, q, end_s)
    if not notes:
        raise BuildError(f"{p.song_id}: tune {tune.tune_id} has no note in the first "
                         f"{end_s:.1f} s at {bpm:.0f} bpm; use longer --song-seconds")
    n_tune_bars = int(round(tune.length_ql / tune.bar_ql))
    tune_chords = choose_chords(melody_ql, n_tune_bars, tune.bar_ql, tonic, tune.mode)
    # the intro bar plays the tune's last chord
    bar_times, chords = ([0.0], [tune_chords[-1]]) if intro > 0 else ([], [])
    for r in range(k):
        for b in range(n_tune_bars):
            t = intro + r * rep_s + b * bar_s
            if t < params.song_seconds:
                bar_times.append(t)
                chords.append(tune_chords[b])

    # Parts: the template's parts drawn with their probabilities, plus the lead if instrumental.
    velocity = VELOCITY[tpl.loudness]
    specs = [(ps, str(rng.choice(ps.instrument)) if isinstance(ps.instrument, tuple)
              else ps.instrument) for ps in tpl.parts if rng.random() < ps.probability]
    stems: dict[str, np.ndarray] = {}
    tags = set(tpl.tags)
    with tempfolder() as td:
        for ps, inst in specs:
            part = make_part(ps.pattern, inst, chords, bar_times, bar_s, tune.beats_per_bar,
                             rng, velocity)
            name = _unique(inst, stems)
            part.name = name
            stems[name] = render_part(part, length, Path(td)) * 10 ** (ps.level_db / 20)
            tags.update(INSTRUMENTS[inst][1])
        if lead is not None:

            program, lead_tags = INSTRUMENTS[lead]
            part = Part(name=lead if lead not in stems else f"{lead} lead", program=program,
                        is_drum=False, notes=[(a, b, int(m), int(np.clip(velocity + 10, 1, 127)))
                               for a, b, m in notes])
            stems[part.name] = render_part(part, length, Path(td)) * 10 ** (4 / 20)
            tags.update(lead_tags)
    if p.singer is not None:
        vocals = perform(notes, p.singer, length, rng)
        tags.update(["vocals", f"{p.singer.gender} vocal"])
    else:
        vocals = np.zeros(length, np.float32)
        tags.add("no vocals")
    if "drums" in stems:
        tags.add("beat")
    if bpm >= 120:
        tags.add("fast")
    elif bpm <= 80:
        tags.add("slow")
    if tpl.loudness:
        tags.add(tpl.loudness)
    if tpl.name == "pop" and bpm >= 115 or tpl.name == "country" and bpm >= 118:
        tags.add("energetic")

    vocals_i, stems_i, mix_info = _mix(vocals, stems, tpl.loudness, p.singer is not None, rng)
    acc_i = np.sum([s.astype(np.int32) for s in stems_i.values()], axis=0, dtype=np.int32) \
        if stems_i else np.zeros(length, np.int32)
    mix_i = vocals_i.astype(np.int32) + acc_i
    if np.abs(mix_i).max() > 32767 or np.abs(acc_i).max() > 32767:
        raise RuntimeError(f"{p.song_id}: the int16 sum overflowed (mixing headroom bug)")

    tmp = out / "songs" / f".tmp-{p.song_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "stems").mkdir(parents=True)
    stem_files = {}
    for name, x in stems_i.items():
        rel = f"songs/{p.song_id}/stems/{name.replace(' ', '_')}.wav"
        _write(tmp / "stems" / Path(rel).name, x)
        stem_files[name] = rel
    _write(tmp / "vocals.wav", vocals_i)
    _write(tmp / "accompaniment.wav", acc_i.astype(np.int16))
    _write(tmp / "mixture.wav", mix_i.astype(np.int16))

    queries = []
    (out / "queries").mkdir(exist_ok=True)
    for j in range(p.n_queries):
        qrng = np.random.default_rng([params.seed, p.index, 2, j])
        y, qparams, qnotes, qs, qe = make_query(notes, p.singer.voice if p.singer else None,
                                                qrng)
        qid = f"{p.song_id}-q{j}"
        rel = f"queries/{qid}.wav"
        _write_float(out / rel, y)
        queries.append({"query_id": qid, "song_id": p.song_id, "path": rel,
                        "start_s": round(qs, 4), "end_s": round(qe, 4),
                        "voice": qparams["voice"], "params": qparams, "split": p.split,
                        "singer_id": None, "duration": round(len(y) / SR, 4),
                        "notes": [list(n) for n in qnotes]})

    s = p.singer
    record = {
        "song_id": p.song_id,
        "title": tune.title,
        "artist": s.name if s else f"The {tpl.name.title()} Players",
        "singer_id": s.singer_id if s else None,
        "voice": s.voice if s else None,
        "gender": s.gender if s else None,
        "tags": [t for t in VOCABULARY if t in tags],
        "instrumental": s is None,
        "split": p.split,
        "duration": round(length / SR, 4),
        "tune_id": tune.tune_id,
        "collection": tune.collection,
        "mixture": f"songs/{p.song_id}/mixture.wav",
        "vocals": f"songs/{p.song_id}/vocals.wav",
        "accompaniment": f"songs/{p.song_id}/accompaniment.wav",
        "stems": stem_files,
        "notes": [list(n) for n in notes],
        "style": tpl.name,
        "tempo": round(bpm, 3),
        "key": f"{['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][tonic]} "
               f"{tune.mode}",
        "persona": asdict(s.persona) | {"syllables": list(s.persona.syllables)} if s else {},
        "melody_instrument": lead,
        "mix": mix_info,
        "transpose": shift,
    }
    unknown = set(record["tags"]) - set(VOCABULARY)
    assert not unknown, unknown
    (tmp / "song.json").write_text(json.dumps({"song": record, "queries": queries},
                                              sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return {"song": record, "queries": queries}


def _unique(name: str, taken: dict) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name} {k}" in taken:
        k += 1
    return f"{name} {k}"


def _rms(x: np.ndarray) -> float:
    active = x[np.abs(x) > 1e-4]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


def _mix(vocals: np.ndarray, stems: dict[str, np.ndarray], loudness: str | None,
         has_vocals: bool, rng: np.random.Generator):
    """Balance, set loudness, keep headroom, fade out, quantise every stem to int16."""
    acc = np.sum(list(stems.values()), axis=0) if stems else np.zeros_like(vocals)
    var_db = float(rng.uniform(-2.0, 5.0)) if has_vocals else 0.0
    acc_rms, voc_rms = _rms(acc), _rms(vocals)
    if has_vocals and acc_rms > 0 and voc_rms > 0:
        vocals = vocals * (acc_rms / voc_rms) * 10 ** (var_db / 20)
    mix = vocals + acc
    target_db = LOUDNESS_DBFS[loudness] + float(rng.uniform(-1.5, 1.5))
    gain = 10 ** (target_db / 20) / max(_rms(mix), 1e-9)
    peak = max([np.abs(mix).max(), np.abs(acc).max(), np.abs(vocals).max()]
               + [np.abs(s).max() for s in stems.values()]) * gain
    limited = peak > 0.9
    if limited:
        gain *= 0.9 / peak
    fade = np.ones(len(vocals))
    n_fade = int(0.5 * SR)
    fade[-n_fade:] = np.linspace(1.0, 0.0, n_fade)
    g = gain * fade

    def q(x):
        return np.clip(np.round(x * g * 32767.0), -32767, 32767).astype(np.int16)

    info = {"vocal_to_accompaniment_db": round(var_db, 2) if has_vocals else None,
            "target_dbfs": round(target_db, 2), "peak_limited": bool(limited),
            "mixture_dbfs": round(20 * np.log10(max(_rms(mix * gain), 1e-9)), 2)}
    return q(vocals), {k: q(v) for k, v in stems.items()}, info


def _write(path: Path, x: np.ndarray) -> None:
    sf.write(path, x.astype(np.int16), SR, subtype="PCM_16", format="WAV")


def _write_float(path: Path, y: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.wav")
    _write(tmp, np.clip(np.round(y * 32767.0), -32767, 32767).astype(np.int16))
    os.replace(tmp, path)


def _render_job(args) -> dict:
    return render_song(*args)


def build(out: str | os.PathLike, params: BuildParams, workers: int | None = None,
          cache_dir: str | os.PathLike | None = None, progress=None) -> Path:
    """Build (or finish building) a corpus in ``out``; returns its path.

    ``progress(stage, done, total)`` is called as work completes.
    """
    params.check()
    out = Path(out).resolve()
    workers = max(1, workers or os.cpu_count() or 1)
    out.mkdir(parents=True, exist_ok=True)
    build_params = asdict(params)
    marker = out / "build-params.json"
    if marker.exists():
        if json.loads(marker.read_text()) != build_params:
            raise BuildError(f"{out} holds a corpus built with other parameters "
                             f"({marker.read_text().strip()}); choose another --out")
    elif any(out.iterdir()):
        raise BuildError(f"{out} is not empty and holds no corpus; choose another --out")
    else:
        write_json(marker, build_params)
    cache = Path(cache_dir) if cache_dir else out / "cache"

    def tick(stage):
        return (lambda d, t: progress(stage, d, t)) if progress else None

    try:
        tunes = tune_table(params.tune_offset + params.songs, cache, workers,
                           tick("tunes"))[params.tune_offset:]
    except ValueError as e:
        raise BuildError(str(e)) from None
    plans, singer_split = plan(params, tunes)
    results: list[dict | None] = [None] * len(plans)
    failures: list[str] = []
    jobs = [(p, params, out) for p in plans]

    def finished(i: int, fn) -> None:
        try:
            results[i] = fn()
        except Exception as e:  # keep going: one bad song must not lose the others
            failures.append(f"{plans[i].song_id}: {type(e).__name__}: {e}")
        if progress:
            progress("songs", sum(r is not None for r in results) + len(failures), len(jobs))

    if workers == 1:
        for i, job in enumerate(jobs):
            finished(i, lambda job=job: _render_job(job))
    else:
        from concurrent.futures import as_completed

        with ProcessPoolExecutor(workers) as ex:
            futs = {ex.submit(_render_job, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futs):
                finished(futs[fut], fut.result)
    if failures:
        raise BuildError(f"{len(failures)} of {len(jobs)} songs failed (the others are kept; "
                         "run the same command again to retry):\n  " + "\n  ".join(failures))

    songs = [r["song"] for r in results]
    queries = [q for r in results for q in r["queries"]]
    used = {p.singer.singer_id: p.singer for p in plans if p.singer}
    singers = [used[sid].record(singer_split[sid]) for sid in sorted(used)]
    write_jsonl(out / "songs.jsonl", songs)
    write_jsonl(out / "singers.jsonl", singers)
    write_jsonl(out / "queries.jsonl", queries)
    counts = {sp: sum(s["split"] == sp for s in songs) for sp in ("train", "val", "test",
                                                                 "test_seen")}
    write_json(out / "corpus.json", {
        "version": MANIFEST_VERSION, "seed": params.seed, "n_songs": len(songs),
        "n_singers": len(singers), "n_queries": len(queries), "split_counts": counts,
        "vocabulary": VOCABULARY, "build": build_params,
        "sample_rate": SR,
        "collections": sorted({s["collection"] for s in songs}),
    })
    return out
