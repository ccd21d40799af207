"""Music auto-tagging with a joint audio-tag embedding (JETATAG), and its baselines.

The tagger reads the log-mel spectrogram of 3 s mixture windows:

- :class:`ShortChunkCNN` (feature extractor): ``(batch, n_mels, frames)`` -> ``h (batch, 1024)``;
- :class:`ProjectionHead`: ``h`` -> ``z_m (batch, 128)``, the audio side of the joint space;
- :class:`TagAutoencoder`: multi-hot ``(batch, T)`` -> ``z_t (batch, 128)`` -> ``(batch, T)``;
- :class:`TagClassifier`: ``h`` -> tag logits ``(batch, T)``.

Stage 1 trains extractor + projection head + tag autoencoder on ``L_AE + L_pair``; stage 2
trains the classifier on the frozen extractor (see ``embeddings.tagging_train``). The same
extractor + classifier trained end to end with BCE and no stage 1 is the "no joint
embedding" model (``TaggerConfig.joint = False``). That model has no tag encoder, so its
"joint" space is its own L2-normalised probability vector (``dim = T``) and ``embed_tags``
L2-normalises the multi-hot query: the same convention as :class:`LogRegTagger`.

Both classes implement :class:`embeddings.base.Tagger`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from embeddings.base import l2_normalize, resolve_device
from embeddings.features import LogMel
from embeddings.windows import WINDOW_SAMPLES

WEIGHTS_DIR = Path(__file__).parent / "weights"
JE_WEIGHTS = WEIGHTS_DIR / "jetatag.safetensors"
NO_JE_WEIGHTS = WEIGHTS_DIR / "jetatag_noje.safetensors"
LOGREG_WEIGHTS = WEIGHTS_DIR / "logreg_tagger.safetensors"
PREDICT_BATCH = 64


class TaggerError(ValueError):
    """Bad input to a tagger (wrong shape, non-finite samples, wrong vocabulary size)."""


class TaggerWeightsError(FileNotFoundError):
    """Shipped or given weights are missing or unreadable."""


@dataclass
class TaggerConfig:
    """Sizes of the tagger; ``vocabulary`` is stored with the weights and fixes ``T``."""

    vocabulary: list[str]
    joint: bool = True
    n_mels: int = 64
    n_fft: int = 1024
    hop: int = 512
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64, 128, 128])
    h_dim: int = 1024
    z_dim: int = 128
    classifier_dim: int = 256
    dropout: float = 0.3

    @property
    def n_tags(self) -> int:
        return len(self.vocabulary)


class ShortChunkCNN(nn.Module):
    """Short-chunk CNN (Won et al. 2020), narrowed for CPU: 3x3 conv + BN + ReLU + 2x2 max-pool
    blocks, global max-pool, then a dense layer to ``h``.

    Input ``(batch, n_mels, frames)`` log-mel; output ``h (batch, h_dim)``.
    """

    def __init__(self, n_mels: int, channels: list[int], h_dim: int, dropout: float):
        super().__init__()
        # Input BN standardises log-mel levels, so no dataset statistics need shipping.
        self.input_bn = nn.BatchNorm2d(1)
        blocks, c_in = [], 1
        for c_out in channels:
            blocks += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.dense = nn.Sequential(
            nn.Linear(c_in, h_dim), nn.BatchNorm1d(h_dim), nn.ReLU(), nn.Dropout(dropout)
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.convs(self.input_bn(mel.unsqueeze(1)))  # (batch, C, f', t')
        x = x.amax(dim=(2, 3))  # (batch, C)
        return self.dense(x)


class ProjectionHead(nn.Module):
    """``h (batch, h_dim)`` -> ``z_m (batch, z_dim)``: two dense layers into the tag space."""

    def __init__(self, h_dim: int, z_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(h_dim, z_dim), nn.ReLU(), nn.Linear(z_dim, z_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class TagAutoencoder(nn.Module):
    """Multi-hot tags ``(batch, T)`` -> ``z_t (batch, z_dim)`` -> reconstruction ``(batch, T)``.

    Encoder: two dense layers of ``z_dim`` with LayerNorm; decoder: ``z_dim`` dense + LayerNorm,
    then ``T`` outputs through a sigmoid (the reconstruction lives in [0, 1] like the input).
    """

    def __init__(self, n_tags: int, z_dim: int):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(n_tags, z_dim), nn.LayerNorm(z_dim), nn.ReLU(), nn.Linear(z_dim, z_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(z_dim, z_dim), nn.LayerNorm(z_dim), nn.ReLU(), nn.Linear(z_dim, n_tags)
        )

    def encode(self, tags: torch.Tensor) -> torch.Tensor:
        return self.encoder(tags)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def forward(self, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(z_t (batch, z_dim), reconstruction (batch, T))``."""
        z = self.encode(tags)
        return z, self.decode(z)


