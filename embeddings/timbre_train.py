"""Contrastive training of the timbre encoder (Yakura, Watanabe & Goto, TASLP 2022, adapted).

Each batch takes ``singers_per_batch`` singers and ``views`` windows of each, from
different songs where the singer has them. Windows of the same singer are positives
(supervised NT-Xent). Negatives are the other singers' windows **and** a pitch-shifted
(same tempo) and a time-stretched (same pitch) copy of each anchor window, so that the
embedding keeps timbre and singing style rather than register or tempo.

The copies are made once with librosa (phase vocoder; slow) when the window set is built,
and everything is cached as log-mel. Augmentation (gain, EQ tilt, small reverb, noise)
is applied on the cached mel power, which is cheap and needs no waveform.

Separation residue: the window set can also keep, for each (separated) window, the same
window of the clean vocal stem and of the accompaniment stem. Training then shows some
windows as clean vocals with accompaniment bled in at a random level, and gives some
separated windows extra residue (:class:`TrainConfig` ``clean_prob`` / ``residue_prob``),
so the encoder learns to ignore what the separator leaves behind.

This module takes arrays and labels; reading a corpus is the caller's job
(``recsys train timbre``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from embeddings.timbre import TimbreConfig, TimbreNet
from embeddings.windows import WINDOW_SAMPLES, cut

PITCH_STEPS = (-4, -3, -2, 2, 3, 4)  # semitones; far enough to be a different register
STRETCH_RATES = (0.75, 0.8, 0.85, 1.2, 1.25, 1.33)


OPTIONAL = ("shifted", "stretched", "clean", "accomp", "weight", "gender")


@dataclass
class WindowSet:
    """Cached log-mel windows with labels, their negative copies, and their stems.

    ``logmel (N, n_mels, frames)`` float16 (the vocals training sees: separated, or clean
    stems); ``singer (N,)`` and ``track (N,)`` int labels. Optional, ``None`` when absent:
    ``shifted`` / ``stretched`` the same shape as ``logmel``: log-mel of the pitch-shifted
    and time-stretched copy of each window; ``clean`` / ``accomp``: log-mel of the same
    window of the clean vocal stem and of the accompaniment stem (for bleed augmentation);
    ``weight (N,)`` float32: the window's voicing score
    (:func:`embeddings.voicing.voicing_scores`); ``gender (N,)`` int: 1 male, 0 female
    (set by the caller, for the joint gender loss of :func:`train`).
    """

    logmel: np.ndarray
    singer: np.ndarray
    track: np.ndarray
    shifted: np.ndarray | None = None
    stretched: np.ndarray | None = None
    clean: np.ndarray | None = None
    accomp: np.ndarray | None = None
    weight: np.ndarray | None = None
    gender: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.singer)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"logmel": self.logmel, "singer": self.singer, "track": self.track}
        arrays.update({k: getattr(self, k) for k in OPTIONAL if getattr(self, k) is not None})
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # several writers may race
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def concat(cls, parts: Sequence[WindowSet]) -> WindowSet:
        """One set from several (labels kept as they are; an optional array is kept only
        when every part has it)."""
        if not parts:
            raise ValueError("no windows to train on")
        optional = {
            k: np.concatenate([getattr(p, k) for p in parts])
            if all(getattr(p, k) is not None for p in parts) else None
            for k in OPTIONAL
        }
        return cls(
            np.concatenate([p.logmel for p in parts]),
            np.concatenate([p.singer for p in parts]),
            np.concatenate([p.track for p in parts]),
            **optional,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> WindowSet:
        with np.load(path) as z:
            return cls(z["logmel"], z["singer"], z["track"],
                       **{k: z[k] if k in z else None for k in OPTIONAL})


def pitch_shifted(window: np.ndarray, steps: float) -> np.ndarray:
    """Same length, pitch moved by ``steps`` semitones (formants move with it)."""
    import librosa

    return librosa.effects.pitch_shift(window, sr=16000, n_steps=steps).astype(np.float32)


def time_stretched(track: np.ndarray, start: int, rate: float) -> np.ndarray:
    """``WINDOW_SAMPLES`` of ``track`` from ``start`` played ``rate`` times faster, same pitch.

    The source span is ``rate`` windows long so the result fills one window.
    """
    import librosa

    span = int(round(WINDOW_SAMPLES * rate))
    # Slide the span back inside the track so the copy has no padded silence to give it away.
    start = max(0, min(start, len(track) - span))
    segment = track[start : start + span]
    if len(segment) < span:
        segment = np.pad(segment, (0, span - len(segment)))
    out = librosa.effects.time_stretch(segment, rate=rate)
    out = out[:WINDOW_SAMPLES]
    return np.pad(out, (0, WINDOW_SAMPLES - len(out))).astype(np.float32)


def build_window_set(
    tracks: Sequence[np.ndarray | str | os.PathLike],
    singers: Sequence[int],
    config: TimbreConfig,
    max_windows_per_track: int = 8,
    copies: bool = True,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    mixtures: Sequence[np.ndarray | str | os.PathLike] | None = None,
    stems: Sequence[tuple[np.ndarray | str | os.PathLike, np.ndarray | str | os.PathLike]]
    | None = None,
) -> WindowSet:
    """Cut each vocal track into windows, keep up to ``max_windows_per_track`` voiced ones
    (spread over the track), and cache their log-mel (plus negative copies if ``copies``)
    and voicing scores.

    ``tracks``: ``(samples,)`` 16 kHz vocals (separated or clean) or paths to them;
    ``singers``: one int label per track. Track ``i`` gets track label ``i``. Tracks
    without a voiced window are skipped. ``mixtures`` (optional, one per track): the
    mixtures, so the voicing test also asks the vocals for a share of the mixture's
    energy, as ingest does. ``stems`` (optional, one ``(clean vocals, accompaniment)``
    pair per track): their log-mel at the same windows is kept too (``clean``,
    ``accomp``), for bleed augmentation in :func:`train`.
    """
    from embeddings.audio import load
    from embeddings.voicing import VoicingConfig, voicing_scores

    if len(tracks) != len(singers):
        raise ValueError(f"{len(tracks)} tracks but {len(singers)} singer labels")
    for name, extra in (("mixtures", mixtures), ("stems", stems)):
        if extra is not None and len(extra) != len(tracks):
            raise ValueError(f"{len(tracks)} tracks but {len(extra)} {name}")
    rng = np.random.default_rng(seed)
    logmel = TimbreNet(config).logmel
    min_score = VoicingConfig().min_voiced_fraction
    out: dict[str, list] = {k: [] for k in ("logmel", "shifted", "stretched", "clean",
                                            "accomp", "weight", "singer", "track")}

    def read(x):
        return x if isinstance(x, np.ndarray) else load(x)

    def to_mel(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return logmel(torch.from_numpy(np.asarray(batch, np.float32))).numpy().astype(
                np.float16
            )

    def same_windows(audio: np.ndarray, length: int) -> np.ndarray:
        # stems and mixtures are cut like the vocals (padded or trimmed to their length)
        audio = read(audio)[:length]
        return cut(np.pad(audio, (0, length - len(audio)))).audio

    for i, (track, singer) in enumerate(zip(tracks, singers, strict=True)):
        audio = read(track)
        windows = cut(audio)
        mix = same_windows(mixtures[i], len(audio)) if mixtures is not None else None
        score = voicing_scores(windows.audio, track_vocals=audio, mixture_windows=mix)
        keep = np.flatnonzero(score >= min_score)
        if len(keep) > max_windows_per_track:
            keep = keep[np.linspace(0, len(keep) - 1, max_windows_per_track).round().astype(int)]
        if len(keep):
            out["logmel"].append(to_mel(windows.audio[keep]))
            out["weight"].append(score[keep])
            out["singer"] += [singer] * len(keep)
            out["track"] += [i] * len(keep)
            if stems is not None:
                clean, accomp = stems[i]
                out["clean"].append(to_mel(same_windows(clean, len(audio))[keep]))
                out["accomp"].append(to_mel(same_windows(accomp, len(audio))[keep]))
            if copies:
                starts = (windows.starts[keep] * 16000).round().astype(int)
                out["shifted"].append(to_mel(np.stack([
                    pitch_shifted(windows.audio[k], rng.choice(PITCH_STEPS)) for k in keep
                ])))
                out["stretched"].append(to_mel(np.stack([
                    time_stretched(audio, s, rng.choice(STRETCH_RATES)) for s in starts
                ])))
        if progress:
            progress(1)
    if not out["logmel"]:
        raise ValueError("no voiced window in any track: nothing to train on")
    return WindowSet(
        np.concatenate(out["logmel"]), np.asarray(out["singer"]), np.asarray(out["track"]),
        **{k: np.concatenate(out[k]) if out.get(k) else None for k in OPTIONAL},
    )


def bleed(vocals: torch.Tensor, accomp: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Accompaniment leaked into vocals, in the mel power domain (uncorrelated sources add).

    ``vocals`` / ``accomp`` ``(B, n_mels, frames)`` log-mel, ``snr_db (B,)``: vocal to
    accompaniment power ratio of the result. Returns ``(B, n_mels, frames)`` log-mel."""
    v, a = vocals.float().exp(), accomp.float().exp()
    scale = v.mean(dim=(1, 2)) / a.mean(dim=(1, 2)).clamp(min=1e-10) * 10 ** (-snr_db / 10)
    return torch.log(v + scale[:, None, None] * a + 1e-6)


