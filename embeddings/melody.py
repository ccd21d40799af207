"""Melody encoders: the TCAE (learned) and a pitch-contour baseline, both ``MelodyEncoder``s.

TCAE (time-causal autoencoder, after the vocal-recsys project and Yakura et al. 2022): an
encoder and a decoder of stacked dilated causal 1-D convolutions over the 48-band log-mel
of a vocal window (16 kHz, window 512, hop 256). The latent sequence, mean-pooled over
time, is the 128-d window embedding. Trained (``embeddings.melody_train``) on
reconstruction plus a contrastive loss that pulls a hummed window towards the catalog
window it imitates, so the latent keeps the tune and drops the voice.

``ContourBaseline`` learns nothing: its embedding is the window's pitch contour relative to
its median, resampled to a fixed length.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embeddings import pitch as pitch_mod
from embeddings.audio import SAMPLE_RATE
from embeddings.base import l2_normalize, resolve_device
from embeddings.features import LogMel
from embeddings.windows import WINDOW_SAMPLES

WEIGHTS_NAME = "tcae-v1"


class MelodyModelError(RuntimeError):
    """Shipped weights are missing or do not match their config."""


@dataclass
class TCAEConfig:
    n_mels: int = 48
    n_fft: int = 512
    hop: int = 256
    channels: int = 32  # width of the residual stacks (small: trained on a shared CPU)
    latent: int = 128  # latent channels per frame = window embedding size
    layers: int = 6  # residual blocks per stack, dilation 1, 2, 4, ... 2**(layers-1)
    kernel: int = 3

    @property
    def receptive_field(self) -> int:
        """Frames of input that one latent frame sees (all in its past)."""
        return 1 + (self.kernel - 1) * (2**self.layers - 1)


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only, so output frame t sees input frames <= t.

    ``(batch, in, frames) -> (batch, out, frames)``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int = 1):
        super().__init__(cin, cout, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, (self.left, 0)))


class ResidualBlock(nn.Module):
    """Dilated causal conv -> GELU -> 1x1 conv, added to the input. ``(B, C, T) -> (B, C, T)``."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel, dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.act(self.conv(x)))


class CausalStack(nn.Module):
    """1x1 in-projection, residual blocks with dilation doubling per layer, 1x1 out-projection.

    ``(B, cin, T) -> (B, cout, T)``, causal in T.
    """

    def __init__(self, cin: int, cout: int, config: TCAEConfig):
        super().__init__()
        self.inp = nn.Conv1d(cin, config.channels, 1)
        self.blocks = nn.Sequential(
            *[ResidualBlock(config.channels, config.kernel, 2**i) for i in range(config.layers)]
        )
        self.out = nn.Conv1d(config.channels, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.inp(x)))


class TCAE(nn.Module):
    """Time-causal autoencoder over log-mel frames.

    ``features``: ``(B, samples)`` wave -> ``(B, n_mels, T)`` normalised log-mel
    ``encode``:   ``(B, n_mels, T)`` -> ``(B, latent, T)`` latent sequence (causal)
    ``decode``:   ``(B, latent, T)`` -> ``(B, n_mels, T)`` reconstruction (causal)
    ``pool``:     ``(B, latent, T)`` -> ``(B, latent)`` window embedding (not normalised)
    """

    def __init__(self, config: TCAEConfig | None = None):
        super().__init__()
        self.config = config or TCAEConfig()
        c = self.config
        self.mel = LogMel(n_mels=c.n_mels, n_fft=c.n_fft, hop=c.hop)
        self.encoder = CausalStack(c.n_mels, c.latent, c)
        self.decoder = CausalStack(c.latent, c.n_mels, c)

    @staticmethod
    def normalise(logmel: torch.Tensor) -> torch.Tensor:
        """Per-frame centring: loudness goes, spectral shape stays; stays causal."""
        return (logmel - logmel.mean(dim=1, keepdim=True)) / 4.0

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.mel(wave))

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder(mel)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)

    @staticmethod
    def pool(latent: torch.Tensor) -> torch.Tensor:
        return latent.mean(dim=-1)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n_mels, T)`` -> ``(latent (B, latent, T), reconstruction (B, n_mels, T))``."""
        z = self.encode(mel)
        return z, self.decode(z)

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        """Write ``path.safetensors`` and ``path.json`` (config + meta), atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        doc = {"model": "tcae", "config": asdict(self.config), "meta": meta or {}}
        for suffix, write in (
            (".safetensors", lambda p: save_file(state, p)),
            (".json", lambda p: Path(p).write_text(json.dumps(doc, indent=2) + "\n")),
        ):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
            os.close(fd)
            try:
                write(tmp)
                os.replace(tmp, path.with_suffix(suffix))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> TCAE:
        from safetensors.torch import load_file

        path = Path(path)
        weights, config = path.with_suffix(".safetensors"), path.with_suffix(".json")
        if not weights.exists() or not config.exists():
            raise MelodyModelError(
                f"TCAE weights not found at {weights} / {config}; train them with "
                "`recsys train melody --data CORPUS`"
            )
        doc = json.loads(config.read_text())
        model = cls(TCAEConfig(**doc["config"]))
        try:
            model.load_state_dict(load_file(str(weights), device=device))
        except RuntimeError as e:
            raise MelodyModelError(f"{weights} does not match its config: {e}") from None
        return model.to(device).eval()


