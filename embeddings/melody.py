"""Melody encoders: the TCAE (learned) and a pitch-contour baseline, both ``MelodyEncoder``s.

TCAE (time-causal autoencoder, after the vocal-recsys project and Yakura et al. 2022): an
encoder and a decoder of stacked dilated causal 1-D convolutions over the 48-band log-mel
of a vocal window (16 kHz, window 512, hop 256). The latent sequence, mean-pooled over
time, is the 128-d window embedding. Trained (``embeddings.melody_train``) on
reconstruction plus a contrastive loss that pulls a hummed window towards the catalog
window it imitates, so the latent keeps the tune and drops the voice.

Two front-ends (``TCAEConfig.frontend``) turn the normalised log-mel into what the causal
stacks see:

- ``"mel"`` (v1): the stacks read the normalised log-mel directly and must learn key,
  voice and loudness invariance from the pairs alone. Measured: at chance on unseen tunes.
- ``"interval"``: a small causal conv net reads a pitch posterior off the mel frames
  (``(B, pitch_bins, T)``, times a voicing probability; trained with an auxiliary loss on
  the corpus' known notes), then :class:`IntervalLayer` correlates the posterior of frame
  t with that of frame t - d for a few lags d and every interval of -12..+12 semitones.
  The result, "how likely did the tune move by k semitones over the last d frames", is
  exactly invariant to transposition and to the singer's voice colour, so the stacks only
  have to learn tempo-tolerant melodic patterns. The autoencoder then reconstructs these
  interval features (its own input), not the mel.

``ContourBaseline`` learns nothing: its embedding is the window's pitch contour relative to
its median, resampled to a fixed length.
"""

from __future__ import annotations

import hashlib
import json
import os
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
FRONTENDS = ("mel", "interval")


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
    frontend: str = "mel"  # "mel" (v1) or "interval" (pitch posterior -> intervals)
    pitch_min: float = 33.0  # MIDI note of the first pitch bin (interval front-end)
    pitch_bins: int = 48  # one bin per semitone
    front_channels: int = 64
    lags: tuple[int, ...] = (4, 8, 16, 32)  # frames between the correlated pitch posteriors
    max_interval: int = 12  # semitones, each way

    def __post_init__(self):
        if self.frontend not in FRONTENDS:
            raise MelodyModelError(f"unknown TCAE front-end {self.frontend!r}; "
                                   f"choose one of {FRONTENDS}")
        self.lags = tuple(int(d) for d in self.lags)

    @property
    def stack_input(self) -> int:
        """Channels the encoder stack reads (and the decoder reconstructs)."""
        if self.frontend == "mel":
            return self.n_mels
        return len(self.lags) * (2 * self.max_interval + 1)

    @property
    def receptive_field(self) -> int:
        """Frames of input that one latent frame sees (all in its past)."""
        stack = 1 + (self.kernel - 1) * (2**self.layers - 1)
        if self.frontend == "mel":
            return stack
        return stack + max(self.lags) + PitchFrontEnd.receptive_field(self.kernel) - 1


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


class PitchFrontEnd(nn.Module):
    """Causal pitch posterior of log-mel frames.

    ``(B, n_mels, T)`` normalised log-mel -> ``(pitch logits (B, pitch_bins, T),
    voicing logit (B, T))``. Three causal convs (kernel k, dilations 1, 2) then 1x1.
    """

    def __init__(self, config: TCAEConfig):
        super().__init__()
        c, k = config.front_channels, config.kernel
        self.net = nn.Sequential(
            CausalConv1d(config.n_mels, c, k), nn.GELU(),
            CausalConv1d(c, c, k, dilation=2), nn.GELU(),
            nn.Conv1d(c, c, 1), nn.GELU(),
            nn.Conv1d(c, config.pitch_bins + 1, 1),
        )

    @staticmethod
    def receptive_field(kernel: int) -> int:
        return 1 + (kernel - 1) * (1 + 2)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(mel)
        return out[:, :-1], out[:, -1]


