"""Hum queries: a person hums or sings an 8-15 s span of a song's tune, imperfectly.

The "person" is a Festival voice other than the song's, with a random register and voice
colour, who transposes, speeds up or slows down, drifts in timing, misses some notes,
breathes between phrases and is recorded with background noise. Every parameter is
returned so the query record can state exactly what was done.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from recsys.corpus.singers import (
    REGISTER,
    SR,
    SYLLABLES,
    VOICES,
    Persona,
    SingerSpec,
    fit_transpose,
    perform,
)

MIN_NOTE_S = 0.1


def choose_span(notes: list[tuple[float, float, float]], rng: np.random.Generator,
                min_s: float = 8.0, max_s: float = 15.0) -> list[int]:
    """Indices of consecutive notes covering a random 8-15 s span starting at any note.

    Notes are added until the span reaches a random target length, never past ``max_s``;
    a song whose melody is shorter than ``min_s`` gives all its notes.
    """
    want = float(rng.uniform(min_s, max_s))
    last_off = notes[-1][1]
    starts = [i for i, n in enumerate(notes) if n[0] + min_s <= last_off] or [0]
    i0 = int(rng.choice(starts))
    t0 = notes[i0][0]
    idx = [i0]
    for i in range(i0 + 1, len(notes)):
        if notes[idx[-1]][1] - t0 >= want or notes[i][1] - t0 > max_s:
            break
        idx.append(i)
    return idx


def make_query(song_notes: list[tuple[float, float, float]], song_voice: str | None,
               rng: np.random.Generator) -> tuple[np.ndarray, dict, list, float, float]:
    """Render one hum query of a song.

    Returns (audio float32 16 kHz, params, notes in query time, start_s, end_s) where
    start_s/end_s are the imitated span in the song's time.
    """
    idx = choose_span(song_notes, rng)
    span = [song_notes[i] for i in idx]
    start_s, end_s = span[0][0], span[-1][1]

    voice = str(rng.choice([v for v in VOICES if v != song_voice]))
    lang, sex = VOICES[voice]
    register = float(rng.uniform(*REGISTER[sex]))
    formant = float(rng.uniform(0.94, 1.06))
    # 2.5 semitones of room for the wrong notes and intonation noise added below
    transpose = fit_transpose([n[2] for n in span], register, formant, margin=2.5)
    tempo = float(rng.uniform(0.7, 1.4))
    jitter_s = float(rng.uniform(0.01, 0.06))
    p_wrong = float(rng.uniform(0.0, 0.15))
    cents_sd = float(rng.uniform(5.0, 25.0))
    p_breath = float(rng.uniform(0.05, 0.2))
    hummed = bool(rng.random() < 0.5)
    lead_in = float(rng.uniform(0.3, 1.0))

    notes: list[tuple[float, float, float]] = []
    wrong: list[int] = []
    breaths: list[int] = []
    delay = lead_in
    for k, (on, off, midi) in enumerate(span):
        if k > 0 and rng.random() < p_breath:
            delay += float(rng.uniform(0.15, 0.4))
            breaths.append(k)
        a = (on - start_s) / tempo + delay + rng.normal(0, jitter_s)
        b = (off - start_s) / tempo + delay + rng.normal(0, jitter_s)
        if notes:
            a = max(a, notes[-1][1])
        b = max(b, a + MIN_NOTE_S)
        pitch = midi + transpose + float(np.clip(rng.normal(0, cents_sd / 100), -0.45, 0.45))
        if rng.random() < p_wrong:
            pitch += float(rng.choice([-2, -1, -1, 1, 1, 2]))
            wrong.append(k)
        notes.append((round(a, 4), round(b, 4), round(float(pitch), 3)))
    length = int((notes[-1][1] + rng.uniform(0.3, 0.8)) * SR)

    hummer = SingerSpec(
        singer_id=f"hummer-{voice}", name="hummer", voice=voice, gender=sex, language=lang,
        persona=Persona(register=register, formant=formant,
                        vibrato_hz=float(rng.uniform(4.5, 6.5)),
                        vibrato_cents=float(rng.uniform(0.0, 20.0)),
                        breathiness=float(rng.uniform(0.0, 0.3)),
                        syllables=("hum",) if hummed else tuple(SYLLABLES[lang][:3])),
    )
    y = perform(notes, hummer, length, rng)

    noise_kind = str(rng.choice(["white", "pink", "brown"]))
    snr_db = float(rng.uniform(10.0, 30.0))
    active = y[np.abs(y) > 0.05 * (np.abs(y).max() + 1e-9)]
    sig_rms = float(np.sqrt(np.mean(active**2))) if active.size else 1e-3
    noise = colored_noise(noise_kind, len(y), rng)
    y = y + noise * sig_rms * 10 ** (-snr_db / 20)
    peak = float(rng.uniform(0.3, 0.9))
    y = (y / (np.abs(y).max() + 1e-9) * peak).astype(np.float32)

    params = {
        "voice": voice, "hummed": hummed, "transpose_semitones": transpose,
        "tempo_factor": round(tempo, 4), "timing_jitter_s": round(jitter_s, 4),
        "pitch_error_prob": round(p_wrong, 4), "wrong_notes": wrong,
        "intonation_sd_cents": round(cents_sd, 2), "breath_prob": round(p_breath, 4),
        "breath_gaps_before_notes": breaths, "lead_in_s": round(lead_in, 4),
        "noise": noise_kind, "snr_db": round(snr_db, 2),
        "formant": round(hummer.persona.formant, 4),
        "vibrato_cents": round(hummer.persona.vibrato_cents, 2),
        "breathiness": round(hummer.persona.breathiness, 3),
        "n_notes": len(notes), "song_note_indices": [int(idx[0]), int(idx[-1])],
    }
    return y, params, notes, float(start_s), float(end_s)


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f^2) noise."""
    x = rng.standard_normal(n)
    if kind == "pink":
        # Paul Kellet's economy filter approximation of 1/f
        b, a = [0.049922035, -0.095993537, 0.050612699, -0.004408786], \
            [1, -2.494956002, 2.017265875, -0.522189400]
        x = signal.lfilter(b, a, x)
    elif kind == "brown":
        x = signal.lfilter([1.0], [1.0, -0.995], x)
    x = x - x.mean()
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)