def augment(logmel: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild, label-preserving changes on ``(B, n_mels, frames)`` log-mel: gain, EQ tilt,
    a short exponential reverb tail and background noise, all in the mel power domain."""
    b, n_mels, frames = logmel.shape

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    power = logmel.float().exp()
    # Small reverb: add a decaying echo of the past frames (RT ~0.1-0.4 s at 32 ms hops).
    decay = u(0.3, 0.75, b, 1, 1)
    wet = u(0.0, 0.3, b, 1, 1)
    tail = torch.zeros_like(power)
    acc = torch.zeros_like(power[..., 0])
    for t in range(frames):
        acc = acc * decay[..., 0] + power[..., t]
        tail[..., t] = acc
    power = power + wet * (tail - power)
    # White-ish noise at 20-45 dB below the window's mean power.
    level = power.mean(dim=(1, 2), keepdim=True) * 10 ** (-u(20, 45, b, 1, 1) / 10)
    power = power + level * torch.rand(b, n_mels, frames, generator=gen)
    tilt = u(-0.5, 0.5, b, 1, 1) * torch.linspace(-1, 1, n_mels).view(1, -1, 1)
    gain = u(-1.0, 1.0, b, 1, 1)
    return torch.log(power + 1e-6) + tilt + gain


def contrastive_loss(
    z: torch.Tensor, labels: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Supervised NT-Xent with extra negatives.

    ``z (B, d)`` unit anchors, ``labels (B,)`` singers (each label at least twice),
    ``negatives (M, d)`` unit vectors that are never positives (the pitch/tempo copies).
    """
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    logits = torch.cat([sim, z @ negatives.T / temperature], dim=1)
    log_prob = logits.log_softmax(dim=1)[:, : len(z)]
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    return -(log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1).clamp(min=1)).mean()


