"""Training loop of the TCAE melody encoder. Takes file paths and pairings, knows no corpus.

Each step draws a batch of positive pairs of 3 s log-mel windows:

- **hum pairs**: a window of a hum and the window of the song's vocals it imitates
  (the hum covers ``start_s .. end_s`` of the song; hum time maps linearly onto that span),
  so transposition, tempo change, pitch errors and another voice are all positives;
- **shift pairs**: a song window and the same passage of the song resampled by a few
  semitones (pitch and tempo move together, as when a tape runs fast).

Catalog-side windows get a random amount of the song's accompaniment mixed in (in the
power domain), because at ingest the encoder sees separated vocals with residue.

Loss = reconstruction MSE of both windows + ``contrast_weight`` x symmetric InfoNCE on the
pooled, L2-normalised latents (other pairs of the batch are the negatives).
"""

from __future__ import annotations

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


@dataclass
class HumPair:
    """A hum (audio file) imitating ``song`` (index into the song list) from start to end."""

    hum: Path
    song: int
    start_s: float
    end_s: float


@dataclass
class TrainConfig:
    steps: int = 3000
    batch: int = 16  # pairs per step
    hum_fraction: float = 0.5  # share of a batch drawn from hum pairs (if any)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    contrast_weight: float = 1.0
    bleed_db: tuple[float, float] = (-30.0, -6.0)  # accompaniment level vs vocals
    shifts: tuple[float, ...] = (-4.0, -3.0, -2.0, 2.0, 3.0, 4.0)  # semitones, one per song
    seed: int = 0
    threads: int = 2
    log_every: int = 50


@dataclass
class SongFeatures:
    """Cached raw log-mels of one song: vocals, accompaniment, and a resampled copy."""

    vocals: np.ndarray  # (n_mels, T) float16
    accompaniment: np.ndarray | None  # (n_mels, T) float16
    shifted: np.ndarray  # (n_mels, T') float16, vocals played ``rate`` times as fast
    shifted_accompaniment: np.ndarray | None
    rate: float


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    recon: list[float] = field(default_factory=list)
    contrast: list[float] = field(default_factory=list)
    val_pair_top1: list[float] = field(default_factory=list)
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


def song_features(
    model: TCAE, vocals: Path, accompaniment: Path | None, shift: float
) -> SongFeatures:
    rate = 2 ** (shift / 12)
    v = load(vocals)
    a = load(accompaniment) if accompaniment is not None else None
    return SongFeatures(
        vocals=_logmel(model, v),
        accompaniment=_logmel(model, a[: len(v)]) if a is not None else None,
        shifted=_logmel(model, _resample(v, rate)),
        shifted_accompaniment=_logmel(model, _resample(a, rate)) if a is not None else None,
        rate=rate,
    )


