"""Training loop of the learned pitch tracker (:mod:`embeddings.pitch_net`). Takes audio and
notes, knows no corpus.

Each training item is a piece of singing or humming with its exact notes (``(onset s,
offset s, MIDI)``): a clean vocal stem (optionally with its accompaniment, for bleed), a
separated vocal track, or a hum. Each step draws ``batch`` random ``crop_seconds`` crops
over the items, with augmentation:

- random gain (``gain_db`` either way): levels differ between hums, stems and separations;
- for clean stems with an accompaniment, with probability ``bleed_prob``: the
  accompaniment mixed in at a random level (``bleed_db``), as an imperfect separation
  leaves it. Its notes are not the target: only the voice's are;
- with probability ``noise_prob``: a crop of pure noise or silence whose target is
  unvoiced throughout, so noise and hiss are not called pitched;
- with probability ``shift_prob``: the crop played faster or slower by up to
  ``shift_semitones`` (in whole pitch bins), which moves pitch and formants together, as a
  new singer of the same voice would (the corpus' personas differ this way); the target
  moves by the same number of bins. A tracker that saw only its training singers' registers
  and formants generalises worse to new ones.

``evaluate`` (optional) scores the model on validation audio every ``eval_every`` steps;
the weights with the best ``select_metric`` are the ones returned.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import soxr
import torch

from embeddings.audio import SAMPLE_RATE
from embeddings.pitch_net import PitchNet, PitchNetConfig, cross_entropy

Notes = Sequence[tuple[float, float, float]]


@dataclass
class PitchItem:
    """``audio`` ``(samples,)`` at 16 kHz whose sung notes are ``notes``; ``bleed``: audio
    of the same length that may be mixed in without changing the target (accompaniment)."""

    audio: np.ndarray
    notes: Notes
    kind: str  # "clean", "separated" or "hum": reported, and sampled evenly
    bleed: np.ndarray | None = None


@dataclass
class PitchTrainConfig:
    steps: int = 1500
    batch: int = 16
    crop_seconds: float = 2.0
    lr: float = 2e-3
    lr_final: float = 1e-4
    gain_db: float = 12.0
    bleed_prob: float = 0.5
    bleed_db: tuple[float, float] = (-30.0, -6.0)  # accompaniment level relative to as mixed
    noise_prob: float = 0.05
    shift_prob: float = 0.0
    shift_semitones: float = 3.0
    blur: float = 1.0
    eval_every: int = 100
    select_metric: str = "overall_accuracy"
    max_minutes: float = 0.0
    seed: int = 0
    threads: int = 1


@dataclass
class PitchHistory:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    best_step: int = 0
    seconds: float = 0.0


def target_classes(notes: Notes, frames: int, config: PitchNetConfig) -> np.ndarray:
    """``(frames,)`` training classes of a clip's notes (0: rest)."""
    from embeddings.pitch import notes_to_contour

    return config.midi_to_class(notes_to_contour(notes, frames))


