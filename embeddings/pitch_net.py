"""A small learned pitch tracker for sung (and separated, and hummed) voice.

YIN reads the period off the waveform and cannot tell the voice from what the separator
left of the accompaniment: on BSRNN-separated vocals it calls most rests voiced and
follows the bass or a chord tone. This model is trained on the corpus, whose sung notes
are known exactly, on the three kinds of audio the product feeds a pitch tracker: clean
vocal stems, separated vocals and hums.

Front-end (:class:`HarmonicSpectrogram`): magnitude STFT (2048 points, 10 ms hop), read
at a log-frequency pitch grid (``bins_per_semitone`` per semitone over
``midi_min..midi_max``) at several harmonics ``h * f0`` of each grid pitch, stacked as
channels (the harmonic CQT idea of Bittner et al., 2017, deep salience): a sung pitch
lights up the same grid bin in every channel, an accompaniment partial does not.

Network (:class:`PitchNet`): a few 2-D convolutions over (time, pitch bin) -> one logit
per pitch bin and frame, plus one "unvoiced" logit per frame read from the features
max-pooled over pitch. Trained with cross-entropy over ``1 + bins`` classes.

Decoding (:func:`decode`): unvoiced where the unvoiced class wins, else the
probability-weighted mean pitch of the bins within a semitone of the best one.

:class:`PitchTracker` runs the shipped weights block by block (flat memory on long files)
and returns the same contour as :func:`embeddings.pitch.contour`: MIDI every 10 ms, NaN
unvoiced, ``n_frames(samples)`` frames.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from embeddings import pitch
from embeddings.audio import SAMPLE_RATE

WEIGHTS_NAME = "pitch-cnn"


class PitchModelError(RuntimeError):
    """Pitch model weights are missing or do not match their config."""


@dataclass
class PitchNetConfig:
    n_fft: int = 2048  # 128 ms: resolves the partials of a bass voice
    hop: int = 160  # 10 ms, the contour hop
    midi_min: float = 34.0  # lowest pitch bin (B♭1, 58 Hz)
    midi_max: float = 86.0  # highest pitch bin (D6, 1175 Hz)
    bins_per_semitone: int = 3
    harmonics: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    channels: int = 12
    layers: int = 3
    kernel_time: int = 3
    kernel_pitch: int = 5
    voicing_context: int = 11  # frames the unvoiced logit looks at

    def __post_init__(self):
        self.harmonics = tuple(float(h) for h in self.harmonics)
        if self.midi_max <= self.midi_min or self.bins_per_semitone < 1 or self.layers < 1:
            raise PitchModelError(f"bad pitch model config: {self}")

    @property
    def bins(self) -> int:
        return int(round((self.midi_max - self.midi_min) * self.bins_per_semitone)) + 1

    def bin_midi(self) -> np.ndarray:
        """``(bins,)`` MIDI pitch of each bin."""
        return self.midi_min + np.arange(self.bins) / self.bins_per_semitone

    def midi_to_class(self, midi: np.ndarray) -> np.ndarray:
        """``(T,)`` MIDI (NaN unvoiced) -> ``(T,)`` class: 0 unvoiced, 1 + nearest bin."""
        midi = np.asarray(midi, dtype=np.float64)
        voiced = np.isfinite(midi)
        b = np.round((np.nan_to_num(midi) - self.midi_min) * self.bins_per_semitone)
        return np.where(voiced, 1 + np.clip(b, 0, self.bins - 1), 0).astype(np.int64)


class HarmonicSpectrogram(nn.Module):
    """``(B, samples)`` audio -> ``(B, harmonics, T, bins)`` log magnitude, ``T = 1 +
    samples // hop`` (centred frames). Each channel reads the STFT at ``h`` times every grid
    pitch (linear interpolation between FFT bins; zero above Nyquist)."""

    def __init__(self, config: PitchNetConfig):
        super().__init__()
        self.config = config
        fft_hz = np.fft.rfftfreq(config.n_fft, 1.0 / SAMPLE_RATE)
        grid_hz = librosa.midi_to_hz(config.bin_midi())
        # read position of every (harmonic, grid pitch) in FFT bins; past Nyquist reads 0
        pos = (np.array(config.harmonics)[:, None] * grid_hz[None]).ravel() / fft_hz[1]
        lo = np.floor(pos).astype(np.int64)
        frac = (pos - lo).astype(np.float32)
        inside = lo + 1 < len(fft_hz)
        self.register_buffer("lo", torch.from_numpy(np.where(inside, lo, 0)), persistent=False)
        self.register_buffer("frac", torch.from_numpy(frac), persistent=False)
        self.register_buffer("inside", torch.from_numpy(inside.astype(np.float32)),
                             persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        spec = torch.stft(audio, c.n_fft, c.hop, window=self.window, center=True,
                          return_complex=True).abs()  # (B, n_fft/2+1, T)
        # whole rows of the spectrogram are gathered: faster than gathering across its rows
        weight = ((1.0 - self.frac) * self.inside)[:, None], (self.frac * self.inside)[:, None]
        grid = spec[:, self.lo] * weight[0] + spec[:, self.lo + 1] * weight[1]  # (B, H*bins, T)
        grid = grid.reshape(grid.shape[0], len(c.harmonics), c.bins, grid.shape[-1])
        return torch.log1p(100.0 * grid).transpose(2, 3)


class PitchNet(nn.Module):
    """``(B, samples)`` audio at 16 kHz -> ``(B, T, 1 + bins)`` logits: class 0 unvoiced,
    class ``1 + k`` pitch bin ``k``."""

    def __init__(self, config: PitchNetConfig | None = None):
        super().__init__()
        self.config = c = config or PitchNetConfig()
        self.frontend = HarmonicSpectrogram(c)
        self.norm = nn.BatchNorm2d(len(c.harmonics))
        pad = (c.kernel_time // 2, c.kernel_pitch // 2)
        blocks, width = [], len(c.harmonics)
        for _ in range(c.layers):
            blocks += [nn.Conv2d(width, c.channels, (c.kernel_time, c.kernel_pitch), padding=pad),
                       nn.BatchNorm2d(c.channels), nn.ReLU()]
            width = c.channels
        self.body = nn.Sequential(*blocks)
        self.salience = nn.Conv2d(c.channels, 1, 1)
        self.unvoiced = nn.Conv1d(c.channels, 1, c.voicing_context,
                                  padding=c.voicing_context // 2)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.frontend(audio))  # (B, H, T, bins)
        if not self.training:
            # the same numbers; measured ~35 % faster convolutions on this CPU
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.body(x)  # (B, C, T, bins)
        pitch = self.salience(x).squeeze(1)  # (B, T, bins)
        unvoiced = self.unvoiced(x.amax(dim=3)).transpose(1, 2)  # (B, T, 1)
        return torch.cat([unvoiced, pitch], dim=2)

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        """Write ``path.safetensors`` and ``path.json`` (config + meta), atomically."""
        from embeddings.base import save_weights

        save_weights(path, self.state_dict(),
                     {"model": "pitch-cnn", "config": asdict(self.config), "meta": meta or {}})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> PitchNet:
        from safetensors.torch import load_file

        path = Path(path)
        weights, config = path.with_suffix(".safetensors"), path.with_suffix(".json")
        if not weights.exists() or not config.exists():
            raise PitchModelError(f"pitch model weights not found at {weights} / {config}; "
                                  "train them with `recsys train pitch --data CORPUS`")
        try:
            model = cls(PitchNetConfig(**json.loads(config.read_text())["config"]))
            model.load_state_dict(load_file(str(weights), device=device))
        except (TypeError, KeyError, RuntimeError, ValueError) as e:
            raise PitchModelError(f"{weights} does not match its config: {e}") from None
        return model.to(device).eval()


def decode(logits: torch.Tensor, config: PitchNetConfig) -> np.ndarray:
    """``(T, 1 + bins)`` logits -> ``(T,)`` MIDI, NaN where the unvoiced class wins.

    The pitch is the probability-weighted mean of the bins within a semitone of the most
    likely bin (sub-bin precision, as CREPE's local average)."""
    p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    voiced = p[:, 0] < p[:, 1:].sum(axis=1)
    best = p[:, 1:].argmax(axis=1)
    reach = config.bins_per_semitone
    offsets = np.arange(-reach, reach + 1)
    idx = np.clip(best[:, None] + offsets[None], 0, config.bins - 1)
    w = np.take_along_axis(p[:, 1:], idx, axis=1)
    midi = config.bin_midi()[idx]
    estimate = (w * midi).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)
    return np.where(voiced, estimate, np.nan).astype(np.float32)


