"""Training loops of the tagger (JETATAG stages 1 and 2, the no-joint model, the baseline).

Everything here takes arrays, never a corpus: ``mel (n, n_mels, frames)`` log-mel windows
(float16 or float32, computed once by :func:`window_mels` and cached by the caller),
multi-hot ``labels (n, T)`` and ``groups (n,)`` (which track each window comes from, so
an epoch can draw a few windows per track). ``recsys train tagger`` reads the corpus.

Model selection uses the validation arrays only: stage 1 keeps the epoch with the lowest
validation ``L_AE + L_pair``; stage 2 and the no-joint model keep the epoch with the best
validation macro ROC-AUC.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from embeddings.tagging import JetaTagger, LogRegTagger, TaggerConfig, TaggerError, pair_loss

# on_epoch(stage, epoch, epochs, metrics): progress and logging hook of the caller.
EpochHook = Callable[[str, int, int, dict], None]


@dataclass
class TrainConfig:
    """Optimisation settings shared by both stages and the no-joint model."""

    stage1_epochs: int = 20
    stage2_epochs: int = 60
    no_je_epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    windows_per_track: int = 8  # drawn afresh each epoch; 0 = every window every epoch
    seed: int = 0
    max_minutes: float = 0.0  # per stage; stop after the epoch that passes it (0 = no limit)


@dataclass
class Dataset:
    """Window log-mels with their track's tags."""

    mel: np.ndarray  # (n, n_mels, frames)
    labels: np.ndarray  # (n, T) multi-hot
    groups: np.ndarray  # (n,) track index

    def __post_init__(self):
        if not (len(self.mel) == len(self.labels) == len(self.groups)):
            raise TaggerError("mel, labels and groups must have the same length")
        if len(self.mel) == 0:
            raise TaggerError("no training windows")

    def epoch_indices(self, per_track: int, rng: np.random.Generator) -> np.ndarray:
        """Shuffled window indices: at most ``per_track`` random windows of each track."""
        if per_track <= 0:
            return rng.permutation(len(self.mel))
        chosen = []
        for g in np.unique(self.groups):
            idx = np.flatnonzero(self.groups == g)
            chosen.append(rng.choice(idx, size=min(per_track, len(idx)), replace=False))
        return rng.permutation(np.concatenate(chosen))