class IntervalLayer(nn.Module):
    """Transposition-invariant interval features of a pitch posterior (no weights).

    ``(B, P, T)`` posterior (each frame sums to its voicing probability) ->
    ``(B, len(lags) * (2K+1), T)`` where channel ``(d, k)`` at frame t is
    ``sum_p post[p, t] * post[p - k, t - d]``: the probability that the pitch rose by k
    semitones over the last d frames. Frames before the window start count as unvoiced,
    so the layer is causal.
    """

    def __init__(self, lags: tuple[int, ...], max_interval: int):
        super().__init__()
        self.lags, self.k = tuple(lags), max_interval

    def forward(self, post: torch.Tensor) -> torch.Tensor:
        k, n_bins, frames = self.k, post.shape[1], post.shape[2]
        out = []
        for d in self.lags:
            past = nn.functional.pad(post, (d, 0))[..., :frames]  # past[t] = post[t - d]
            past = nn.functional.pad(past, (0, 0, k, k))  # pitch axis padded by k each side
            for shift in range(-k, k + 1):
                # sum_p post[p, t] * past[p - shift, t]  (measured faster than unfold/bmm)
                out.append((post * past[:, k - shift : k - shift + n_bins]).sum(dim=1))
        return torch.stack(out, dim=1)


class TCAE(nn.Module):
    """Time-causal autoencoder over log-mel frames.

    ``features``: ``(B, samples)`` wave -> ``(B, n_mels, T)`` normalised log-mel
    ``melody``:   ``(B, n_mels, T)`` -> ``(stack input (B, F, T), pitch logits
                  (B, pitch_bins, T) or None, voicing logit (B, T) or None)``; F is
                  ``config.stack_input`` (the mel itself for the ``"mel"`` front-end)
    ``encode``:   ``(B, n_mels, T)`` -> ``(B, latent, T)`` latent sequence (causal)
    ``decode``:   ``(B, latent, T)`` -> ``(B, F, T)`` reconstruction of the stack input
    ``pool``:     ``(B, latent, T)`` -> ``(B, latent)`` window embedding (not normalised)
    """

    def __init__(self, config: TCAEConfig | None = None):
        super().__init__()
        self.config = config or TCAEConfig()
        c = self.config
        self.mel = LogMel(n_mels=c.n_mels, n_fft=c.n_fft, hop=c.hop)
        if c.frontend == "interval":
            self.front = PitchFrontEnd(c)
            self.intervals = IntervalLayer(c.lags, c.max_interval)
        self.encoder = CausalStack(c.stack_input, c.latent, c)
        self.decoder = CausalStack(c.latent, c.stack_input, c)

    @staticmethod
    def normalise(logmel: torch.Tensor) -> torch.Tensor:
        """Per-frame centring: loudness goes, spectral shape stays; stays causal."""
        return (logmel - logmel.mean(dim=1, keepdim=True)) / 4.0

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.mel(wave))

    def melody(self, mel: torch.Tensor):
        if self.config.frontend == "mel":
            return mel, None, None
        logits, voicing = self.front(mel)
        post = torch.sigmoid(voicing)[:, None] * torch.softmax(logits, dim=1)
        return self.intervals(post), logits, voicing

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.melody(mel)[0])

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)

    @staticmethod
    def pool(latent: torch.Tensor) -> torch.Tensor:
        return latent.mean(dim=-1)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n_mels, T)`` -> ``(latent (B, latent, T), reconstruction (B, F, T))``."""
        z = self.encode(mel)
        return z, self.decode(z)

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        """Write ``path.safetensors`` and ``path.json`` (config + meta), atomically."""
        from embeddings.base import save_weights

        save_weights(path, self.state_dict(),
                     {"model": "tcae", "config": asdict(self.config), "meta": meta or {}})

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
        try:
            model = cls(TCAEConfig(**doc["config"]))
        except TypeError as e:
            raise MelodyModelError(f"{config} has an unknown TCAE config: {e}") from None
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

    @property
    def version(self) -> str:
        return f"pitch-dtw-{self.pitch_method}-1"

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