@dataclass
class TrainConfig:
    steps: int = 3000
    singers_per_batch: int = 16
    views: int = 2  # windows per singer per batch (positives of each other)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    copies: bool = True  # pitch-shift / time-stretch negatives
    augment: bool = True
    eval_every: int = 250
    seed: int = 0
    # Bleed augmentation (needs a window set built with ``stems``): with probability
    # ``clean_prob`` a window is replaced by its clean vocal stem with the accompaniment
    # leaked in at a vocal-to-accompaniment ratio drawn from U[bleed_snr_db]; with
    # probability ``residue_prob`` a (separated) window gets extra accompaniment at
    # U[residue_snr_db]. Both imitate what the separator leaves in the vocals at ingest.
    clean_prob: float = 0.0
    bleed_snr_db: tuple[float, float] = (0.0, 20.0)
    residue_prob: float = 0.0
    residue_snr_db: tuple[float, float] = (10.0, 25.0)
    weighted_eval: bool = False  # track vectors weighted by voicing score in validation
    # Joint gender loss: a linear male/female head on the embedding (discarded after
    # training) trained with weight ``gender_weight``, so that the space keeps one gender
    # direction shared by all singers, which a classifier can use on unseen singers.
    gender_weight: float = 0.0


def sample_batch(data: WindowSet, cfg: TrainConfig, rng: np.random.Generator):
    """Indices ``(P * views,)`` of anchor windows and their singer labels."""
    singers, counts = np.unique(data.singer, return_counts=True)
    singers = singers[counts >= 2]
    chosen = rng.choice(singers, size=min(cfg.singers_per_batch, len(singers)), replace=False)
    idx = []
    for s in chosen:
        rows = np.flatnonzero(data.singer == s)
        tracks = np.unique(data.track[rows])
        # Prefer views from different songs, so "same singer" is not "same song".
        if len(tracks) >= cfg.views:
            picks = rng.choice(tracks, size=cfg.views, replace=False)
            idx += [rng.choice(rows[data.track[rows] == t]) for t in picks]
        else:
            idx += list(rng.choice(rows, size=cfg.views, replace=len(rows) < cfg.views))
    idx = np.asarray(idx)
    return idx, data.singer[idx]


