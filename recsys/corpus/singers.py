"""Singers: Festival diphone voices singing in singing mode, each with a few personas.

A persona is what makes one voice into several consistent singers: a register (the pitch
the melody is centred on), a formant shift, vibrato and breathiness. The same persona is
applied to every song of that singer.

Voice sex, checked ear-free: the median F0 of each voice's own *speech* prosody (plain
``text2wave``, 10 ms pYIN) is kal 102 Hz, ked 102 Hz, pc 100 Hz, czech_machac 74 Hz,
czech_ph 133 Hz (male); lp 207 Hz, czech_dita 210 Hz, czech_krb 247 Hz (female). Rule:
a voice whose speech F0 is >= 165 Hz is female. The gender label of a persona is its
voice's sex. Personas never cross the line: registers stay in the voice's sex range (male
melodies centred on C3..A3, female on D4..A4) and formant shifts stay within +-8 %, less than
the ~15-20 % gap between male and female formants, so a label always matches how the
persona sounds.

Formant shift by a factor ``a`` (a "clean" shift): Festival renders at pitch f/a with
durations d*a; the result is resampled so it plays ``a`` times faster, which scales pitch
and formants by ``a`` and brings the duration back to d. The pitch written in the XML is
the sounding pitch (``FREQ=``, in Hz), so ``Song.notes`` hold what is actually sung.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

SR = 16_000

# voice -> (language, sex). See the module docstring for how the sex was measured.
VOICES: dict[str, tuple[str, str]] = {
    "kal_diphone": ("en", "male"),
    "ked_diphone": ("en", "male"),
    "lp_diphone": ("it", "female"),
    "pc_diphone": ("it", "male"),
    "czech_dita": ("cs", "female"),
    "czech_krb": ("cs", "female"),
    "czech_machac": ("cs", "male"),
    "czech_ph": ("cs", "male"),
}
# Open syllables each voice's lexicon pronounces well (a consonant then a long vowel).
SYLLABLES = {
    "en": ["la", "na", "da", "loo", "doo", "lee"],
    "it": ["la", "na", "da", "lo", "no", "ma"],
    "cs": ["la", "na", "da", "ma", "jo", "no"],
}
# Three female voices get five personas each and five male voices three: 15 + 15 singers.
PERSONAS_PER_VOICE = {"male": 3, "female": 5}
REGISTER = {"male": (48.0, 57.0), "female": (62.0, 69.0)}  # MIDI centre of the melody
FORMANT = (0.92, 1.08)
_PERSONA_SEED = 7_3_2024
# Festival's singing mode segfaults on notes above ~500 Hz (measured: 500 Hz works, 506 Hz
# crashes, for every voice), so rendered pitches stay below this.
MAX_RENDER_HZ = 490.0  # fixed: singer identities are the same in every corpus

FIRST_NAMES = {
    ("en", "male"): ["Jack", "Owen", "Miles", "Ray", "Cole", "Dean", "Hank", "Wade"],
    ("en", "female"): ["Ruth", "June", "Nora", "Iris", "Lily", "Faye", "Mae", "Tess"],
    ("it", "male"): ["Marco", "Luca", "Dario", "Enzo", "Paolo", "Sergio", "Bruno", "Nino"],
    ("it", "female"): ["Chiara", "Giulia", "Sara", "Elena", "Marta", "Lucia", "Irene", "Gina"],
    ("cs", "male"): ["Jan", "Petr", "Karel", "Milan", "Ivo", "Tomas", "Pavel", "Vit"],
    ("cs", "female"): ["Eva", "Jana", "Lenka", "Petra", "Dita", "Alena", "Hana", "Vera"],
}
LAST_NAMES = {
    "en": ["Carter", "Hollis", "Reed", "Monroe", "Lane", "Parker", "Walsh", "Brooks"],
    "it": ["Rossi", "Bianchi", "Ferri", "Conti", "Greco", "Marino", "Gallo", "Rinaldi"],
    "cs": ["Novak", "Dvorak", "Svoboda", "Cerny", "Kral", "Horak", "Prochazka", "Benes"],
}


class FestivalError(RuntimeError):
    """Festival failed to sing (missing voice, crash, empty output)."""


@dataclass(frozen=True)
class Persona:
    register: float  # MIDI note the melody's median is moved to
    formant: float  # formant (and timbre) scale factor a
    vibrato_hz: float
    vibrato_cents: float
    breathiness: float  # level of envelope-shaped noise relative to the voice
    syllables: tuple[str, ...]


@dataclass(frozen=True)
class SingerSpec:
    singer_id: str
    name: str
    voice: str
    gender: str
    language: str
    persona: Persona

    def record(self, split: str) -> dict:
        return {"singer_id": self.singer_id, "name": self.name, "voice": self.voice,
                "gender": self.gender, "language": self.language,
                "persona": asdict(self.persona) | {"syllables": list(self.persona.syllables)},
                "split": split}


def all_singers() -> list[SingerSpec]:
    """The fixed table of 30 singers (8 voices x 3 or 5 personas), same in every corpus."""
    rng = np.random.default_rng(_PERSONA_SEED)
    used_names: set[str] = set()
    singers = []
    for voice, (lang, sex) in VOICES.items():
        k = PERSONAS_PER_VOICE[sex]
        # Spread registers and formant shifts over their ranges so a voice's personas differ.
        reg = _spread(rng, *REGISTER[sex], k)
        form = _spread(rng, *FORMANT, k)
        for i in range(k):
            persona = Persona(
                register=round(float(reg[i]), 2),
                formant=round(float(form[i]), 4),
                vibrato_hz=round(float(rng.uniform(4.5, 6.5)), 2),
                vibrato_cents=round(float(rng.choice([0.0, rng.uniform(10, 35)])), 1),
                breathiness=round(float(rng.uniform(0.0, 0.3)), 3),
                syllables=tuple(rng.choice(SYLLABLES[lang], size=3, replace=False).tolist()),
            )
            while True:
                name = (f"{rng.choice(FIRST_NAMES[(lang, sex)])} "
                        f"{rng.choice(LAST_NAMES[lang])}")
                if name not in used_names:
                    used_names.add(name)
                    break
            singers.append(SingerSpec(f"{voice}-{i + 1}", name, voice, sex, lang, persona))
    return singers


def _spread(rng: np.random.Generator, lo: float, hi: float, k: int) -> np.ndarray:
    pos = (np.arange(k) + rng.uniform(0.2, 0.8, size=k)) / k
    return rng.permutation(lo + (hi - lo) * pos)


def max_midi(formant: float = 1.0) -> float:
    """Highest sounding MIDI pitch a persona with this formant shift can sing."""
    return 69.0 + 12.0 * float(np.log2(MAX_RENDER_HZ * formant / 440.0))


def fit_transpose(pitches: list[float], center: float, formant: float = 1.0,
                  margin: float = 0.0) -> int:
    """Semitones that move the melody's median to ``center``, lowered if the top would be
    out of Festival's reach (``margin`` leaves room for pitch errors added later)."""
    shift = int(round(center - float(np.median(pitches))))
    top = int(np.floor(max_midi(formant) - max(pitches) - margin))
    return min(shift, top)


