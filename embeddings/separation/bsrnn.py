"""Band-Split RNN vocal separator (Luo & Yu, TASLP 2023), sized for 16 kHz mono.

STFT -> band split (one N-d feature per band and frame) -> L modules of a BLSTM across
time then a BLSTM across bands, each with group norm and a residual -> per-band mask MLP
-> complex mask on the mixture STFT -> inverse STFT = vocals; accompaniment is the rest.
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
from safetensors.torch import load_file, save_file
from torch import nn

from embeddings.audio import SAMPLE_RATE
from embeddings.base import resolve_device
from embeddings.separation.bandsplit import BandSplit, MaskEstimation, apply_mask, band_widths
from embeddings.separation.infer import iter_overlap_add, overlap_add

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = ("bsrnn-cpu", "bsrnn-cpu-semi")  # the better on val is the default


@dataclass
class BSRNNConfig:
    """Sizes of the model. ``features`` is N, ``modules`` is L, ``hidden`` the BLSTM width."""

    n_fft: int = 1024
    hop: int = 512
    sample_rate: int = SAMPLE_RATE
    features: int = 48
    modules: int = 4
    hidden: int = 48
    mask_hidden: int = 96

    @classmethod
    def named(cls, name: str) -> BSRNNConfig:
        """``"cpu"`` (the defaults) or ``"paper"`` (N=128, 12 modules, hidden 256, hop 256).

        The CPU size was chosen by measurement on the shared 2-core machine: N=64, 6 modules
        at hop 256 ran at only ~1-2x real time there (the time BLSTM's 376 sequential steps
        per 6 s chunk dominate), so the CPU config halves the frame rate (hop 512) and uses
        N=48, 4 modules, hidden 48.
        """
        if name == "cpu":
            return cls()
        if name == "paper":
            return cls(hop=256, features=128, modules=12, hidden=256, mask_hidden=512)
        if name == "tiny":  # for tests only
            return cls(features=16, modules=1, hidden=16, mask_hidden=32)
        raise ValueError(f"unknown BSRNN config {name!r}; choose 'cpu' or 'paper'")


class ResidualRNN(nn.Module):
    """GroupNorm -> BLSTM -> Linear, plus the input. ``(batch, seq, N)`` -> same shape."""

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, features)
        self.rnn = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x.transpose(1, 2)).transpose(1, 2)
        y, _ = self.rnn(y)
        return x + self.fc(y)


class BandSequenceModule(nn.Module):
    """One BLSTM across time (within each band), then one across bands (within each frame).

    ``(batch, bands, frames, N)`` -> same shape.
    """

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.time_rnn = ResidualRNN(features, hidden)
        self.band_rnn = ResidualRNN(features, hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, k, t, n = z.shape
        z = self.time_rnn(z.reshape(b * k, t, n)).reshape(b, k, t, n)
        z = z.transpose(1, 2).reshape(b * t, k, n)
        z = self.band_rnn(z).reshape(b, t, k, n).transpose(1, 2)
        return z.contiguous()


class BSRNN(nn.Module):
    """Mixture waveform ``(batch, samples)`` -> vocals waveform ``(batch, samples)``."""

    def __init__(self, config: BSRNNConfig | None = None):
        super().__init__()
        self.config = config or BSRNNConfig()
        c = self.config
        self.widths = band_widths(c.n_fft, c.sample_rate)
        self.band_split = BandSplit(self.widths, c.features)
        self.blocks = nn.Sequential(
            *[BandSequenceModule(c.features, c.hidden) for _ in range(c.modules)]
        )
        self.mask = MaskEstimation(self.widths, c.features, c.mask_hidden)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, freq, frames, 2)`` real view of the STFT."""
        spec = torch.stft(wave, self.config.n_fft, self.config.hop, window=self.window,
                          center=True, return_complex=True)
        return torch.view_as_real(spec)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``(batch, freq, frames, 2)`` -> ``(batch, length)``."""
        return torch.istft(torch.view_as_complex(spec.contiguous()), self.config.n_fft,
                           self.config.hop, window=self.window, center=True, length=length)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        spec = self.stft(mixture)
        # features see a level-normalised spectrum so quiet and loud songs look alike;
        # the mask is applied to the original one
        scale = spec.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-5)
        z = self.band_split(spec / scale)
        z = self.blocks(z)
        mask = self.mask(z)
        return self.istft(apply_mask(spec, mask), mixture.shape[-1])

    def save(self, path: str | os.PathLike, **meta) -> None:
        """Write ``path`` (.safetensors) and its ``.json`` config, each atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        _atomic(path, lambda tmp: save_file(state, tmp))
        doc = {"model": "bsrnn", "config": asdict(self.config), **meta}
        _atomic(path.with_suffix(".json"),
                lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=2) + "\n"))

    def grown(self, extra_modules: int) -> BSRNN:
        """A deeper copy: this model's modules, then ``extra_modules`` new ones whose output
        layers start at zero. Each module adds its output to its input, so the new ones
        start as the identity and the grown model separates exactly as this one does until
        training moves them (depth growth: a capacity step that loses no training)."""
        if extra_modules < 0:
            raise ValueError(f"extra_modules must be >= 0, not {extra_modules}")
        c = self.config
        deeper = BSRNN(BSRNNConfig(**{**asdict(c), "modules": c.modules + extra_modules}))
        deeper.load_state_dict(self.state_dict(), strict=False)
        for block in list(deeper.blocks)[c.modules:]:
            for rnn in (block.time_rnn, block.band_rnn):
                nn.init.zeros_(rnn.fc.weight)
                nn.init.zeros_(rnn.fc.bias)
        return deeper.to(self.window.device).train(self.training)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> tuple[BSRNN, dict]:
        """The model saved at ``path`` and the metadata of its JSON file."""
        path = Path(path)
        doc = json.loads(path.with_suffix(".json").read_text())
        model = cls(BSRNNConfig(**doc["config"]))
        model.load_state_dict(load_file(str(path), device="cpu"))
        return model.to(device).eval(), doc


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; weights are shared files
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