class TagClassifier(nn.Module):
    """``h (batch, h_dim)`` -> tag logits ``(batch, T)`` through two dense layers of 256."""

    def __init__(self, h_dim: int, hidden: int, n_tags: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(h_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_tags),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def pair_loss(z_m: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
    """JETATAG's ``L_pair``: cosine loss on ``(z_m, z_t)`` plus on ``(1 - z_m, 1 - z_t)``.

    The second term keeps a gradient when both vectors are small (near the origin the
    cosine of the raw vectors is unstable). Inputs ``(batch, z_dim)``; output a scalar.
    """
    direct = 1 - F.cosine_similarity(z_m, z_t, dim=-1)
    shifted = 1 - F.cosine_similarity(1 - z_m, 1 - z_t, dim=-1)
    return (direct + shifted).mean()


class JetaTagger(nn.Module):
    """The whole tagger; ``config.joint`` says whether it has the joint embedding.

    ``forward(mel (batch, n_mels, frames)) -> logits (batch, T)``. ``predict`` and
    ``embed_tags`` implement :class:`embeddings.base.Tagger` on numpy arrays.
    """

    def __init__(self, config: TaggerConfig):
        super().__init__()
        self.config = config
        self.name = "jetatag" if config.joint else "jetatag_noje"
        self.logmel = LogMel(n_mels=config.n_mels, n_fft=config.n_fft, hop=config.hop)
        self.extractor = ShortChunkCNN(
            config.n_mels, list(config.channels), config.h_dim, config.dropout
        )
        self.classifier = TagClassifier(
            config.h_dim, config.classifier_dim, config.n_tags, config.dropout
        )
        if config.joint:
            self.projection = ProjectionHead(config.h_dim, config.z_dim)
            self.tag_autoencoder = TagAutoencoder(config.n_tags, config.z_dim)
        self.version = f"jetatag-{'je' if config.joint else 'noje'}-untrained"

    # -- Tagger protocol -------------------------------------------------------------------

    @property
    def vocabulary(self) -> list[str]:
        return list(self.config.vocabulary)

    @property
    def dim(self) -> int:
        return self.config.z_dim if self.config.joint else self.config.n_tags

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.extractor(mel))

    @torch.no_grad()
    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 48000)`` mixture windows -> ``(probs (n, T), joint (n, dim))``, joint
        rows L2-normalised."""
        windows = _check_windows(windows)
        self.eval()
        device = next(self.parameters()).device
        probs, joint = [], []
        for start in range(0, len(windows), PREDICT_BATCH):
            wave = torch.from_numpy(windows[start : start + PREDICT_BATCH]).to(device)
            h = self.extractor(self.logmel(wave))
            p = torch.sigmoid(self.classifier(h))
            probs.append(p.cpu().numpy())
            joint.append((self.projection(h) if self.config.joint else p).cpu().numpy())
        if not probs:
            empty = np.zeros((0, self.config.n_tags), np.float32)
            return empty, np.zeros((0, self.dim), np.float32)
        return np.concatenate(probs).astype(np.float32), l2_normalize(np.concatenate(joint))

    @torch.no_grad()
    def embed_tags(self, tags: np.ndarray) -> np.ndarray:
        """``(m, T)`` multi-hot (or weighted) tags -> ``(m, dim)`` L2-normalised: the tag
        encoder's ``z_t`` with the joint embedding, the normalised tag vector without."""
        tags = _check_tags(tags, self.config.n_tags)
        if not self.config.joint:
            return l2_normalize(tags)
        self.eval()
        device = next(self.parameters()).device
        z = self.tag_autoencoder.encode(torch.from_numpy(tags).to(device))
        return l2_normalize(z.cpu().numpy())

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike, training: dict | None = None) -> None:
        """Write ``path`` (safetensors) and ``path`` with ``.json`` (config, with the
        vocabulary, and ``training``: how the weights were made), atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        _atomic_write(path, lambda tmp: save_file(state, tmp))
        self.version = _version(self.config.joint, path)
        meta = {"config": asdict(self.config), "version": self.version}
        if training:
            meta["training"] = training
        _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(
            json.dumps(meta, indent=2) + "\n"))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> JetaTagger:
        from safetensors.torch import load_file

        path = Path(path)
        meta = _read_meta(path)
        model = cls(TaggerConfig(**meta["config"]))
        try:
            model.load_state_dict(load_file(str(path)))
        except Exception as e:  # safetensors raises several types for a damaged file
            raise TaggerWeightsError(f"{path}: cannot read tagger weights ({e})") from None
        model.version = meta.get("version") or _version(model.config.joint, path)
        model.provenance = meta.get("training", {})  # how the weights were made
        return model.to(resolve_device(device)).eval()


# -- the logistic-regression baseline ------------------------------------------------------


def mel_statistics(mel: np.ndarray) -> np.ndarray:
    """``(n, n_mels, frames)`` log-mel -> ``(n, 2 * n_mels)`` mean and std over time."""
    mel = np.asarray(mel, dtype=np.float32)
    return np.concatenate([mel.mean(axis=-1), mel.std(axis=-1)], axis=-1)


class LogRegTagger:
    """Baseline: one-vs-rest logistic regression (scikit-learn) on log-mel mean + std.

    The "joint" space of this baseline is its L2-normalised probability vector
    (``dim = T``), and ``embed_tags`` L2-normalises the multi-hot query into the same
    space, so tag search ranks windows by cosine between predicted and asked-for tags.
    Weights are the standardisation, coefficients and intercepts (a few KB).
    """

    name = "logreg"

    def __init__(
        self,
        vocabulary: list[str],
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop: int = 256,
        version: str = "logreg-untrained",
    ):
        self.vocabulary = list(vocabulary)
        self.mean, self.scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        self.coef = np.asarray(coef, np.float32)  # (T, features)
        self.intercept = np.asarray(intercept, np.float32)  # (T,)
        self.n_mels, self.n_fft, self.hop = n_mels, n_fft, hop
        self.version = version
        self._logmel = LogMel(n_mels=n_mels, n_fft=n_fft, hop=hop)

    @property
    def dim(self) -> int:
        return len(self.vocabulary)

    @classmethod
    def fit(
        cls, mel: np.ndarray, labels: np.ndarray, vocabulary: list[str], c: float = 1.0, **mel_kw
    ) -> LogRegTagger:
        """Train on ``mel (n, n_mels, frames)`` and multi-hot ``labels (n, T)``.

        A tag that is constant in ``labels`` gets a zero weight vector and the intercept of
        its constant (clipped) probability, as scikit-learn cannot fit a one-class problem.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.preprocessing import StandardScaler

        labels = np.asarray(labels) > 0.5
        if len(mel) != len(labels) or labels.shape[1] != len(vocabulary):
            raise TaggerError("mel, labels and vocabulary sizes disagree")
        x = mel_statistics(mel)
        scaler = StandardScaler().fit(x)
        coef = np.zeros((labels.shape[1], x.shape[1]), np.float32)
        prior = np.clip(labels.mean(axis=0), 1e-4, 1 - 1e-4)
        intercept = np.log(prior / (1 - prior)).astype(np.float32)
        varied = labels.any(axis=0) & ~labels.all(axis=0)
        if varied.any():
            clf = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000))
            clf.fit(scaler.transform(x), labels[:, varied].astype(int))
            for t, est in zip(np.flatnonzero(varied), clf.estimators_, strict=True):
                coef[t], intercept[t] = est.coef_[0], est.intercept_[0]
        return cls(vocabulary, scaler.mean_, scaler.scale_, coef, intercept, **mel_kw)

    def predict_mel(self, mel: np.ndarray) -> np.ndarray:
        """``(n, n_mels, frames)`` log-mel -> ``(n, T)`` probabilities."""
        x = (mel_statistics(mel) - self.mean) / self.scale
        return (1 / (1 + np.exp(-(x @ self.coef.T + self.intercept)))).astype(np.float32)

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 48000)`` windows -> ``(probs (n, T), joint = normalised probs (n, T))``."""
        windows = _check_windows(windows)
        probs = []
        with torch.no_grad():
            for start in range(0, len(windows), PREDICT_BATCH):
                mel = self._logmel(torch.from_numpy(windows[start : start + PREDICT_BATCH]))
                probs.append(self.predict_mel(mel.numpy()))
        probs = np.concatenate(probs) if probs else np.zeros((0, self.dim), np.float32)
        return probs, l2_normalize(probs)

    def embed_tags(self, tags: np.ndarray) -> np.ndarray:
        """``(m, T)`` multi-hot -> ``(m, T)`` L2-normalised (the baseline's joint space)."""
        return l2_normalize(_check_tags(tags, self.dim))

    def save(self, path: str | os.PathLike, training: dict | None = None) -> None:
        """Write ``path`` (safetensors) and its ``.json`` (config and ``training``)."""
        from safetensors.numpy import save_file

        path = Path(path)
        arrays = {"mean": self.mean, "scale": self.scale, "coef": self.coef,
                  "intercept": self.intercept}
        _atomic_write(path, lambda tmp: save_file(arrays, tmp))
        self.version = _version(None, path)
        meta = {"config": {"vocabulary": self.vocabulary, "n_mels": self.n_mels,
                           "n_fft": self.n_fft, "hop": self.hop}, "version": self.version}
        if training:
            meta["training"] = training
        _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(
            json.dumps(meta, indent=2) + "\n"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LogRegTagger:
        from safetensors.numpy import load_file

        path = Path(path)
        meta = _read_meta(path)
        try:
            arrays = load_file(str(path))
        except Exception as e:
            raise TaggerWeightsError(f"{path}: cannot read baseline weights ({e})") from None
        return cls(**meta["config"], **arrays, version=meta.get("version") or _version(None, path))


# -- factories and helpers -----------------------------------------------------------------


def load_pretrained(variant: str = "je", device: str = "auto") -> JetaTagger:
    """The shipped tagger: ``"je"`` (with joint embedding, the default) or ``"no_je"``."""
    paths = {"je": JE_WEIGHTS, "no_je": NO_JE_WEIGHTS}
    if variant not in paths:
        raise TaggerError(f"unknown tagger variant {variant!r}; choose 'je' or 'no_je'")
    return JetaTagger.load(paths[variant], device=device)


def load_logreg_baseline() -> LogRegTagger:
    """The shipped logistic-regression baseline."""
    return LogRegTagger.load(LOGREG_WEIGHTS)


def track_tags(probs: np.ndarray, joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Window predictions of one track -> track level: ``(probs (T,), joint (dim,))``.

    Probabilities are averaged over windows; the joint vector is the mean of the window
    vectors, L2-normalised again.
    """
    probs, joint = np.asarray(probs, np.float32), np.asarray(joint, np.float32)
    if probs.ndim != 2 or joint.ndim != 2 or len(probs) == 0 or len(probs) != len(joint):
        raise TaggerError("track_tags needs (n, T) probs and (n, dim) joint with n >= 1")
    return probs.mean(axis=0), l2_normalize(joint.mean(axis=0, keepdims=True))[0]


def multi_hot(tags: list[str], vocabulary: list[str]) -> np.ndarray:
    """Tag names -> ``(T,)`` float32 multi-hot; unknown names raise :class:`TaggerError`."""
    index = {t: i for i, t in enumerate(vocabulary)}
    unknown = [t for t in tags if t not in index]
    if unknown:
        raise TaggerError(f"unknown tags {unknown}; the vocabulary is {vocabulary}")
    vec = np.zeros(len(vocabulary), np.float32)
    vec[[index[t] for t in tags]] = 1.0
    return vec


def _check_windows(windows: np.ndarray) -> np.ndarray:
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
        raise TaggerError(
            f"expected windows of shape (n, {WINDOW_SAMPLES}), got {tuple(windows.shape)}"
        )
    if not np.isfinite(windows).all():
        raise TaggerError("windows contain NaN or infinite samples")
    return np.ascontiguousarray(windows)


def _check_tags(tags: np.ndarray, n_tags: int) -> np.ndarray:
    tags = np.asarray(tags, dtype=np.float32)
    if tags.ndim != 2 or tags.shape[1] != n_tags:
        raise TaggerError(f"expected tag vectors of shape (m, {n_tags}), got {tuple(tags.shape)}")
    if not np.isfinite(tags).all():
        raise TaggerError("tag vectors contain NaN or infinite values")
    return np.ascontiguousarray(tags)


def _read_meta(path: Path) -> dict:
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise TaggerWeightsError(
            f"{path} (and its .json) not found; train it with `recsys train tagger`"
        )
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise TaggerWeightsError(f"{meta_path} is not valid JSON: {e.msg}") from None


def _version(joint: bool | None, path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    kind = "logreg" if joint is None else ("jetatag-je" if joint else "jetatag-noje")
    return f"{kind}-{digest}"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; weights are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
