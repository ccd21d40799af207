"""Chunked inference with cross-faded overlap-add, so memory stays flat whatever the length.

Any separator that maps a mixture chunk to ``(2, chunk)`` (vocals, accompaniment) can be
run over a file of any length: chunks of ``chunk`` samples start every ``chunk - overlap``
samples and neighbours are cross-faded over ``overlap`` samples with complementary
raised-cosine ramps (they sum to one, so no renormalisation is needed).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

ChunkFn = Callable[[np.ndarray], np.ndarray]
BatchFn = Callable[[np.ndarray], np.ndarray]


def chunk_starts(length: int, chunk: int, overlap: int) -> list[int]:
    """Start samples of the chunks covering ``length`` samples; the last one may be short.

    Every chunk but the last is ``chunk`` long; the last ends the input and, unless the
    input is shorter than ``overlap``, is longer than ``overlap``.
    """
    if not 0 <= overlap < chunk:
        raise ValueError(f"overlap ({overlap}) must be in [0, chunk={chunk})")
    hop = chunk - overlap
    starts = [0]
    while starts[-1] + chunk < length:
        starts.append(starts[-1] + hop)
    return starts


def iter_overlap_add(fn: ChunkFn, mixture: np.ndarray, chunk: int, overlap: int,
                     batch_fn: BatchFn | None = None, batch: int = 1) -> Iterator[np.ndarray]:
    """Run ``fn`` chunk by chunk and yield finished ``(2, n)`` output segments in order.

    ``fn`` takes a ``(samples,)`` chunk and returns ``(2, samples)``. With ``batch_fn``
    (``(k, chunk)`` -> ``(k, 2, chunk)``), up to ``batch`` full-length chunks go through it at
    once (faster on CPU and GPU; memory still bounded by ``batch`` chunks). The segments
    concatenated along the last axis have the length of ``mixture``.
    """
    mixture = np.asarray(mixture, dtype=np.float32)
    length = len(mixture)
    starts = chunk_starts(length, chunk, overlap)
    t = (np.arange(overlap, dtype=np.float32) + 0.5) / max(overlap, 1)
    fade_in = np.sin(0.5 * np.pi * t) ** 2
    fade_out = 1.0 - fade_in
    pending: np.ndarray | None = None
    for group in _groups(starts, length, chunk, batch if batch_fn else 1):
        pieces = [mixture[s : s + chunk] for s in group]
        if len(pieces) > 1 or (batch_fn and len(pieces[0]) == chunk):
            outs = list(np.asarray(batch_fn(np.stack(pieces)), dtype=np.float32))
        else:
            outs = [np.asarray(fn(pieces[0]), dtype=np.float32)]
        for start, piece, out in zip(group, pieces, outs, strict=True):
            if out.shape != (2, len(piece)):
                raise ValueError(f"separator returned shape {out.shape}, "
                                 f"expected (2, {len(piece)})")
            out = out.copy()
            if pending is not None and overlap:
                out[:, :overlap] = pending * fade_out + out[:, :overlap] * fade_in
            if start == starts[-1] or not overlap:
                pending = None
                yield out
            else:
                pending = out[:, -overlap:]
                yield out[:, :-overlap]


def _groups(starts: list[int], length: int, chunk: int, batch: int) -> Iterator[list[int]]:
    """Consecutive starts in groups of up to ``batch``; a short last chunk goes alone."""
    group: list[int] = []
    for s in starts:
        if s + chunk > length and group:  # the short tail cannot be stacked with full chunks
            yield group
            group = []
        group.append(s)
        if len(group) == batch:
            yield group
            group = []
    if group:
        yield group


def overlap_add(fn: ChunkFn, mixture: np.ndarray, chunk: int, overlap: int,
                batch_fn: BatchFn | None = None, batch: int = 1) -> np.ndarray:
    """The whole ``(2, samples)`` output of :func:`iter_overlap_add`, in one array."""
    out = np.empty((2, len(mixture)), dtype=np.float32)
    pos = 0
    for segment in iter_overlap_add(fn, mixture, chunk, overlap, batch_fn, batch):
        out[:, pos : pos + segment.shape[1]] = segment
        pos += segment.shape[1]
    return out


def write_stems(out: Path, stem: str, segments: Iterable[np.ndarray],
                sample_rate: int, subtype: str = "PCM_16") -> None:
    """Stream ``(2, n)`` segments into ``stem.vocals.wav`` and ``stem.accompaniment.wav``
    (``subtype``: 16-bit PCM, clipped to [-1, 1]; ``"FLOAT"`` keeps samples beyond full
    scale) through temporary files renamed at the end: never a half-written file, and
    memory holds one segment at a time."""
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    finals = [out / f"{stem}.vocals.wav", out / f"{stem}.accompaniment.wav"]
    tmps = []
    for f in finals:
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{f.stem}.", suffix=".wav")
        os.close(fd)
        os.chmod(tmp, 0o644)
        tmps.append(tmp)
    try:
        writers = [sf.SoundFile(t, "w", sample_rate, 1, subtype=subtype) for t in tmps]
        clip = subtype != "FLOAT"
        try:
            for seg in segments:
                for w, x in zip(writers, seg, strict=True):
                    x = np.asarray(x, dtype=np.float32)
                    w.write(np.clip(x, -1.0, 1.0) if clip else x)
        finally:
            for w in writers:
                w.close()
        for t, f in zip(tmps, finals, strict=True):
            os.replace(t, f)
    except BaseException:
        for t in tmps:
            Path(t).unlink(missing_ok=True)
        raise