def window_mels(
    paths: Sequence[str | Path],
    config: TaggerConfig,
    progress: Callable[[int], None] | None = None,
    skip_unreadable: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load each audio file, cut 3 s windows and compute the tagger's log-mel.

    Returns ``(mel (n, n_mels, frames) float16, groups (n,) int32 file index,
    starts (n,) seconds)``. ``progress(i)`` is called after each file. With
    ``skip_unreadable`` a file that ``embeddings.audio.load`` rejects (empty, corrupt, too
    short, ...) contributes no window, so its index is absent from ``groups``; without it
    the :class:`embeddings.audio.AudioError` propagates.
    """
    from embeddings.audio import AudioError, load
    from embeddings.windows import cut

    model = JetaTagger(config)
    mels, groups, starts = [], [], []
    with torch.no_grad():
        for i, path in enumerate(paths):
            try:
                audio = load(path)
            except AudioError:
                if not skip_unreadable:
                    raise
                if progress:
                    progress(i)
                continue
            windows = cut(audio)
            mels.append(model.logmel(torch.from_numpy(windows.audio)).numpy().astype(np.float16))
            groups.append(np.full(len(windows), i, np.int32))
            starts.append(windows.starts)
            if progress:
                progress(i)
    if not mels:
        raise TaggerError("no readable audio files given")
    return np.concatenate(mels), np.concatenate(groups), np.concatenate(starts)


def train_stage1(
    model: JetaTagger, train: Dataset, val: Dataset, cfg: TrainConfig,
    on_epoch: EpochHook | None = None,
) -> list[dict]:
    """Stage 1: extractor + projection head + tag autoencoder on ``L_AE + L_pair``."""
    if not model.config.joint:
        raise TaggerError("stage 1 needs a model with the joint embedding (joint=True)")
    modules = nn.ModuleList([model.extractor, model.projection, model.tag_autoencoder])

    def loss_fn(mel, tags):
        z_m = model.projection(model.extractor(mel))
        z_t, recon = model.tag_autoencoder(tags)
        l_ae, l_pair = F.mse_loss(recon, tags), pair_loss(z_m, z_t)
        return l_ae + l_pair, {"l_ae": l_ae.item(), "l_pair": l_pair.item()}

    def score(model_):
        # Lower validation loss is better; negate so "higher is better" holds everywhere.
        return -_mean_loss(modules, loss_fn, val, cfg.batch_size)

    return _fit(model, modules, loss_fn, score, train, cfg, cfg.stage1_epochs, "stage1",
                on_epoch)


def train_stage2(
    model: JetaTagger, train: Dataset, val: Dataset, cfg: TrainConfig,
    on_epoch: EpochHook | None = None,
) -> list[dict]:
    """Stage 2: the classifier on the frozen extractor (BCE).

    The extractor stays in eval mode with gradients off, so neither its weights nor its
    batch-norm statistics move. Its outputs are computed once for every window, which makes
    each classifier epoch cheap.
    """
    extractor = model.extractor.eval()
    for p in extractor.parameters():
        p.requires_grad_(False)
    h_train = _features(extractor, train.mel, cfg.batch_size)
    h_val = _features(extractor, val.mel, cfg.batch_size)
    feats = Dataset(h_train, train.labels, train.groups)
    val_feats = Dataset(h_val, val.labels, val.groups)
    classifier = model.classifier

    def loss_fn(h, tags):
        loss = F.binary_cross_entropy_with_logits(classifier(h), tags)
        return loss, {"bce": loss.item()}

    def score(_):
        return _roc_auc(classifier, val_feats, cfg.batch_size)

    try:
        return _fit(model, nn.ModuleList([classifier]), loss_fn, score, feats, cfg,
                    cfg.stage2_epochs, "stage2", on_epoch, per_track=0)
    finally:
        for p in extractor.parameters():
            p.requires_grad_(True)


def train_no_je(
    model: JetaTagger, train: Dataset, val: Dataset, cfg: TrainConfig,
    on_epoch: EpochHook | None = None,
) -> list[dict]:
    """The "no joint embedding" model: extractor + classifier end to end on BCE."""
    modules = nn.ModuleList([model.extractor, model.classifier])

    def loss_fn(mel, tags):
        loss = F.binary_cross_entropy_with_logits(model(mel), tags)
        return loss, {"bce": loss.item()}

    def score(_):
        return _roc_auc(model, val, cfg.batch_size)

    return _fit(model, modules, loss_fn, score, train, cfg, cfg.no_je_epochs, "no_je", on_epoch)


def train_logreg(train: Dataset, vocabulary: list[str], config: TaggerConfig,
                 c: float = 1.0) -> LogRegTagger:
    """The baseline on the same windows (log-mel mean + std, one-vs-rest logistic)."""
    return LogRegTagger.fit(train.mel, train.labels, vocabulary, c=c,
                            n_mels=config.n_mels, n_fft=config.n_fft, hop=config.hop)


# -- shared loop ---------------------------------------------------------------------------


def _fit(model, modules, loss_fn, score, train, cfg, epochs, stage, on_epoch, per_track=None):
    """Adam over ``modules``; keeps the state of the epoch with the best ``score``."""
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = next(model.parameters()).device
    params = [p for p in modules.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_track = cfg.windows_per_track if per_track is None else per_track
    best, best_state, history = -np.inf, None, []
    deadline = time.time() + cfg.max_minutes * 60 if cfg.max_minutes > 0 else np.inf
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        modules.train()
        totals: dict[str, float] = {}
        idx = train.epoch_indices(per_track, rng)
        n_batches = 0
        for start in range(0, len(idx), cfg.batch_size):
            b = idx[start : start + cfg.batch_size]
            if len(b) < 2:  # batch norm needs two samples
                continue
            x = torch.from_numpy(train.mel[b].astype(np.float32)).to(device)
            y = torch.from_numpy(train.labels[b].astype(np.float32)).to(device)
            loss, parts = loss_fn(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v
            n_batches += 1
        modules.eval()
        val_score = float(score(model))
        metrics = {k: v / max(n_batches, 1) for k, v in totals.items()}
        metrics.update(val_score=val_score, seconds=time.time() - t0)
        if val_score > best:
            best, best_state = val_score, copy.deepcopy(modules.state_dict())
            metrics["best"] = True
        history.append(metrics)
        if on_epoch:
            on_epoch(stage, epoch, epochs, metrics)
        if time.time() > deadline:
            break
    if best_state is not None:
        modules.load_state_dict(best_state)
    modules.eval()
    return history


@torch.no_grad()
def _features(extractor: nn.Module, mel: np.ndarray, batch: int) -> np.ndarray:
    device = next(extractor.parameters()).device
    out = [extractor(torch.from_numpy(mel[s : s + batch].astype(np.float32)).to(device)).cpu()
           for s in range(0, len(mel), batch)]
    return torch.cat(out).numpy()


@torch.no_grad()
def _mean_loss(modules, loss_fn, data: Dataset, batch: int) -> float:
    device = next(modules.parameters()).device
    total, n = 0.0, 0
    for s in range(0, len(data.mel), batch):
        x = torch.from_numpy(data.mel[s : s + batch].astype(np.float32)).to(device)
        y = torch.from_numpy(data.labels[s : s + batch].astype(np.float32)).to(device)
        loss, _ = loss_fn(x, y)
        total, n = total + loss.item() * len(x), n + len(x)
    return total / max(n, 1)


@torch.no_grad()
def _roc_auc(net: nn.Module, data: Dataset, batch: int) -> float:
    """Macro ROC-AUC at track level (window probabilities averaged per track) over the tags
    that have both classes in ``data``."""
    from sklearn.metrics import roc_auc_score

    device = next(net.parameters()).device
    probs = np.concatenate([
        torch.sigmoid(net(torch.from_numpy(data.mel[s : s + batch].astype(np.float32))
                          .to(device))).cpu().numpy()
        for s in range(0, len(data.mel), batch)
    ])
    tracks = np.unique(data.groups)
    p = np.stack([probs[data.groups == g].mean(0) for g in tracks])
    y = np.stack([data.labels[data.groups == g][0] for g in tracks]) > 0.5
    keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
    if not keep.any():
        return 0.0
    return float(roc_auc_score(y[:, keep], p[:, keep], average="macro"))