class CropSampler:
    """Random augmented crops of the items: ``(batch, samples)`` audio and ``(batch,
    frames)`` classes, ``frames = 1 + samples // hop``."""

    def __init__(self, items: Sequence[PitchItem], model_config: PitchNetConfig,
                 config: PitchTrainConfig):
        if not items:
            raise ValueError("no pitch training items")
        self.items, self.mc, self.tc = list(items), model_config, config
        self.rng = np.random.default_rng(config.seed)
        self.samples = int(config.crop_seconds * SAMPLE_RATE) // model_config.hop * model_config.hop
        self.frames = 1 + self.samples // model_config.hop
        self.by_kind: dict[str, list[int]] = {}
        for i, item in enumerate(self.items):
            self.by_kind.setdefault(item.kind, []).append(i)
        self.classes = [target_classes(it.notes, 1 + len(it.audio) // model_config.hop,
                                       model_config) for it in self.items]

    def _one(self) -> tuple[np.ndarray, np.ndarray]:
        rng, tc, hop = self.rng, self.tc, self.mc.hop
        if rng.random() < tc.noise_prob:
            level = 10 ** rng.uniform(-5, -1)
            return ((rng.standard_normal(self.samples) * level).astype(np.float32),
                    np.zeros(self.frames, np.int64))
        kind = list(self.by_kind)[rng.integers(len(self.by_kind))]
        i = self.by_kind[kind][rng.integers(len(self.by_kind[kind]))]
        item = self.items[i]
        reach = int(round(tc.shift_semitones * self.mc.bins_per_semitone))
        shift = (int(rng.integers(-reach, reach + 1))
                 if tc.shift_prob and rng.random() < tc.shift_prob else 0)
        speed = 2.0 ** (shift / (12 * self.mc.bins_per_semitone))
        span = int(np.ceil(self.samples * speed))  # source samples that play as the crop
        start_frame = int(rng.integers(0, max(1, (len(item.audio) - span) // hop)))
        a = start_frame * hop
        x = np.zeros(span, np.float32)
        piece = item.audio[a: a + span]
        x[: len(piece)] = piece
        if item.bleed is not None and rng.random() < tc.bleed_prob:
            bleed = item.bleed[a: a + span]
            x[: len(bleed)] += bleed * 10 ** (rng.uniform(*tc.bleed_db) / 20)
        if shift:
            played = soxr.resample(x, SAMPLE_RATE * speed, SAMPLE_RATE)[: self.samples]
            x = np.zeros(self.samples, np.float32)
            x[: len(played)] = played
        x *= 10 ** (rng.uniform(-tc.gain_db, tc.gain_db) / 20)
        # output frame j sounds source frame j * speed, shift bins higher
        source = start_frame + np.round(np.arange(self.frames) * speed).astype(int)
        classes = self.classes[i]
        cls = np.where(source < len(classes), classes[np.minimum(source, len(classes) - 1)], 0)
        return x, np.where(cls > 0, np.clip(cls + shift, 1, self.mc.bins), 0).astype(np.int64)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*(self._one() for _ in range(self.tc.batch)), strict=True)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def train(items: Sequence[PitchItem], model_config: PitchNetConfig, config: PitchTrainConfig,
          evaluate: Callable[[PitchNet], dict] | None = None,
          progress: Callable[[str, int, int], None] | None = None,
          init: PitchNet | None = None) -> tuple[PitchNet, PitchHistory]:
    """Train a :class:`PitchNet` (from ``init`` if given) -> (best model, history)."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    model = init if init is not None else PitchNet(model_config)
    sampler = CropSampler(items, model.config, config)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps,
                                                       eta_min=config.lr_final)
    history, best, best_score = PitchHistory(), None, -np.inf
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        model.train()
        x, y = sampler.batch()
        loss = cross_entropy(model(x), y, model.config, blur=config.blur)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.steps.append(step)
        history.loss.append(round(loss.item(), 4))
        over_time = config.max_minutes and time.perf_counter() - start > 60 * config.max_minutes
        if evaluate and (step % config.eval_every == 0 or step == config.steps or over_time):
            model.eval()
            scores = evaluate(model)
            history.eval_steps.append(step)
            history.evals.append(scores)
            if scores[config.select_metric] > best_score:
                best_score, best, history.best_step = (scores[config.select_metric],
                                                       copy.deepcopy(model.state_dict()), step)
        if progress:
            progress("train pitch", step, config.steps)
        if over_time:
            break
    history.seconds = round(time.perf_counter() - start, 1)
    if best is not None:
        model.load_state_dict(best)
    else:
        history.best_step = history.steps[-1]
    return model.eval(), history


class PitchValidation:
    """Scores a model on validation items: mean melody metrics per kind and overall
    (:func:`embeddings.pitch.raw_pitch_accuracy`), the mean over kinds as ``overall_*``."""

    def __init__(self, items: Sequence[PitchItem]):
        if not items:
            raise ValueError("no pitch validation items")
        self.items = list(items)

    def __call__(self, model: PitchNet) -> dict:
        from embeddings.pitch import notes_to_contour, raw_pitch_accuracy
        from embeddings.pitch_net import PitchTracker

        tracker = PitchTracker(model, version="eval")
        by_kind: dict[str, list[dict]] = {}
        for item in self.items:
            est = tracker(item.audio)
            by_kind.setdefault(item.kind, []).append(
                raw_pitch_accuracy(est, notes_to_contour(item.notes, len(est))))
        out: dict = {}
        for kind, rows in by_kind.items():
            for key in rows[0]:
                out[f"{kind}_{key}"] = round(float(np.mean([r[key] for r in rows])), 4)
        for key in ("overall_accuracy", "raw_pitch_accuracy", "voicing_false_alarm"):
            out[key if key == "overall_accuracy" else f"mean_{key}"] = round(float(np.mean(
                [out[f"{k}_{key}"] for k in by_kind])), 4)
        return out