class PairSampler:
    """Draws batches of positive window pairs from cached features."""

    def __init__(self, songs: list[SongFeatures], hums: list[tuple[np.ndarray, HumPair]],
                 config: TrainConfig, fps: float, frames: int, seed: int):
        self.songs, self.hums, self.config = songs, hums, config
        self.fps, self.frames = fps, frames
        self.rng = np.random.default_rng(seed)

    def _crop(self, mel: np.ndarray, centre_s: float) -> np.ndarray:
        start = int(round(centre_s * self.fps)) - self.frames // 2
        start = int(np.clip(start, 0, max(0, mel.shape[1] - self.frames)))
        out = mel[:, start : start + self.frames].astype(np.float32)
        if out.shape[1] < self.frames:  # song shorter than a window: pad with silence
            pad = np.full((mel.shape[0], self.frames - out.shape[1]), np.log(1e-6), np.float32)
            out = np.concatenate([out, pad], axis=1)
        return out

    def _bleed(self, vocal: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
        if acc is None:
            return vocal
        gain = 10 ** (self.rng.uniform(*self.config.bleed_db) / 10)
        return np.logaddexp(vocal, acc + np.float32(np.log(gain))).astype(np.float32)

    def _song_window(self, song: SongFeatures, centre_s: float, shifted: bool) -> np.ndarray:
        if shifted:
            c = centre_s / song.rate
            return self._bleed(self._crop(song.shifted, c),
                               None if song.shifted_accompaniment is None
                               else self._crop(song.shifted_accompaniment, c))
        return self._bleed(self._crop(song.vocals, centre_s),
                           None if song.accompaniment is None
                           else self._crop(song.accompaniment, centre_s))

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(anchors, positives)``, each ``(batch, n_mels, frames)`` raw log-mel."""
        n_hum = int(round(self.config.batch * self.config.hum_fraction)) if self.hums else 0
        anchors, positives = [], []
        half = self.frames / self.fps / 2
        for _ in range(n_hum):
            mel, pair = self.hums[self.rng.integers(len(self.hums))]
            dur = mel.shape[1] / self.fps
            h = self.rng.uniform(half, max(half, dur - half))
            c = pair.start_s + h / dur * (pair.end_s - pair.start_s)
            anchors.append(self._crop(mel, h))
            positives.append(self._song_window(self.songs[pair.song], c, shifted=False))
        for _ in range(self.config.batch - n_hum):
            song = self.songs[self.rng.integers(len(self.songs))]
            dur = song.vocals.shape[1] / self.fps
            c = self.rng.uniform(half, max(half, dur - half))
            anchors.append(self._song_window(song, c, shifted=False))
            positives.append(self._song_window(song, c, shifted=True))
        return torch.from_numpy(np.stack(anchors)), torch.from_numpy(np.stack(positives))


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of ``(B, D)`` embeddings where row i of ``a`` matches row i of ``b``."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def pair_top1(model: TCAE, anchors: torch.Tensor, positives: torch.Tensor) -> float:
    """Share of anchors whose nearest positive (among all in the set) is their own."""
    with torch.no_grad():
        a = F.normalize(model.pool(model.encode(model.normalise(anchors))), dim=1)
        b = F.normalize(model.pool(model.encode(model.normalise(positives))), dim=1)
    return float(((a @ b.T).argmax(dim=1) == torch.arange(len(a))).float().mean())


def train(
    songs: Sequence[tuple[Path, Path | None]],
    hums: Sequence[HumPair],
    model_config: TCAEConfig | None = None,
    config: TrainConfig | None = None,
    val_songs: Sequence[tuple[Path, Path | None]] = (),
    val_hums: Sequence[HumPair] = (),
    progress: Callable[[str, int, int], None] | None = None,
    checkpoint: Path | None = None,
) -> tuple[TCAE, History]:
    """Train a TCAE on ``songs`` (``(vocals, accompaniment or None)`` paths) and ``hums``.

    ``val_*`` (optional) give a fixed set of validation pairs scored every ``log_every``
    steps (``val_pair_top1``). ``progress(stage, done, total)`` is called as work advances.
    ``checkpoint``: if given, the model is saved there every ``log_every`` steps.
    """
    config = config or TrainConfig()
    if not songs:
        raise MelodyTrainingError("no training songs given")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = TCAE(model_config)
    report = progress or (lambda *_: None)

    def features(song_list, hum_list, stage):
        total = len(song_list) + len(hum_list)
        feats, hum_feats = [], []
        for i, (v, a) in enumerate(song_list):
            feats.append(song_features(model, v, a, float(rng.choice(config.shifts))))
            report(stage, i + 1, total)
        for j, pair in enumerate(hum_list):
            hum_feats.append((_logmel(model, load(pair.hum)), pair))
            report(stage, len(song_list) + j + 1, total)
        return feats, hum_feats

    fps = SAMPLE_RATE / model.config.hop
    frames = WINDOW_SAMPLES // model.config.hop + 1
    train_feats, train_hums = features(songs, hums, "features (train)")
    sampler = PairSampler(train_feats, train_hums, config, fps, frames, config.seed)
    val_batch = None
    if val_songs:
        val_feats, val_hum_feats = features(val_songs, val_hums, "features (val)")
        val_config = TrainConfig(**{**config.__dict__, "batch": 256})
        val_batch = PairSampler(val_feats, val_hum_feats, val_config, fps, frames, 12345).batch()

    optim = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / config.steps))
    )
    history = History()
    started = time.time()
    sums = np.zeros(3)
    for step in range(1, config.steps + 1):
        model.train()
        anchors, positives = sampler.batch()
        x = model.normalise(torch.cat([anchors, positives]))
        z, rec = model(x)
        recon = F.mse_loss(rec, x)
        pooled = model.pool(z)
        contrast = info_nce(pooled[: len(anchors)], pooled[len(anchors) :], config.temperature)
        loss = recon + config.contrast_weight * contrast
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
        sched.step()
        sums += [loss.item(), recon.item(), contrast.item()]
        if step % config.log_every == 0 or step == config.steps:
            n = step - (history.steps[-1] if history.steps else 0)
            history.steps.append(step)
            history.loss.append(sums[0] / n)
            history.recon.append(sums[1] / n)
            history.contrast.append(sums[2] / n)
            sums[:] = 0
            if val_batch is not None:
                model.eval()
                history.val_pair_top1.append(pair_top1(model, *val_batch))
            if checkpoint is not None:
                model.save(checkpoint, meta={"step": step, "history": history.__dict__})
        report("train", step, config.steps)
    history.seconds = time.time() - started
    return model.eval(), history