def _freq(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def festival_xml(notes: list[tuple[float, float, float]], syllables: list[str],
                 formant: float = 1.0) -> str:
    """Singing-mode XML for notes (onset s, offset s, MIDI) starting at time 0.

    Pitches and durations are pre-scaled for a formant shift by ``formant`` (see module doc).
    """
    lines = ['<?xml version="1.0"?>',
             '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
             '"Singing.v0_1.dtd" []>',
             '<SINGING BPM="60">']
    t = 0.0
    for (on, off, midi), syl in zip(notes, syllables, strict=True):
        if on > t + 1e-4:
            lines.append(f'<REST SECONDS="{(on - t) * formant:.4f}"></REST>')
        lines.append(f'<DURATION SECONDS="{(off - on) * formant:.4f}">'
                     f'<PITCH FREQ="{_freq(midi) / formant:.3f}">{escape(syl)}</PITCH></DURATION>')
        t = off
    lines.append("</SINGING>")
    return "\n".join(lines) + "\n"


def sing(notes: list[tuple[float, float, float]], voice: str, syllables: list[str],
         formant: float = 1.0, length: int | None = None) -> np.ndarray:
    """Festival sings ``notes``; returns float32 mono at 16 kHz with time 0 = first sample.

    ``length`` pads/trims the result to that many samples.
    """
    if not notes:
        return np.zeros(length or 0, np.float32)
    top = max(n[2] for n in notes)
    if _freq(top) / formant > MAX_RENDER_HZ:
        raise FestivalError(f"note {top:.1f} (MIDI) at formant {formant:.3f} is above the "
                            f"{MAX_RENDER_HZ:.0f} Hz Festival can sing")
    xml = festival_xml(notes, syllables, formant)
    with tempfile.TemporaryDirectory(prefix="recsys-sing-") as d:
        src, out = Path(d) / "song.xml", Path(d) / "song.wav"
        src.write_text(xml)
        proc = subprocess.run(
            ["text2wave", "-mode", "singing", str(src), "-o", str(out),
             "-eval", f"(voice_{voice})"],
            capture_output=True, text=True, timeout=300,
        )
        if proc.returncode != 0 or not out.exists() or out.stat().st_size < 100:
            raise FestivalError(f"festival ({voice}) failed: {proc.stderr.strip()[-300:]}")
        audio, sr = sf.read(out, dtype="float64", always_2d=True)
    audio = audio.mean(axis=1)
    # Playing the rendering `formant` times faster: it was made at sr, we read it as sr*a.
    audio = soxr.resample(audio, sr * formant, SR, quality="HQ")
    return _fit(audio.astype(np.float32), length)


def _fit(x: np.ndarray, length: int | None) -> np.ndarray:
    if length is None:
        return x
    if len(x) >= length:
        return x[:length].copy()
    return np.pad(x, (0, length - len(x)))


def vibrato(x: np.ndarray, rate_hz: float, depth_cents: float, phase: float = 0.0) -> np.ndarray:
    """Pitch vibrato by a slowly modulated fractional delay.

    A delay D(t) = A sin(2 pi r t) changes the instantaneous pitch by the factor 1 - D'(t), so
    A = (2^(cents/1200) - 1) / (2 pi r) gives a peak deviation of ``depth_cents``.
    """
    if depth_cents <= 0 or len(x) == 0:
        return x
    t = np.arange(len(x)) / SR
    amp = (2.0 ** (depth_cents / 1200.0) - 1.0) / (2 * np.pi * rate_hz)
    src = (t - amp * np.sin(2 * np.pi * rate_hz * t + phase)) * SR
    return np.interp(src, np.arange(len(x)), x).astype(np.float32)


def breathiness(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Add noise shaped by the voice's amplitude envelope (air through the glottis)."""
    if amount <= 0 or len(x) == 0:
        return x
    env_sos = signal.butter(2, 30, btype="low", fs=SR, output="sos")
    env = np.maximum(signal.sosfiltfilt(env_sos, np.abs(x)), 0.0)
    band = signal.butter(4, [1200, 6500], btype="band", fs=SR, output="sos")
    noise = signal.sosfilt(band, rng.standard_normal(len(x)))
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    return (x + amount * 1.6 * env * noise).astype(np.float32)


def perform(notes: list[tuple[float, float, float]], singer: SingerSpec, length: int,
            rng: np.random.Generator, syllables: list[str] | None = None) -> np.ndarray:
    """A singer sings notes (song time, sounding MIDI) with their persona's voice colour."""
    p = singer.persona
    if syllables is None:
        syllables = [p.syllables[i % len(p.syllables)] if rng.random() < 0.8
                     else str(rng.choice(p.syllables)) for i in range(len(notes))]
    y = sing(notes, singer.voice, syllables, p.formant, length)
    y = vibrato(y, p.vibrato_hz, p.vibrato_cents, float(rng.uniform(0, 2 * np.pi)))
    return breathiness(y, p.breathiness, rng)