class TCAEMelodyEncoder:
    """The TCAE behind the ``MelodyEncoder`` interface (embeddings + pitch contours)."""

    name = "tcae"

    def __init__(self, model: TCAE, version: str, device: str = "auto",
                 pitch_method: str = pitch_mod.DEFAULT_METHOD, batch_size: int = 64):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.version = version
        self.dim = model.config.latent
        self.pitch_method = pitch_method
        self.batch_size = batch_size

    @torch.no_grad()
    def embed(self, windows: np.ndarray) -> np.ndarray:
        """``(n, WINDOW_SAMPLES)`` vocal windows -> ``(n, 128)`` float32, rows L2-normalised."""
        windows = _check_windows(windows)
        out = np.zeros((len(windows), self.dim), dtype=np.float32)
        for a in range(0, len(windows), self.batch_size):
            wave = torch.from_numpy(windows[a : a + self.batch_size]).to(self.device)
            z = self.model.encode(self.model.features(wave))
            out[a : a + len(wave)] = self.model.pool(z).cpu().numpy()
        return l2_normalize(out)

    def contour(self, audio: np.ndarray) -> np.ndarray:
        return pitch_mod.contour(audio, self.pitch_method)


class ContourBaseline:
    """Baseline melody encoder with no learning (registry name ``pitch_dtw``).

    ``embed``: each window's pitch contour minus its median (key invariance), unvoiced
    frames filled by interpolation, pooled to ``dim`` points and L2-normalised; a window
    with under 0.3 s of voice gives a zero vector. ``contour``: the chosen pitch tracker.
    """

    name = "pitch_dtw"
    dim = 64

    def __init__(self, pitch_method: str = pitch_mod.DEFAULT_METHOD):
        self.pitch_method = pitch_method
        self.version = f"pitch-dtw-{pitch_method}-1"

    def contour(self, audio: np.ndarray) -> np.ndarray:
        return pitch_mod.contour(audio, self.pitch_method)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        windows = _check_windows(windows)
        return np.stack([self.vector(self.contour(w)) for w in windows]).astype(np.float32)

    def vector(self, contour: np.ndarray) -> np.ndarray:
        """``(frames,)`` MIDI contour (NaN unvoiced) -> ``(dim,)`` unit vector (or zeros)."""
        voiced = np.flatnonzero(np.isfinite(contour))
        out = np.zeros(self.dim, dtype=np.float32)
        if len(voiced) < 30:
            return out
        rel = contour[voiced] - np.median(contour[voiced])
        filled = np.interp(np.arange(len(contour)), voiced, rel)
        chunks = np.array_split(filled, self.dim)
        out[:] = [c.mean() for c in chunks]
        return l2_normalize(out[None])[0]


def _check_windows(windows: np.ndarray) -> np.ndarray:
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
        raise ValueError(
            f"expected windows of shape (n, {WINDOW_SAMPLES}) at {SAMPLE_RATE} Hz, "
            f"got {windows.shape}"
        )
    return windows


def weights_path(name: str = WEIGHTS_NAME) -> Path:
    from embeddings.registry import WEIGHTS_DIR

    return WEIGHTS_DIR / name


def load_pretrained(path: str | os.PathLike | None = None, device: str = "auto"):
    """The shipped TCAE (``embeddings/weights/tcae-v1.*``) as a ``MelodyEncoder``."""
    path = Path(path) if path is not None else weights_path()
    model = TCAE.load(path)
    digest = hashlib.sha256(path.with_suffix(".safetensors").read_bytes()).hexdigest()[:8]
    return TCAEMelodyEncoder(model, version=f"tcae-{digest}", device=device)
