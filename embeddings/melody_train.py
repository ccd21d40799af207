"""Training loop of the TCAE melody encoder. Takes file paths and pairings, knows no corpus.

Each step draws a batch of positive pairs of 3 s log-mel windows:

- **hum pairs**: a window of a hum and the window of the song's vocals it imitates. When
  the hum's notes and the song note it starts on are known (corpus hums are), hum time
  maps onto song time note by note (piecewise linear between onsets and offsets), which
  follows the hummer's lead-in, tempo drift and breaths; otherwise the hum's whole length
  maps linearly onto ``start_s .. end_s``. The song window's centre is then moved by up to
  ``align_jitter_s`` either way, because catalog windows sit on a fixed 1.5 s grid and a
  hum window rarely lines up with one;
- **shift pairs**: a song window and the same passage of the song resampled by a few
  semitones (pitch and tempo move together, as when a tape runs fast).

The catalog side of a pair is what ingest will see: with probability ``separated_prob``
the song's vocals as separated from the mixture (when given), otherwise the clean vocal
stem with a random amount of the song's accompaniment mixed in (in the power domain).

Loss = ``recon_weight`` x reconstruction MSE of the stack input + ``contrast_weight`` x
symmetric InfoNCE on the pooled, L2-normalised latents (other pairs of the batch are the
negatives) + ``pitch_weight`` x (cross-entropy of the pitch posterior on voiced frames +
binary cross-entropy of voicing) where the frame's sung note is known (interval front-end
only; the corpus knows every sung and hummed note exactly).

``evaluate`` (optional): a function scoring the model on validation data (e.g. retrieval
MRR of val hums against a catalog), called every ``eval_every`` steps; the weights with
the best ``select_metric`` are the ones returned.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embeddings.audio import SAMPLE_RATE, load
from embeddings.melody import TCAE, TCAEConfig
from embeddings.windows import WINDOW_SAMPLES

UNVOICED = -1  # frame label: no note sung
UNKNOWN = -100  # frame label: nothing known (no notes given); ignored by the pitch loss

Notes = Sequence[tuple[float, float, float]]  # (onset s, offset s, MIDI)


@dataclass
class HumPair:
    """A hum (audio file) imitating ``song`` (index into the song list) from start to end.

    ``notes``: the hum's notes in hum time; ``first_note``: index of the song note its first
    note imitates. With both (and the song's notes), the pair is aligned note by note.
    """

    hum: Path
    song: int
    start_s: float
    end_s: float
    notes: Notes = ()
    first_note: int | None = None


@dataclass
class TrainSong:
    """A training song: vocal stem, accompaniment, optional separated vocals, sung notes."""

    vocals: Path
    accompaniment: Path | None = None
    separated: Path | None = None
    notes: Notes = ()


@dataclass
class TrainConfig:
    steps: int = 3000
    batch: int = 16  # pairs per step
    hum_fraction: float = 0.5  # share of a batch drawn from hum pairs (if any)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    contrast_weight: float = 1.0
    recon_weight: float = 1.0
    pitch_weight: float = 1.0  # auxiliary pitch loss (interval front-end only)
    separated_prob: float = 0.5  # catalog side from separated vocals, when available
    align_jitter_s: float = 0.75  # half the catalog window hop
    bleed_db: tuple[float, float] = (-30.0, -6.0)  # accompaniment level vs vocals
    shifts: tuple[float, ...] = (-4.0, -3.0, -2.0, 2.0, 3.0, 4.0)  # semitones, one per song
    eval_every: int = 500
    select_metric: str = "mrr"
    max_minutes: float = 0.0  # stop after this much training time (0: no limit)
    seed: int = 0
    threads: int = 2
    log_every: int = 50


@dataclass
class SongFeatures:
    """Cached raw log-mels of one song and the pitch bin of each frame."""

    vocals: np.ndarray  # (n_mels, T) float16
    accompaniment: np.ndarray | None  # (n_mels, T) float16
    separated: np.ndarray | None  # (n_mels, T) float16
    shifted: np.ndarray  # (n_mels, T') float16, vocals played ``rate`` times as fast
    shifted_accompaniment: np.ndarray | None
    rate: float
    labels: np.ndarray  # (T,) int16 pitch bin, UNVOICED or UNKNOWN
    shifted_labels: np.ndarray  # (T',) int16


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    recon: list[float] = field(default_factory=list)
    contrast: list[float] = field(default_factory=list)
    pitch: list[float] = field(default_factory=list)
    pitch_accuracy: list[float] = field(default_factory=list)  # train frames, exact bin
    val_pair_top1: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    best_step: int = 0
    seconds: float = 0.0


class MelodyTrainingError(ValueError):
    pass


def _logmel(model: TCAE, audio: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        mel = model.mel(torch.from_numpy(np.asarray(audio, np.float32))[None])[0]
    return mel.numpy().astype(np.float16)


def _resample(audio: np.ndarray, rate: float) -> np.ndarray:
    """Play ``audio`` ``rate`` times as fast (pitch up by 12*log2(rate) semitones)."""
    import soxr

    return soxr.resample(audio, SAMPLE_RATE * rate, SAMPLE_RATE).astype(np.float32)


def frame_labels(notes: Notes, frames: int, config: TCAEConfig, rate: float = 1.0,
                 shift: float = 0.0) -> np.ndarray:
    """``(frames,)`` int16: the pitch bin sung at each mel frame (frame i centred at
    ``i * hop / SAMPLE_RATE`` s), ``UNVOICED`` between notes, all ``UNKNOWN`` without notes.
    ``rate``/``shift``: the notes of the audio played ``rate`` times as fast, ``shift``
    semitones up."""
    if not len(notes):
        return np.full(frames, UNKNOWN, np.int16)
    out = np.full(frames, UNVOICED, np.int16)
    fps = SAMPLE_RATE / config.hop
    for on, off, midi in notes:
        a = max(0, int(math.ceil(on / rate * fps)))
        b = min(frames - 1, int(math.floor(off / rate * fps)))
        if b >= a:
            out[a : b + 1] = int(np.clip(round(midi + shift - config.pitch_min), 0,
                                         config.pitch_bins - 1))
    return out


def song_features(model: TCAE, song: TrainSong, shift: float) -> SongFeatures:
    rate = 2 ** (shift / 12)
    v = load(song.vocals)
    a = load(song.accompaniment) if song.accompaniment is not None else None
    if a is not None and len(a) < len(v):
        a = np.pad(a, (0, len(v) - len(a)))
    sep = load(song.separated) if song.separated is not None else None
    vocals = _logmel(model, v)
    shifted = _logmel(model, _resample(v, rate))
    c = model.config
    return SongFeatures(
        vocals=vocals,
        accompaniment=_logmel(model, a[: len(v)]) if a is not None else None,
        separated=_logmel(model, sep) if sep is not None else None,
        shifted=shifted,
        shifted_accompaniment=_logmel(model, _resample(a[: len(v)], rate))
        if a is not None else None,
        rate=rate,
        labels=frame_labels(song.notes, vocals.shape[1], c),
        shifted_labels=frame_labels(song.notes, shifted.shape[1], c, rate, shift),
    )


def time_map(pair: HumPair, song_notes: Notes, hum_seconds: float) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Knots ``(hum times, song times)`` of the piecewise-linear map from hum time to song
    time: note by note when the hum's notes and first song note are known, else the hum's
    whole length onto ``start_s .. end_s``."""
    if pair.notes and pair.first_note is not None and song_notes:
        hum_t, song_t = [], []
        for k, (on, off, _) in enumerate(pair.notes):
            i = pair.first_note + k
            if i >= len(song_notes):
                break
            hum_t += [on, off]
            song_t += [song_notes[i][0], song_notes[i][1]]
        if len(hum_t) >= 2:
            h, s = np.asarray(hum_t), np.asarray(song_t)
            keep = np.concatenate([[True], np.diff(h) > 1e-6])  # strictly increasing
            if keep.sum() >= 2:
                return h[keep], s[keep]
    return np.array([0.0, hum_seconds]), np.array([pair.start_s, pair.end_s])


class PairSampler:
    """Draws batches of positive window pairs (and their frame labels) from cached features."""

    def __init__(self, songs: list[SongFeatures], hums: list[tuple[np.ndarray, np.ndarray,
                                                                      HumPair, tuple]],
                 config: TrainConfig, fps: float, frames: int, seed: int):
        self.songs, self.hums, self.config = songs, hums, config
        self.fps, self.frames = fps, frames
        self.rng = np.random.default_rng(seed)

    def _crop(self, mel: np.ndarray, centre_s: float, labels: np.ndarray | None = None):
        start = int(round(centre_s * self.fps)) - self.frames // 2
        start = int(np.clip(start, 0, max(0, mel.shape[1] - self.frames)))
        out = mel[:, start : start + self.frames].astype(np.float32)
        lab = None if labels is None else labels[start : start + self.frames].astype(np.int64)
        if out.shape[1] < self.frames:  # song shorter than a window: pad with silence
            pad = np.full((mel.shape[0], self.frames - out.shape[1]), np.log(1e-6), np.float32)
            out = np.concatenate([out, pad], axis=1)
            if lab is not None:
                lab = np.concatenate([lab, np.full(self.frames - len(lab), UNVOICED)])
        return out if labels is None else (out, lab)

    def _bleed(self, vocal: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
        if acc is None:
            return vocal
        gain = 10 ** (self.rng.uniform(*self.config.bleed_db) / 10)
        return np.logaddexp(vocal, acc + np.float32(np.log(gain))).astype(np.float32)

    def _song_window(self, song: SongFeatures, centre_s: float, shifted: bool):
        """A catalog-like window of the song centred at ``centre_s`` (song time) and its
        labels: separated vocals, or clean vocals plus some accompaniment."""
        if shifted:
            c = centre_s / song.rate
            mel, lab = self._crop(song.shifted, c, song.shifted_labels)
            acc = (None if song.shifted_accompaniment is None
                   else self._crop(song.shifted_accompaniment, c))
            return self._bleed(mel, acc), lab
        if song.separated is not None and self.rng.random() < self.config.separated_prob:
            return self._crop(song.separated, centre_s, song.labels)
        mel, lab = self._crop(song.vocals, centre_s, song.labels)
        acc = None if song.accompaniment is None else self._crop(song.accompaniment, centre_s)
        return self._bleed(mel, acc), lab

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> ``(anchors, positives)``, each ``(batch, n_mels, frames)`` raw log-mel, and
        their frame labels, each ``(batch, frames)`` int64."""
        n_hum = int(round(self.config.batch * self.config.hum_fraction)) if self.hums else 0
        anchors, positives, a_lab, p_lab = [], [], [], []
        half = self.frames / self.fps / 2
        jitter = self.config.align_jitter_s
        for _ in range(n_hum):
            mel, labels, pair, (knots_h, knots_s) = self.hums[self.rng.integers(len(self.hums))]
            dur = mel.shape[1] / self.fps
            h = self.rng.uniform(half, max(half, dur - half))
            c = float(np.interp(h, knots_h, knots_s)) + self.rng.uniform(-jitter, jitter)
            m, lab = self._crop(mel, h, labels)
            anchors.append(m)
            a_lab.append(lab)
            m, lab = self._song_window(self.songs[pair.song], c, shifted=False)
            positives.append(m)
            p_lab.append(lab)
        for _ in range(self.config.batch - n_hum):
            song = self.songs[self.rng.integers(len(self.songs))]
            dur = song.vocals.shape[1] / self.fps
            c = self.rng.uniform(half, max(half, dur - half))
            m, lab = self._song_window(song, c, shifted=False)
            anchors.append(m)
            a_lab.append(lab)
            m, lab = self._song_window(song, c + self.rng.uniform(-jitter, jitter) / 2,
                                       shifted=True)
            positives.append(m)
            p_lab.append(lab)
        return (torch.from_numpy(np.stack(anchors)), torch.from_numpy(np.stack(positives)),
                torch.from_numpy(np.stack(a_lab)), torch.from_numpy(np.stack(p_lab)))


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of ``(B, D)`` embeddings where row i of ``a`` matches row i of ``b``."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def pitch_loss(logits: torch.Tensor | None, voicing: torch.Tensor | None,
               labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Auxiliary pitch loss: ``logits (B, P, T)``, ``voicing (B, T)``, ``labels (B, T)`` ->
    (CE on voiced frames + BCE of voicing on labelled frames, exact-bin accuracy)."""
    known = labels != UNKNOWN
    if logits is None or not bool(known.any()):
        return torch.zeros(()), float("nan")
    voiced = labels >= 0
    bce = F.binary_cross_entropy_with_logits(voicing[known], voiced[known].float())
    if not bool(voiced.any()):
        return bce, float("nan")
    frame_logits = logits.permute(0, 2, 1)[voiced]  # (n voiced, P)
    ce = F.cross_entropy(frame_logits, labels[voiced])
    accuracy = float((frame_logits.argmax(dim=1) == labels[voiced]).float().mean())
    return ce + bce, accuracy


def pair_top1(model: TCAE, anchors: torch.Tensor, positives: torch.Tensor) -> float:
    """Share of anchors whose nearest positive (among all in the set) is their own."""
    with torch.no_grad():
        a = F.normalize(model.pool(model.encode(model.normalise(anchors))), dim=1)
        b = F.normalize(model.pool(model.encode(model.normalise(positives))), dim=1)
    return float(((a @ b.T).argmax(dim=1) == torch.arange(len(a))).float().mean())


def _as_song(song: TrainSong | tuple) -> TrainSong:
    return song if isinstance(song, TrainSong) else TrainSong(*song)


def train(
    songs: Sequence[TrainSong | tuple[Path, Path | None]],
    hums: Sequence[HumPair],
    model_config: TCAEConfig | None = None,
    config: TrainConfig | None = None,
    val_songs: Sequence[TrainSong | tuple[Path, Path | None]] = (),
    val_hums: Sequence[HumPair] = (),
    progress: Callable[[str, int, int], None] | None = None,
    checkpoint: Path | None = None,
    evaluate: Callable[[TCAE], dict] | None = None,
) -> tuple[TCAE, History]:
    """Train a TCAE on ``songs`` (:class:`TrainSong` or ``(vocals, accompaniment or None)``
    paths) and ``hums``.

    ``val_*`` (optional) give a fixed set of validation pairs scored every ``log_every``
    steps (``val_pair_top1``). ``evaluate(model) -> {metric: value}`` (optional) is called
    every ``eval_every`` steps and at the end; the best ``select_metric`` wins.
    ``progress(stage, done, total)`` is called as work advances. ``checkpoint``: if given,
    the model is saved there every ``log_every`` steps.
    """
    config = config or TrainConfig()
    if not songs:
        raise MelodyTrainingError("no training songs given")
    songs = [_as_song(s) for s in songs]
    val_songs = [_as_song(s) for s in val_songs]
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = TCAE(model_config)
    report = progress or (lambda *_: None)
    fps = SAMPLE_RATE / model.config.hop

    def features(song_list, hum_list, stage):
        total = len(song_list) + len(hum_list)
        feats, hum_feats = [], []
        for i, song in enumerate(song_list):
            feats.append(song_features(model, song, float(rng.choice(config.shifts))))
            report(stage, i + 1, total)
        for j, pair in enumerate(hum_list):
            if not 0 <= pair.song < len(song_list):
                raise MelodyTrainingError(f"hum {pair.hum} points at song {pair.song}, "
                                          f"outside the {len(song_list)} songs given")
            mel = _logmel(model, load(pair.hum))
            labels = frame_labels(pair.notes, mel.shape[1], model.config)
            knots = time_map(pair, song_list[pair.song].notes, mel.shape[1] / fps)
            hum_feats.append((mel, labels, pair, knots))
            report(stage, len(song_list) + j + 1, total)
        return feats, hum_feats

    frames = WINDOW_SAMPLES // model.config.hop + 1
    train_feats, train_hums = features(songs, hums, "features (train)")
    sampler = PairSampler(train_feats, train_hums, config, fps, frames, config.seed)
    val_batch = None
    if val_songs:
        val_feats, val_hum_feats = features(val_songs, val_hums, "features (val)")
        val_config = TrainConfig(**{**config.__dict__, "batch": 256})
        val_batch = PairSampler(val_feats, val_hum_feats, val_config, fps, frames,
                                12345).batch()[:2]

    optim = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / config.steps))
    )
    history = History()
    best: tuple[float, dict] | None = None

    def run_eval(step: int) -> None:
        nonlocal best
        model.eval()
        scores = evaluate(model)
        history.eval_steps.append(step)
        history.evals.append(scores)
        value = float(scores[config.select_metric])
        if best is None or value > best[0]:
            best = (value, copy.deepcopy(model.state_dict()))
            history.best_step = step

    started = time.time()
    sums = np.zeros(4)
    accs: list[float] = []
    step = 0
    for step in range(1, config.steps + 1):
        model.train()
        anchors, positives, a_lab, p_lab = sampler.batch()
        x = model.normalise(torch.cat([anchors, positives]))
        feats, logits, voicing = model.melody(x)
        z = model.encoder(feats)
        rec = model.decoder(z)
        # the interval features are the autoencoder's input; the pitch loss shapes them
        recon = F.mse_loss(rec, feats.detach() if logits is not None else feats)
        pooled = model.pool(z)
        contrast = info_nce(pooled[: len(anchors)], pooled[len(anchors) :], config.temperature)
        pitch, acc = pitch_loss(logits, voicing, torch.cat([a_lab, p_lab]))
        loss = (config.recon_weight * recon + config.contrast_weight * contrast
                + config.pitch_weight * pitch)
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
        sched.step()
        sums += [loss.item(), recon.item(), contrast.item(), pitch.item()]
        if np.isfinite(acc):
            accs.append(acc)
        out_of_time = config.max_minutes > 0 and time.time() - started > 60 * config.max_minutes
        last = step == config.steps or out_of_time
        if step % config.log_every == 0 or last:
            n = step - (history.steps[-1] if history.steps else 0)
            history.steps.append(step)
            history.loss.append(sums[0] / n)
            history.recon.append(sums[1] / n)
            history.contrast.append(sums[2] / n)
            history.pitch.append(sums[3] / n)
            history.pitch_accuracy.append(float(np.mean(accs)) if accs else float("nan"))
            sums[:] = 0
            accs.clear()
            if val_batch is not None:
                model.eval()
                history.val_pair_top1.append(pair_top1(model, *val_batch))
            if checkpoint is not None:
                model.save(checkpoint, meta={"step": step, "history": history.__dict__})
        if evaluate is not None and (step % config.eval_every == 0 or last):
            run_eval(step)
        report("train", step, config.steps)
        if out_of_time:
            break
    history.seconds = time.time() - started
    if best is not None:
        model.load_state_dict(best[1])
    return model.eval(), history