def anchor_views(
    data: WindowSet, idx: np.ndarray, cfg: TrainConfig, gen: torch.Generator
) -> torch.Tensor:
    """``(B, n_mels, frames)`` log-mel of the windows ``idx (B,)``, each either as cached
    or, per ``cfg``, its clean stem with accompaniment bled in, or with extra residue."""
    x = torch.from_numpy(data.logmel[idx]).float()
    if data.accomp is None or (cfg.clean_prob <= 0 and cfg.residue_prob <= 0):
        return x
    accomp = torch.from_numpy(data.accomp[idx]).float()

    def snr(lo_hi):
        lo, hi = lo_hi
        return lo + (hi - lo) * torch.rand(len(idx), generator=gen)

    roll = torch.rand(len(idx), generator=gen)
    use_clean = roll < cfg.clean_prob
    use_residue = (roll >= cfg.clean_prob) & (roll < cfg.clean_prob + cfg.residue_prob)
    if use_clean.any():
        clean = torch.from_numpy(data.clean[idx]).float()
        x = torch.where(use_clean[:, None, None], bleed(clean, accomp, snr(cfg.bleed_snr_db)), x)
    if use_residue.any():
        x = torch.where(use_residue[:, None, None], bleed(x, accomp, snr(cfg.residue_snr_db)), x)
    return x


def same_singer_retrieval(
    vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray | None = None
) -> dict[str, float]:
    """Leave-one-out retrieval over unit ``vectors (n, d)`` with singer ``labels (n,)``:
    top-1 accuracy and mean average precision (scikit-learn) over the queries that have at
    least one other item of their singer. ``queries (n,)`` bool: which items query (default
    all); every item is in the gallery."""
    from sklearn.metrics import average_precision_score

    vectors = np.asarray(vectors, dtype=np.float32)
    labels = np.asarray(labels)
    sims = vectors @ vectors.T
    top1, aps = [], []
    for i in np.flatnonzero(np.ones(len(vectors), bool) if queries is None else queries):
        others = np.arange(len(vectors)) != i
        relevant = labels[others] == labels[i]
        if not relevant.any():
            continue
        scores = sims[i, others]
        top1.append(float(relevant[np.argmax(scores)]))
        aps.append(average_precision_score(relevant, scores))
    if not top1:
        return {"top1": float("nan"), "map": float("nan"), "n_queries": 0}
    return {"top1": float(np.mean(top1)), "map": float(np.mean(aps)), "n_queries": len(top1)}