PRECISIONS = ("auto", "fp32", "bf16")
# how the shipped weights run by default (ingest, `recsys separate`, the benches): two passes
# on shifted frame grids, in bfloat16 where the CPU has it; chosen in session 28 by a rule
# written down before measuring (README)
DEFAULT_SHIFTS = 2
DEFAULT_PRECISION = "auto"


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively through oneDNN (AVX-512 BF16 or AMX); where it
    does not, bfloat16 is emulated and slower than float32."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the check
        return False


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` -> ``"bf16"`` on a CPU with native bfloat16, else ``"fp32"`` (CUDA keeps
    float32, the precision the weights were validated in there)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"
    return precision


class BsrnnSeparator:
    """:class:`embeddings.base.Separator` around a BSRNN, run in cross-faded chunks.

    ``precision="bf16"`` runs the network (not the STFTs) under bfloat16 autocast, about 1.3x
    faster on a CPU with native bfloat16 and as accurate (BENCHMARKS.md, session 28);
    ``"auto"`` picks it where the CPU has it. The shipped default is ``DEFAULT_SHIFTS`` and
    ``DEFAULT_PRECISION`` (``load_pretrained``); this class's defaults are one float32 pass."""

    name = "bsrnn"

    def __init__(self, model: BSRNN, version: str = "bsrnn", device: str = "auto",
                 chunk_seconds: float = 6.0, overlap_seconds: float = 1.0, batch: int = 8,
                 shifts: int = 1, precision: str = "fp32"):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        sr, hop = model.config.sample_rate, model.config.hop
        if not 1 <= shifts <= hop:
            raise ValueError(f"shifts must be in [1, {hop}] (the STFT hop), got {shifts}")
        self.precision = resolve_precision(precision, self.device)
        # the version names caches of separated audio: shifted or bfloat16 passes give
        # other audio
        self.version = version + (f"-shifts{shifts}" if shifts > 1 else "") + \
            ("-bf16" if self.precision == "bf16" else "")
        self.shifts = shifts
        # chunk starts on the STFT frame grid, so every chunk sees the frames the whole file has;
        # the cross-fade covers at least the half window a chunk's edge frames are padded by
        edge = -(-model.config.n_fft // 2 // hop) * hop
        self.overlap = max(round(overlap_seconds * sr / hop) * hop, edge)
        self.chunk = max(round(chunk_seconds * sr / hop) * hop, self.overlap + hop)
        # chunks per forward pass: the BLSTMs run far faster batched; each chunk is run S times
        # in that pass, so S shifts take batch // S chunks and memory does not grow with S
        self.batch = max(1, batch // shifts)

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "auto", **kw) -> BsrnnSeparator:
        model, doc = BSRNN.load(path)
        # the weights' digest in the version: caches of separated audio and the catalog's
        # provenance must change when the weights are retrained under the same name
        digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:8]
        version = f"{doc.get('version', Path(path).stem)}-{digest}"
        return cls(model, version=version, device=device, **kw)

    def separate_chunk(self, piece: np.ndarray) -> np.ndarray:
        """``(samples,)`` -> ``(2, samples)``: vocals and accompaniment (mixture - vocals).
        A piece shorter than one STFT window is zero-padded to it and cut back."""
        n = len(piece)
        padded = np.pad(piece, (0, max(0, self.model.config.n_fft - n)))
        return self.separate_batch(padded[None])[0][:, :n]

    @torch.inference_mode()
    def separate_batch(self, pieces: np.ndarray) -> np.ndarray:
        """``(k, samples)`` -> ``(k, 2, samples)``.

        With ``shifts`` S > 1 the vocals are the mean of S passes whose input is delayed by
        ``i * hop / S`` samples (i = 0..S-1), each cut back into place: every pass sees the
        signal on another STFT frame grid, and averaging them smooths the errors that depend
        on the grid (Demucs' "shift trick", on the sub-hop scale). S passes cost S times the
        compute; they run as one batch."""
        pieces = np.ascontiguousarray(pieces, dtype=np.float32)
        k, n = pieces.shape
        hop = self.model.config.hop
        delays = [i * hop // self.shifts for i in range(self.shifts)]
        room = hop if self.shifts > 1 else 0  # every pass is n + room long; one pass: n
        shifted = np.stack([np.pad(pieces, ((0, 0), (d, room - d))) for d in delays])
        x = torch.from_numpy(shifted.reshape(self.shifts * k, -1)).to(self.device)
        with torch.autocast(self.device, dtype=torch.bfloat16,
                            enabled=self.precision == "bf16"):
            out = self.model(x).float().cpu().numpy().reshape(self.shifts, k, -1)
        vocals = np.mean([out[i, :, d : d + n] for i, d in enumerate(delays)], axis=0)
        return np.stack([vocals, pieces - vocals], axis=1)

    def iter_separate(self, mixture: np.ndarray):
        """Finished ``(2, n)`` segments in order; memory does not grow with the length."""
        return iter_overlap_add(self.separate_chunk, mixture, self.chunk, self.overlap,
                                self.separate_batch, self.batch)

    def separate(self, mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = overlap_add(self.separate_chunk, mixture, self.chunk, self.overlap,
                          self.separate_batch, self.batch)
        return out[0], out[1]


def load_pretrained(name: str | None = None, device: str = "auto",
                    shifts: int = DEFAULT_SHIFTS,
                    precision: str = DEFAULT_PRECISION) -> BsrnnSeparator:
    """The shipped weights: ``name`` (e.g. ``"bsrnn-cpu"``) or, by default, whichever of
    ``DEFAULT_WEIGHTS`` scored the higher validation SDR (``val_sdr`` in its JSON, measured
    by ``recsys train separator`` on the corpus' val split); ``shifts`` as in
    :meth:`BsrnnSeparator.separate_batch`, ``precision`` as in :class:`BsrnnSeparator`."""
    names = [name] if name else list(DEFAULT_WEIGHTS)
    found = []
    for n in names:
        path = WEIGHTS_DIR / f"{n}.safetensors"
        if path.exists() and path.with_suffix(".json").exists():
            doc = json.loads(path.with_suffix(".json").read_text())
            val = doc.get("val_sdr")
            found.append((float("-inf") if val is None else float(val), path))
    if not found:
        raise FileNotFoundError(
            f"no BSRNN weights in {WEIGHTS_DIR} (looked for {', '.join(names)}); train them "
            "with `recsys train separator --data CORPUS --ship bsrnn-cpu`"
        )
    return BsrnnSeparator.from_file(max(found)[1], device=device, shifts=shifts,
                                    precision=precision)