def for_inference(model: PitchNet) -> PitchNet:
    """An eval-mode copy of ``model`` with each batch norm folded into the convolution before
    it: the same outputs (to float rounding), about half the convolution time on a CPU."""
    import copy

    from torch.ao.quantization import fuse_modules

    fused = copy.deepcopy(model).eval()
    triples = [[str(i), str(i + 1), str(i + 2)] for i in range(0, len(fused.body), 3)]
    fused.body = fuse_modules(fused.body, triples)
    return fused


class PitchTracker:
    """Shipped :class:`PitchNet` as a contour function: ``(samples,)`` float audio at
    16 kHz -> ``(1 + samples // 160,)`` MIDI, NaN unvoiced. Audio is processed in blocks of
    ``block_seconds`` with ``context_seconds`` of overlap on each side, so memory stays
    flat on long files and the result equals a whole-file pass."""

    def __init__(self, model: PitchNet, version: str, device: str = "cpu",
                 block_seconds: float = 30.0,
                 context_seconds: float = pitch.LOCAL_CONTEXT_SECONDS):
        self.model = for_inference(model).to(device)
        self.device = device
        self.version = version
        self.block = int(block_seconds * SAMPLE_RATE) // model.config.hop * model.config.hop
        self.context = int(context_seconds * SAMPLE_RATE) // model.config.hop * model.config.hop

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        hop = self.model.config.hop
        audio = np.asarray(audio, dtype=np.float32)
        frames = 1 + len(audio) // hop
        # the centred STFT needs more than half a frame; silence pads a very short clip
        audio = np.pad(audio, (0, max(0, self.model.config.n_fft - len(audio))))
        out = np.empty(1 + len(audio) // hop, dtype=np.float32)
        for a in range(0, len(audio), self.block):
            lo, hi = max(0, a - self.context), min(len(audio), a + self.block + self.context)
            x = torch.from_numpy(audio[lo:hi]).to(self.device)[None]
            midi = decode(self.model(x)[0], self.model.config)
            first = (a - lo) // hop
            n = min(self.block // hop, len(out) - a // hop)
            out[a // hop: a // hop + n] = midi[first: first + n]
        return out[:frames]


def weights_path(name: str = WEIGHTS_NAME) -> Path:
    from embeddings.registry import WEIGHTS_DIR

    return WEIGHTS_DIR / name


_SHIPPED: dict[str, PitchTracker] = {}


def load_pretrained(path: str | os.PathLike | None = None) -> PitchTracker:
    """The shipped tracker (``embeddings/weights/pitch-cnn.*``), loaded once per process."""
    path = Path(path) if path is not None else weights_path()
    key = str(path.resolve())
    if key not in _SHIPPED:
        model = PitchNet.load(path)
        digest = hashlib.sha256(path.with_suffix(".safetensors").read_bytes()).hexdigest()[:8]
        _SHIPPED[key] = PitchTracker(model, version=f"pitch-cnn-{digest}")
    return _SHIPPED[key]


def cross_entropy(logits: torch.Tensor, classes: torch.Tensor, config: PitchNetConfig,
                  blur: float = 1.0) -> torch.Tensor:
    """Training loss: ``(B, T, 1 + bins)`` logits vs ``(B, T)`` classes. Voiced targets are
    spread over neighbouring bins (Gaussian, ``blur`` bins), so a near miss costs less than
    an octave error."""
    k = torch.arange(config.bins, device=logits.device, dtype=torch.float32)
    voiced = classes > 0
    centre = (classes - 1).clamp(min=0).float()
    soft = torch.exp(-0.5 * ((k[None, None] - centre[..., None]) / blur) ** 2)
    soft = soft / soft.sum(dim=-1, keepdim=True)
    target = torch.cat([(~voiced).float()[..., None], soft * voiced[..., None]], dim=-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                           target.reshape(-1, target.shape[-1]))
