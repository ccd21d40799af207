"""The interfaces every model and its baseline share, so ingest and search never care which runs.

All audio is float32 mono at 16 kHz (``embeddings.audio.SAMPLE_RATE``). Window batches are
``(n, WINDOW_SAMPLES)`` arrays cut by :func:`embeddings.windows.cut`.

Each implementation has a ``name`` (registry key, e.g. ``"bsrnn"``) and a ``version``
(e.g. ``"bsrnn-cpu-1"``) that storage records beside every vector it makes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Separator(Protocol):
    """Splits a mixture into vocals and accompaniment."""

    name: str
    version: str

    def separate(self, mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(samples,)`` mixture -> ``(vocals, accompaniment)``, each ``(samples,)``."""
        ...


@runtime_checkable
class TimbreEncoder(Protocol):
    """Embeds vocal windows into a space where the same singer is close."""

    name: str
    version: str
    dim: int

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """``(n, WINDOW_SAMPLES)`` vocal windows -> ``(n, dim)`` float32, rows L2-normalised."""
        ...


@runtime_checkable
class MelodyEncoder(Protocol):
    """Embeds vocal windows into a space where the same melody is close, and extracts pitch."""

    name: str
    version: str
    dim: int
    pitch_method: str  # the tracker behind contour(): embeddings.pitch.METHODS

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """``(n, WINDOW_SAMPLES)`` vocal windows -> ``(n, dim)`` float32, rows L2-normalised."""
        ...

    def contour(self, audio: np.ndarray) -> np.ndarray:
        """``(samples,)`` vocals -> ``(frames,)`` pitch in MIDI note numbers at
        ``CONTOUR_HOP_SECONDS``; NaN where unvoiced."""
        ...


@runtime_checkable
class Tagger(Protocol):
    """Predicts tags of mixture windows and places audio and tags in one joint space."""

    name: str
    version: str
    vocabulary: list[str]
    dim: int

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, WINDOW_SAMPLES)`` mixture windows -> ``(probs (n, T), joint (n, dim))``;
        ``joint`` rows L2-normalised."""
        ...

    def embed_tags(self, tags: np.ndarray) -> np.ndarray:
        """``(m, T)`` multi-hot (or weighted) tag vectors -> ``(m, dim)`` in the joint space,
        rows L2-normalised."""
        ...


def l2_normalize(x: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, eps)


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; ``"cpu"`` and
    ``"cuda"`` (or ``"cuda:N"``) pass through. Raises ``ValueError`` for any other name and
    for CUDA on a machine without a GPU, before any model moves."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: torch sees no CUDA GPU on this machine")
        return device
    raise ValueError(f"unknown device {device!r}; choose 'auto', 'cpu' or 'cuda'")


def save_weights(path, state: dict, doc: dict) -> None:
    """Write a torch ``state`` dict to ``path.safetensors`` and ``doc`` to ``path.json``,
    each atomically (a temporary file renamed into place), so a crash never leaves a
    half-written model behind."""
    import json
    import os
    import tempfile
    from pathlib import Path

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
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
