"""Singer timbre: a contrastive CNN encoder, its MFCC baseline, and singer-vector helpers.

Both encoders implement :class:`embeddings.base.TimbreEncoder`: ``(n, 48000)`` vocal windows
(3 s at 16 kHz) -> ``(n, dim)`` float32 rows of unit length, where windows of the same
singer lie close together. A track's singer vector is the mean of its voiced windows
(:func:`track_vector`), an artist's the mean of its tracks (:func:`artist_vector`).

The encoder is trained by :mod:`embeddings.timbre_train` (``recsys train timbre``) on
separated vocals; the shipped weights live in ``embeddings/weights/timbre-contrastive.*``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embeddings.audio import SAMPLE_RATE
from embeddings.base import l2_normalize, resolve_device
from embeddings.features import LogMel
from embeddings.registry import WEIGHTS_DIR
from embeddings.windows import WINDOW_SAMPLES

PRETRAINED = WEIGHTS_DIR / "timbre-contrastive.safetensors"


class TimbreWeightsError(FileNotFoundError):
    """The shipped or requested encoder weights are missing or unreadable."""


@dataclass
class TimbreConfig:
    """Shape of the encoder; saved beside the weights so ``load`` rebuilds the same net."""

    n_mels: int = 64
    n_fft: int = 1024
    hop: int = 512
    fmax: float = 8000.0
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    hidden: int = 256
    dim: int = 128

    def frames(self, samples: int = WINDOW_SAMPLES) -> int:
        return samples // self.hop + 1


class ConvBlock(nn.Module):
    """3x3 conv -> batch norm -> ReLU -> 2x2 max pool.

    ``(B, C_in, F, T) -> (B, C_out, F // 2, T // 2)``.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TimbreNet(nn.Module):
    """Log-mel CNN that maps 3 s of vocals to a unit-length timbre vector.

    ``forward``: ``(B, samples)`` waveform -> ``(B, dim)`` L2-normalised.
    ``embed_logmel``: ``(B, n_mels, frames)`` log-mel -> ``(B, dim)`` (used by training,
    which augments cached log-mels instead of waveforms).
    """

    name = "contrastive"

    def __init__(self, config: TimbreConfig | None = None, version: str = "timbre-contrastive-0"):
        super().__init__()
        self.config = config or TimbreConfig()
        self.version = version
        self.dim = self.config.dim
        c = self.config
        self.logmel = LogMel(n_mels=c.n_mels, n_fft=c.n_fft, hop=c.hop, fmax=c.fmax)
        # Learned global scale of the (gain-normalised) log-mel; one channel, so it cannot
        # flatten the spectral envelope that carries timbre.
        self.input_norm = nn.BatchNorm2d(1)
        blocks, c_in = [], 1
        for c_out in c.channels:
            blocks.append(ConvBlock(c_in, c_out))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        freq_out = c.n_mels // 2 ** len(c.channels)
        # Mean and max over time, kept per frequency band: the band layout is the timbre.
        self.head = nn.Sequential(
            nn.Linear(2 * c_in * max(freq_out, 1), c.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(c.hidden, c.dim),
        )

    def embed_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        # Subtracting the window's mean log energy makes the vector independent of gain.
        x = logmel - logmel.mean(dim=(1, 2), keepdim=True)
        x = self.blocks(self.input_norm(x.unsqueeze(1)))
        x = torch.cat([x.mean(dim=3), x.amax(dim=3)], dim=1).flatten(1)
        return nn.functional.normalize(self.head(x), dim=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embed_logmel(self.logmel(wave))

    @torch.no_grad()
    def embed(self, windows: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``(n, samples)`` float windows -> ``(n, dim)`` float32, unit rows (eval mode)."""
        windows = _check_windows(windows)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = [
            self(torch.from_numpy(windows[i : i + batch_size]).to(device)).cpu().numpy()
            for i in range(0, len(windows), batch_size)
        ]
        self.train(was_training)
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.concatenate(out))

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        """Write ``path`` (safetensors weights) and ``path`` with ``.json`` (config, version,
        ``meta``), each to a temporary file renamed into place."""
        from safetensors.torch import save_file

        path = Path(path).with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = path.with_suffix(".safetensors.tmp")
        save_file(state, str(tmp))
        os.chmod(tmp, 0o644)  # safetensors writes owner-only; weights are shipped files
        config = {"config": asdict(self.config), "version": self.version, "meta": meta or {}}
        tmp_json = path.with_suffix(".json.tmp")
        tmp_json.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, path)
        os.replace(tmp_json, path.with_suffix(".json"))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> TimbreNet:
        from safetensors.torch import load_file

        path = Path(path).with_suffix(".safetensors")
        config_path = path.with_suffix(".json")
        if not path.exists() or not config_path.exists():
            raise TimbreWeightsError(
                f"timbre encoder weights not found at {path} (+ .json); "
                "train them with `recsys train timbre --data CORPUS`"
            )
        try:
            spec = json.loads(config_path.read_text())
            model = cls(TimbreConfig(**spec["config"]), version=spec["version"])
            model.load_state_dict(load_file(str(path)))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
            raise TimbreWeightsError(f"cannot read timbre weights {path}: {err}") from err
        model.meta = spec.get("meta", {})
        return model.to(resolve_device(device)).eval()


def load_pretrained(device: str = "auto") -> TimbreNet:
    """The shipped contrastive encoder (registry name ``"contrastive"``)."""
    return TimbreNet.load(PRETRAINED, device=device)


class MfccBaseline:
    """Baseline timbre vector: mean and standard deviation of MFCCs over the window.

    No training. ``c0`` (loudness) is dropped and the coefficients are liftered (HTK's
    sinusoidal lifter) so high-order coefficients are not drowned by ``c1`` in the cosine.
    ``(n, samples)`` -> ``(n, 2 * (n_mfcc - 1))`` unit rows.
    """

    name = "mfcc"
    version = "mfcc-meanstd-1"

    def __init__(self, n_mfcc: int = 20, n_mels: int = 64, lifter: int = 22):
        self.n_mfcc, self.n_mels, self.lifter = n_mfcc, n_mels, lifter
        self.dim = 2 * (n_mfcc - 1)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        import librosa

        windows = _check_windows(windows)
        if len(windows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        mfcc = librosa.feature.mfcc(
            y=windows, sr=SAMPLE_RATE, n_mfcc=self.n_mfcc, n_mels=self.n_mels,
            n_fft=1024, hop_length=256, lifter=self.lifter,
        )[:, 1:, :]  # (n, n_mfcc - 1, frames)
        return l2_normalize(np.concatenate([mfcc.mean(axis=2), mfcc.std(axis=2)], axis=1))


def track_vector(
    window_vectors: np.ndarray,
    voiced: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray | None:
    """Singer vector of one track: the L2-normalised mean of its voiced window vectors.

    ``window_vectors (n, dim)``, ``voiced (n,)`` bool (all windows when None), ``weights
    (n,)`` non-negative (e.g. :func:`embeddings.voicing.voicing_scores`; a plain mean when
    None). Returns ``(dim,)``, or ``None`` when no window is voiced (or every voiced
    window weighs 0): an instrumental track has no singer.
    """
    window_vectors = np.asarray(window_vectors, dtype=np.float32)
    n = len(window_vectors)
    keep = np.ones(n, bool)
    if voiced is not None:
        voiced = np.asarray(voiced, dtype=bool)
        if voiced.shape != (n,):
            raise ValueError(f"voiced has shape {voiced.shape}, expected ({n},)")
        keep &= voiced
    w = np.ones(n, np.float32)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float32)
        if w.shape != (n,):
            raise ValueError(f"weights has shape {w.shape}, expected ({n},)")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and non-negative")
    w = w * keep
    if w.sum() <= 0:
        return None
    return l2_normalize((window_vectors * w[:, None]).sum(axis=0) / w.sum())


WEIGHTED_TRACK_VECTOR = "voicing-weighted mean"


def voicing_weighted(encoder) -> bool:
    """Whether ``encoder`` was selected with track vectors that weigh each voiced window by
    its voicing score (its saved ``meta["track_vector"]``); ingest and the benches then
    build track vectors the same way."""
    return getattr(encoder, "meta", {}).get("track_vector") == WEIGHTED_TRACK_VECTOR


def artist_vector(track_vectors: np.ndarray) -> np.ndarray:
    """Singer vector of an artist: the L2-normalised mean of its ``(m, dim)`` track vectors."""
    track_vectors = np.asarray(track_vectors, dtype=np.float32)
    if track_vectors.ndim != 2 or len(track_vectors) == 0:
        raise ValueError("artist_vector needs a non-empty (m, dim) array of track vectors")
    return l2_normalize(track_vectors.mean(axis=0))


def _check_windows(windows: np.ndarray) -> np.ndarray:
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2:
        raise ValueError(f"expected (n, samples) windows, got shape {windows.shape}")
    if not np.isfinite(windows).all():
        raise ValueError("windows contain NaN or infinite samples")
    return np.ascontiguousarray(windows)
