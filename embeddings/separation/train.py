"""Training of the BSRNN: random-remix batches, L1 loss, validation SDR, resumable checkpoints,
and the semi-supervised step of the BSRNN paper (pseudo-labels kept by an energy filter).

Everything here takes arrays (16 kHz mono float32); reading a corpus or a folder of songs is
the caller's job (``recsys train separator``).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soxr
import torch

from embeddings.audio import SAMPLE_RATE
from embeddings.separation.bsrnn import BSRNN

ENERGY_THRESHOLD_DB = 30.0


@dataclass
class TrainConfig:
    """How to train. One epoch is ``steps_per_epoch`` batches of random segments."""

    epochs: int = 20
    steps_per_epoch: int = 60
    batch_size: int = 4
    segment_seconds: float = 3.0
    lr: float = 1e-3
    lr_final: float | None = None  # cosine decay to this by the last epoch; None: constant
    clip_grad: float = 5.0
    remix_prob: float = 0.5  # share of examples whose stems come from different songs
    gain_low: float = 0.25
    gain_high: float = 1.25
    pseudo_prob: float = 0.5  # chance a stem is drawn from the pseudo-labelled pool, if any
    shift_prob: float = 0.0  # share of examples whose vocals are played faster or slower,
    shift_semitones: float = 4.0  # by up to this much either way (pitch and formants move)
    seed: int = 0


@dataclass
class Pools:
    """Stems to draw training examples from.

    ``vocals[i]`` and ``accompaniment[i]`` are the stems of labelled song ``i`` (same length);
    ``pseudo_vocals`` and ``pseudo_accompaniment`` are clean windows mined from unlabelled
    songs (each any length >= one segment).
    """

    vocals: list[np.ndarray]
    accompaniment: list[np.ndarray]
    pseudo_vocals: list[np.ndarray] = field(default_factory=list)
    pseudo_accompaniment: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self):
        if not self.vocals or len(self.vocals) != len(self.accompaniment):
            raise ValueError("need at least one labelled song, with both stems")


def separation_loss(model: BSRNN, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on the waveform plus L1 on the real and imaginary STFT; ``(batch, samples)`` each."""
    wave = (estimate - target).abs().mean()
    spec = (model.stft(estimate) - model.stft(target)).abs().mean()
    return wave + spec


def sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-8) -> float:
    """Global signal-to-distortion ratio in dB (the MDX-challenge 'SDR'; no BSSEval frames)."""
    num = float(np.sum(reference.astype(np.float64) ** 2))
    den = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    return 10.0 * math.log10((num + eps) / (den + eps))


def _crop(x: np.ndarray, n: int, rng: np.random.Generator, start: int | None = None):
    if len(x) < n:
        return np.pad(x, (0, n - len(x))), 0
    if start is None:
        start = int(rng.integers(0, len(x) - n + 1))
    return x[start : start + n], start


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return np.pad(x[:n], (0, max(0, n - len(x))))


