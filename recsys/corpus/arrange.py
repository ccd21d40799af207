"""Accompaniment: arrangement templates, harmony from the tune, General MIDI parts, FluidSynth.

A template names a style, a tempo range, a loudness and the parts it plays (instrument,
pattern, probability). The template, and the parts that were actually drawn, decide the
song's tags. Chords are chosen per bar to fit the melody's notes in the tune's key. Each
part is rendered on its own by FluidSynth (reverb and chorus off, float output), so every
instrument has its own stem; two renders of the same MIDI are byte-identical.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")

# stem name -> (General MIDI program, tags it adds)
INSTRUMENTS: dict[str, tuple[int, list[str]]] = {
    "piano": (0, ["piano"]),
    "electric piano": (4, ["piano"]),
    "harpsichord": (6, ["harpsichord"]),
    "organ": (19, ["organ"]),
    "accordion": (21, ["accordion"]),
    "guitar": (25, ["guitar"]),
    "nylon guitar": (24, ["guitar"]),
    "electric guitar": (29, ["electric guitar"]),
    "clean guitar": (27, ["electric guitar"]),
    "acoustic bass": (32, ["bass"]),
    "bass": (33, ["bass"]),
    "synth bass": (38, ["bass", "synth"]),
    "violin": (40, ["violin"]),
    "cello": (42, ["cello"]),
    "harp": (46, ["harp"]),
    "strings": (48, ["strings"]),
    "trumpet": (56, ["trumpet"]),
    "saxophone": (65, ["saxophone"]),
    "oboe": (68, ["oboe"]),
    "clarinet": (71, ["clarinet"]),
    "flute": (73, ["flute"]),
    "synth lead": (81, ["synth"]),
    "synth pad": (89, ["synth"]),
    "banjo": (105, ["banjo"]),
    "drums": (0, ["drums"]),
}


@dataclass(frozen=True)
class PartSpec:
    instrument: str | tuple[str, ...]  # a tuple is a choice
    pattern: str  # block, strum, arpeggio, pad, bass, bass8, walk, drums-<kind>
    probability: float = 1.0
    level_db: float = 0.0


@dataclass(frozen=True)
class Template:
    name: str
    tags: list[str]
    tempo: tuple[float, float]  # quarter notes per minute
    parts: list[PartSpec]
    leads: list[str]  # instruments that carry the melody in instrumental songs
    loudness: str | None = None  # "loud", "quiet" or None
    extra: dict = field(default_factory=dict)


TEMPLATES: list[Template] = [
    Template("folk", ["folk"], (85, 125),
             [PartSpec(("guitar", "nylon guitar"), "strum"),
              PartSpec("acoustic bass", "bass", 0.5, -3),
              PartSpec("accordion", "pad", 0.3, -8)],
             ["flute", "violin", "accordion"]),
    Template("celtic", ["celtic", "folk"], (95, 125),
             [PartSpec("harp", "arpeggio"), PartSpec("guitar", "strum", 0.5, -3),
              PartSpec("cello", "pad", 0.4, -8)],
             ["violin", "flute"]),
    Template("rock", ["rock", "energetic"], (110, 125),
             [PartSpec("electric guitar", "strum8", 1.0, -4), PartSpec("bass", "bass8"),
              PartSpec("drums", "drums-rock")],
             ["electric guitar"], "loud"),
    Template("pop", ["pop"], (92, 122),
             [PartSpec(("piano", "electric piano"), "block"), PartSpec("bass", "bass"),
              PartSpec("drums", "drums-pop", 1.0, -2), PartSpec("synth pad", "pad", 0.4, -8),
              PartSpec("strings", "pad", 0.3, -8)],
             ["synth lead", "piano", "saxophone"]),
    Template("ballad", ["ballad", "calm"], (58, 80),
             [PartSpec("piano", "arpeggio"), PartSpec("strings", "pad", 0.6, -6),
              PartSpec("cello", "bass", 0.4, -4)],
             ["piano", "violin", "flute", "oboe"], "quiet"),
    Template("classical", ["classical"], (62, 100),
             [PartSpec("strings", "pad"), PartSpec("cello", "bass", 1.0, -2),
              PartSpec("harp", "arpeggio", 0.4, -4)],
             ["violin", "flute", "oboe", "clarinet"]),
    Template("baroque", ["baroque", "classical"], (80, 112),
             [PartSpec("harpsichord", "arpeggio"), PartSpec("cello", "walk", 1.0, -2)],
             ["oboe", "flute", "violin"]),
    Template("country", ["country"], (105, 125),
             [PartSpec("guitar", "strum"), PartSpec("banjo", "arpeggio", 0.5, -4),
              PartSpec("acoustic bass", "bass"), PartSpec("drums", "drums-country", 1.0, -4)],
             ["violin", "guitar"]),
    Template("electronic", ["electronic", "dance", "energetic"], (112, 125),
             [PartSpec("synth pad", "pad", 1.0, -4), PartSpec("synth bass", "bass8"),
              PartSpec("drums", "drums-dance"), PartSpec("synth lead", "arpeggio", 0.4, -8)],
             ["synth lead"], "loud"),
    Template("jazz", ["jazz"], (88, 125),
             [PartSpec("piano", "block", 1.0, -2), PartSpec("acoustic bass", "walk"),
              PartSpec("drums", "drums-jazz", 1.0, -5)],
             ["saxophone", "trumpet", "clarinet"]),
    Template("ambient", ["ambient", "calm", "synth"], (58, 80),
             [PartSpec("synth pad", "pad"), PartSpec("harp", "arpeggio", 0.4, -8)],
             ["flute", "synth lead"], "quiet"),
    Template("hymn", ["classical"], (60, 88),
             [PartSpec("organ", "pad")],
             ["flute", "oboe"], None, {"solo": True}),
    Template("solo piano", ["solo"], (62, 105),
             [PartSpec("piano", "arpeggio")],
             ["piano"], "quiet", {"solo": True}),
    Template("solo guitar", ["folk", "solo"], (70, 115),
             [PartSpec("nylon guitar", "arpeggio")],
             ["guitar"], "quiet", {"solo": True}),
]

# Diatonic triads (degree root offset, quality) per mode; weights prefer I, IV, V.
_TRIADS = {
    "major": [(0, "maj", 1.0), (5, "maj", 0.8), (7, "maj", 0.8), (9, "min", 0.5),
              (2, "min", 0.4), (4, "min", 0.3)],
    "minor": [(0, "min", 1.0), (5, "min", 0.8), (7, "maj", 0.8), (8, "maj", 0.5),
              (3, "maj", 0.5), (10, "maj", 0.4)],
}
_QUALITY = {"maj": (0, 4, 7), "min": (0, 3, 7)}


def choose_chords(melody: list[tuple[float, float, int]], n_bars: int, bar_ql: float,
                  tonic: int, mode: str) -> list[tuple[int, str]]:
    """One chord (root pitch class, quality) per bar that best fits the bar's melody notes.

    Score = duration of melody notes that are chord tones (strong beats count double)
    plus a small preference for the primary chords; the last bar is the tonic.
    """
    chords = []
    for b in range(n_bars):
        lo, hi = b * bar_ql, (b + 1) * bar_ql
        best, best_score = (tonic, _TRIADS[mode][0][1]), -1.0
        for off, qual, prior in _TRIADS[mode]:
            root = (tonic + off) % 12
            tones = {(root + i) % 12 for i in _QUALITY[qual]}
            score = 0.3 * prior
            for on, d, m in melody:
                overlap = min(on + d, hi) - max(on, lo)
                if overlap <= 0:
                    continue
                weight = 2.0 if abs((on - lo) % (bar_ql / 2)) < 1e-6 else 1.0
                score += overlap * weight * (1.0 if m % 12 in tones else -0.5)
            if score > best_score:
                best, best_score = (root, qual), score
        chords.append(best)
    if chords:
        chords[-1] = (tonic, _TRIADS[mode][0][1])
    return chords


@dataclass
class Part:
    name: str  # stem name
    program: int
    is_drum: bool
    notes: list[tuple[float, float, int, int]]  # (start s, end s, midi, velocity)
    level_db: float = 0.0


def _voicing(root: int, qual: str, center: int) -> list[int]:
    """Close-position triad with its lowest note nearest below ``center``."""
    base = center - ((center - root) % 12)
    return [base + i for i in _QUALITY[qual]]


def make_part(pattern: str, name: str, chords: list[tuple[int, str]], bar_times: list[float],
              bar_s: float, beats: int, rng: np.random.Generator, velocity: int) -> Part:
    """MIDI notes for one accompaniment part over the song's bars."""
    program, _ = INSTRUMENTS[name]
    beat = bar_s / beats
    notes: list[tuple[float, float, int, int]] = []

    def vel(accent: float = 0.0) -> int:
        return int(np.clip(velocity + accent + rng.normal(0, 4), 20, 127))

    for (root, qual), t0 in zip(chords, bar_times, strict=True):
        triad = _voicing(root, qual, 60)
        if pattern == "block":
            for k in range(0, beats, max(1, beats // 2)):
                for p in triad:
                    notes.append((t0 + k * beat, t0 + (k + max(1, beats // 2)) * beat * 0.95,
                                  p, vel(8 if k == 0 else 0)))
        elif pattern in ("strum", "strum8"):
            step = beat / 2 if pattern == "strum8" else beat
            n = int(round(bar_s / step))
            low = _voicing(root, qual, 52) + [triad[0] + 12]
            for k in range(n):
                for j, p in enumerate(low):  # a strum: strings 8 ms apart
                    notes.append((t0 + k * step + 0.008 * j, t0 + (k + 0.9) * step, p,
                                  vel(10 if k % 2 == 0 else -5)))
        elif pattern == "arpeggio":
            seq = triad + [triad[0] + 12, triad[2], triad[1]]
            step = beat / 2
            for k in range(int(round(bar_s / step))):
                notes.append((t0 + k * step, t0 + (k + 1.6) * step, seq[k % len(seq)],
                              vel(6 if k == 0 else 0)))
        elif pattern == "pad":
            for p in _voicing(root, qual, 57):
                notes.append((t0, t0 + bar_s * 0.98, p, vel(-10)))
        elif pattern in ("bass", "bass8", "walk"):
            r = 36 + ((root - 36) % 12)
            fifth = r + 7 if r + 7 <= 52 else r - 5
            if pattern == "bass":
                hits = [(0, r)] + ([(beats // 2, fifth)] if beats >= 2 else [])
                dur = beat * max(1, beats // 2)
                notes += [(t0 + k * beat, t0 + k * beat + dur * 0.9, p, vel(5)) for k, p in hits]
            elif pattern == "bass8":
                for k in range(2 * beats):
                    notes.append((t0 + k * beat / 2, t0 + (k + 0.8) * beat / 2, r,
                                  vel(8 if k % 2 == 0 else 0)))
            else:  # walking quarters: root, third, fifth, a step toward the next bar
                third = r + _QUALITY[qual][1]
                line = [r, third, fifth, fifth + 2]
                for k in range(beats):
                    notes.append((t0 + k * beat, t0 + (k + 0.9) * beat, line[k % 4], vel(0)))
        elif pattern.startswith("drums-"):
            notes += _drum_bar(pattern[6:], t0, beat, beats, vel)
        else:
            raise ValueError(f"unknown pattern {pattern!r}")
    return Part(name=name, program=program, is_drum=pattern.startswith("drums-"), notes=notes)


KICK, SNARE, CLAP, HAT, OPEN_HAT, RIDE, PEDAL_HAT, CRASH = 36, 38, 39, 42, 46, 51, 44, 49


def _drum_bar(kind: str, t0: float, beat: float, beats: int, vel) -> list:
    hits = []

    def hit(pos: float, drum: int, accent: float = 0.0):
        hits.append((t0 + pos * beat, t0 + pos * beat + 0.1, drum, vel(accent)))

    for b in range(beats):
        strong = b % 2 == 0 if beats != 3 else b == 0
        if kind == "dance":
            hit(b, KICK, 10)
            hit(b + 0.5, OPEN_HAT, -10)
            if b % 2 == 1:
                hit(b, CLAP)
        elif kind == "jazz":
            hit(b, RIDE, -5)
            if b % 2 == 1:
                hit(b + 2 / 3, RIDE, -15)
                hit(b, PEDAL_HAT, -10)
        else:  # rock, pop, country: kick on strong beats, snare on the others, hats
            hit(b, KICK if strong else SNARE, 8)
            sub = 4 if kind == "country" else 2
            for s in range(sub):
                hit(b + s / sub, HAT, -12 if s else -4)
            if kind == "pop" and b == beats - 1:
                hit(b + 0.5, KICK, -5)
    return hits


def render_part(part: Part, length: int, workdir: Path) -> np.ndarray:
    """FluidSynth renders one part to float32 mono 16 kHz, ``length`` samples long."""
    import pretty_midi

    if not part.notes:
        return np.zeros(length, np.float32)
    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=part.program, is_drum=part.is_drum, name=part.name)
    for s, e, p, v in part.notes:
        inst.notes.append(pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(s),
                                           end=float(max(e, s + 0.02))))
    pm.instruments.append(inst)
    mid = workdir / f"{part.name.replace(' ', '_')}.mid"
    wav = mid.with_suffix(".wav")
    pm.write(str(mid))
    proc = subprocess.run(
        ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(SR),
         "-T", "wav", "-O", "float", "-F", str(wav), str(SOUNDFONT), str(mid)],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 or not wav.exists():
        raise RuntimeError(f"fluidsynth failed on {part.name}: {proc.stderr.strip()[-300:]}")
    audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if len(mono) >= length:
        return mono[:length].copy()
    return np.pad(mono, (0, length - len(mono)))


def tempfolder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="recsys-arrange-")