def track_means(z: np.ndarray, data: WindowSet, weighted: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` window embeddings of ``data`` -> ``(track vectors (tracks, dim), track
    numbers (tracks,))``: each track's mean window vector, weighted by the windows' voicing
    scores if ``weighted`` (and ``data`` has them)."""
    from embeddings.timbre import track_vector

    tracks = np.unique(data.track)
    w = data.weight if weighted and data.weight is not None else np.ones(len(data), np.float32)
    return np.stack([track_vector(z[data.track == t], weights=w[data.track == t])
                     for t in tracks]), tracks


@torch.no_grad()
def evaluate(
    model: TimbreNet, data: WindowSet, gallery: WindowSet | None = None, batch_size: int = 128,
    weighted: bool = False,
) -> dict[str, float]:
    """Track-level same-singer retrieval of ``data``'s tracks (mean of each track's window
    vectors, weighted by voicing score if ``weighted``) among themselves and, if given,
    ``gallery``'s tracks (e.g. the training songs, which steadies a small validation
    split); and how far the pitch/tempo copies sit from their anchors (cosine
    similarities)."""
    model.eval()

    def emb(x):
        return torch.cat([
            model.embed_logmel(torch.from_numpy(x[i : i + batch_size]).float())
            for i in range(0, len(x), batch_size)
        ]).numpy()

    def track_vectors(z, ws):
        vecs, tracks = track_means(z, ws, weighted)
        return vecs, np.array([ws.singer[ws.track == t][0] for t in tracks])

    z = emb(data.logmel)
    vecs, labels = track_vectors(z, data)
    queries = np.ones(len(vecs), bool)
    if gallery is not None:
        g_vecs, g_labels = track_vectors(emb(gallery.logmel), gallery)
        vecs, labels = np.concatenate([vecs, g_vecs]), np.concatenate([labels, g_labels])
        queries = np.concatenate([queries, np.zeros(len(g_vecs), bool)])
    out = same_singer_retrieval(vecs, labels, queries)
    if data.shifted is not None:
        out["cos_shifted"] = float((z * emb(data.shifted)).sum(1).mean())
        out["cos_stretched"] = float((z * emb(data.stretched)).sum(1).mean())
        # Same singer, other track: what the copies should score below.
        same = [
            float(z[i] @ z[(data.singer == data.singer[i]) & (data.track != data.track[i])].mean(0))
            for i in range(len(z))
            if ((data.singer == data.singer[i]) & (data.track != data.track[i])).any()
        ]
        out["cos_same_singer"] = float(np.mean(same)) if same else float("nan")
    model.train()
    return out


def train(
    model: TimbreNet,
    data: WindowSet,
    cfg: TrainConfig,
    val: WindowSet | None = None,
    gallery: WindowSet | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[int, dict], None] | None = None,
    checkpoint: Callable[[TimbreNet, dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place for ``cfg.steps`` steps; every ``cfg.eval_every`` steps
    evaluate on ``val`` (against ``gallery`` too, if given) and call
    ``checkpoint(model, metrics)`` when val mAP improves (or
    every time, when ``val`` has no singer with two tracks).
    Returns the evaluation history."""
    if cfg.copies and data.shifted is None:
        raise ValueError("cfg.copies is set but the window set was built without copies")
    if (cfg.clean_prob > 0 or cfg.residue_prob > 0) and data.accomp is None:
        raise ValueError("bleed augmentation needs a window set built with stems")
    if cfg.gender_weight > 0 and data.gender is None:
        raise ValueError("the joint gender loss needs a window set with gender labels")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    head = torch.nn.Linear(model.dim, 1)  # joint gender head (used if gender_weight > 0)
    params = list(model.parameters()) + (list(head.parameters()) if cfg.gender_weight > 0
                                         else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps)))
    history, best = [], -1.0
    model.train()
    start = time.time()
    for step in range(1, cfg.steps + 1):
        idx, labels = sample_batch(data, cfg, rng)
        x = anchor_views(data, idx, cfg, gen)
        parts = [x]
        if cfg.copies:
            anchors = idx[:: cfg.views]  # one copy pair per singer keeps the batch small
            parts += [torch.from_numpy(data.shifted[anchors]).float(),
                      torch.from_numpy(data.stretched[anchors]).float()]
        batch = torch.cat(parts)
        if cfg.augment:
            batch = augment(batch, gen)
        z = model.embed_logmel(batch)
        loss = contrastive_loss(z[: len(idx)], torch.from_numpy(labels), z[len(idx) :],
                                cfg.temperature)
        if cfg.gender_weight > 0:
            target = torch.from_numpy(data.gender[idx]).float()
            loss = loss + cfg.gender_weight * torch.nn.functional.binary_cross_entropy_with_logits(
                head(z[: len(idx)])[:, 0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if on_step:
            on_step(step, loss.item())
        if val is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            metrics = {"step": step, "loss": loss.item(), "seconds": time.time() - start,
                       **evaluate(model, val, gallery, weighted=cfg.weighted_eval)}
            history.append(metrics)
            if on_eval:
                on_eval(step, metrics)
            # Without a val query (one track per singer) the latest weights are kept.
            score = metrics["map"] if np.isfinite(metrics["map"]) else float(step)
            if checkpoint and score > best:
                best = score
                checkpoint(model, metrics)
    model.eval()
    return history