def sample_batch(pools: Pools, cfg: TrainConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch of ``(mixture, vocals)``, each ``(batch, segment)``, by random remixing.

    With probability ``remix_prob`` the vocals and the accompaniment come from different
    songs (and offsets) — the thesis' random remix; otherwise they are one song's aligned
    stems. Each stem is scaled by a gain from U[gain_low, gain_high]. When pseudo-labelled
    windows exist, each stem is drawn from them with probability ``pseudo_prob``.

    With probability ``shift_prob`` the vocals are played faster or slower, by up to
    ``shift_semitones`` either way, which moves their pitch and formants together: a
    singer of the same voice in another register, as the corpus' personas are. A separator
    trained on a few registers of a voice loses that voice in a register it never heard.
    """
    n = int(cfg.segment_seconds * SAMPLE_RATE)
    mixes, targets = [], []
    for _ in range(cfg.batch_size):
        i = int(rng.integers(len(pools.vocals)))
        speed = (2.0 ** (rng.uniform(-cfg.shift_semitones, cfg.shift_semitones) / 12)
                 if cfg.shift_prob and rng.random() < cfg.shift_prob else 1.0)
        m = int(np.ceil(n * speed))  # vocal samples that play as the segment
        if rng.random() < cfg.remix_prob:
            others = len(pools.accompaniment) - 1  # another song's stem, when there is one
            j = (i + 1 + int(rng.integers(others))) % len(pools.accompaniment) if others else i
            v, _ = _crop(pools.vocals[i], m, rng)
            a, _ = _crop(pools.accompaniment[j], n, rng)
        else:
            v, start = _crop(pools.vocals[i], max(m, n), rng)  # both stems fit from start
            v = v[:m]
            a, _ = _crop(pools.accompaniment[i], n, rng, start=start)
        if speed != 1.0:
            v = _fit(soxr.resample(v, SAMPLE_RATE * speed, SAMPLE_RATE), n)
        if pools.pseudo_vocals and rng.random() < cfg.pseudo_prob:
            v, _ = _crop(pools.pseudo_vocals[int(rng.integers(len(pools.pseudo_vocals)))], n, rng)
        if pools.pseudo_accompaniment and rng.random() < cfg.pseudo_prob:
            k = int(rng.integers(len(pools.pseudo_accompaniment)))
            a, _ = _crop(pools.pseudo_accompaniment[k], n, rng)
        gv, ga = rng.uniform(cfg.gain_low, cfg.gain_high, size=2)
        v, a = gv * v, ga * a
        mixes.append(v + a)
        targets.append(v)
    return np.stack(mixes).astype(np.float32), np.stack(targets).astype(np.float32)


@torch.no_grad()
def validate(model: BSRNN, items: Sequence[tuple[np.ndarray, np.ndarray]],
             device: str = "cpu") -> float:
    """Mean global vocals SDR (dB) over ``(mixture, vocals)`` excerpts, whole-excerpt passes."""
    model.eval()
    scores = []
    for mixture, vocals in items:
        x = torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32))[None].to(device)
        est = model(x)[0].cpu().numpy()
        scores.append(sdr(vocals, est))
    return float(np.mean(scores)) if scores else float("nan")


def energy_filter(target: np.ndarray, residual: np.ndarray, window: int,
                  threshold_db: float = ENERGY_THRESHOLD_DB,
                  silence_db: float = -60.0) -> tuple[np.ndarray, np.ndarray]:
    """Which non-overlapping windows of a separated pair are clean, by energy (BSRNN paper).

    ``target`` and ``residual`` are ``(samples,)`` (separated vocals and the rest). For each
    window, ``E = 10 log10(mean power)``. Returns two boolean ``(windows,)`` arrays:
    ``clean_target`` where ``E_target - E_residual >= threshold_db`` (the window is the
    target alone, so the separated target is a clean target example) and ``clean_residual``
    where ``E_residual - E_target >= threshold_db`` (the target is silent, so the residual
    is a clean accompaniment example). Windows where the kept signal is below
    ``silence_db`` are dropped as silence.
    """
    n = min(len(target), len(residual)) // window
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    t = target[: n * window].astype(np.float64).reshape(n, window)
    r = residual[: n * window].astype(np.float64).reshape(n, window)
    et = 10 * np.log10(np.mean(t**2, axis=1) + 1e-12)
    er = 10 * np.log10(np.mean(r**2, axis=1) + 1e-12)
    clean_target = (et - er >= threshold_db) & (et > silence_db)
    clean_residual = (er - et >= threshold_db) & (er > silence_db)
    return clean_target, clean_residual


def mine_pseudo_labels(separate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                       mixtures: Iterable[np.ndarray], window: int,
                       threshold_db: float = ENERGY_THRESHOLD_DB,
                       on_item: Callable[[], None] | None = None,
                       ) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """Separate unlabelled mixtures and keep the windows the energy filter passes.
    ``mixtures`` may be a generator: each is separated and dropped before the next.

    Returns ``(clean_vocals, clean_accompaniment, stats)``: lists of ``(window,)`` arrays and
    counts of windows seen and kept.
    """
    vocals, accompaniment = [], []
    seen = 0
    for mixture in mixtures:
        v, a = separate(mixture)
        keep_v, keep_a = energy_filter(v, a, window, threshold_db)
        seen += len(keep_v)
        vocals += [v[k * window : (k + 1) * window].copy() for k in np.flatnonzero(keep_v)]
        accompaniment += [a[k * window : (k + 1) * window].copy() for k in np.flatnonzero(keep_a)]
        if on_item:
            on_item()
    stats = {"windows": seen, "clean_vocals": len(vocals),
             "clean_accompaniment": len(accompaniment)}
    return vocals, accompaniment, stats


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` (0-based): constant, or cosine from ``lr`` to ``lr_final``.

    A function of the epoch alone, so a resumed run follows the same schedule.
    """
    if cfg.lr_final is None or cfg.epochs <= 1:
        return cfg.lr
    progress = min(epoch / (cfg.epochs - 1), 1.0)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * progress))


def train(model: BSRNN, pools: Pools, val_items: Sequence[tuple[np.ndarray, np.ndarray]],
          cfg: TrainConfig, out_dir: str | os.PathLike, device: str = "cpu",
          resume: bool = False, meta: dict | None = None,
          on_step: Callable[[int, float], None] | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``model`` in place; one checkpoint per epoch; returns the per-epoch history.

    Writes ``out_dir/last.pt`` (model, optimiser, RNG and history, for ``resume``) after every
    epoch and ``out_dir/best.safetensors`` (+ ``.json`` with ``val_sdr``) whenever the
    validation SDR improves (every epoch, with ``val_sdr`` null, when there is no
    validation data). ``on_step(step, loss)`` and ``on_epoch(record)`` report progress.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    history: list[dict] = []
    best = -math.inf
    start_epoch = 0
    ckpt_path = out_dir / "last.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["rng"]
        history = ckpt["history"]
        # the starting weights' score (epoch 0) is not in the history; older checkpoints
        # lack "best", so they fall back to the history's
        best = ckpt.get("best", max((h["val_sdr"] for h in history), default=-math.inf))
        start_epoch = len(history)
    elif val_items:
        # the starting point counts as a candidate, so fine-tuning never ships a worse model
        best = validate(model, val_items, device)
        model.save(out_dir / "best.safetensors", **(meta or {}), val_sdr=best, epoch=0,
                   train_config=asdict(cfg))
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.time()
        losses = []
        for group in opt.param_groups:
            group["lr"] = epoch_lr(cfg, epoch)
        for step in range(cfg.steps_per_epoch):
            mix, voc = sample_batch(pools, cfg, rng)
            mix_t, voc_t = torch.from_numpy(mix).to(device), torch.from_numpy(voc).to(device)
            loss = separation_loss(model, model(mix_t), voc_t)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            losses.append(loss.item())
            if on_step:
                on_step(step, losses[-1])
        val = validate(model, val_items, device) if val_items else float("nan")
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_sdr": val,
                  "lr": epoch_lr(cfg, epoch), "seconds": time.time() - t0}
        history.append(record)
        if not val_items or val > best:  # without validation the latest is the best known
            best = val
            model.save(out_dir / "best.safetensors", **(meta or {}),
                       val_sdr=val if val_items else None, epoch=epoch + 1,
                       train_config=asdict(cfg))
        _atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "rng": rng.bit_generator.state, "history": history,
                            "best": best, "config": asdict(model.config)}, ckpt_path)
        if on_epoch:
            on_epoch(record)
    return history
