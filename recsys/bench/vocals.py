"""Separated vocals of corpus songs for the benches and training commands: which separator,
and a disk cache so each song is separated once per separator version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

SEPARATOR_ORDER = ("bsrnn", "repet_sim")


def resolve_separator(name: str):
    """``"auto"``: BSRNN if its weights load, else REPET-SIM; ``"clean"``: the corpus' clean
    vocal stems (no separation, an upper bound); a ``.safetensors`` path: those BSRNN
    weights (a candidate before it ships, e.g. ``runs/separator/best.safetensors``).
    ``bsrnn`` or a weights path may end in options: ``,shifts=S`` averages S shifted passes
    (``BsrnnSeparator.separate_batch``), ``,precision=fp32|bf16|auto`` sets the arithmetic
    (``BsrnnSeparator``); unset, they are the shipped default's (``load_pretrained``), e.g.
    ``bsrnn,shifts=1,precision=fp32`` for one float32 pass.
    Returns ``(label, separator or None)``; ``label`` is the separator's version and names
    its cache folder."""
    from embeddings.registry import load_separator

    name, options = _split_options(name)
    if name == "clean":
        return "clean", None
    if name.endswith(".safetensors"):
        return separator_from_file(Path(name), **options)
    if options:
        if name != "bsrnn":
            raise RuntimeError(f"{', '.join(options)} apply to bsrnn or BSRNN weights only, "
                               f"not {name!r}")
        from embeddings.separation.bsrnn import load_pretrained

        try:
            sep = load_pretrained(**options)
        except Exception as e:  # missing weights, or an option out of range
            raise RuntimeError(f"bsrnn with {options}: {e}") from e
        return sep.version, sep
    errors = []
    for candidate in SEPARATOR_ORDER if name == "auto" else (name,):
        try:
            sep = load_separator(candidate)
            return getattr(sep, "version", candidate), sep
        except Exception as e:  # missing module or weights: try the next one
            errors.append(f"{candidate}: {e}")
    raise RuntimeError("no separator could be loaded (" + "; ".join(errors) + ")")


def _split_options(name: str) -> tuple[str, dict]:
    """``"bsrnn,shifts=2,precision=fp32"`` -> ``("bsrnn", {"shifts": 2, "precision":
    "fp32"})``; a name without options -> ``(name, {})``. Options are read off the end, so
    a weights path may hold commas."""
    from embeddings.separation.bsrnn import PRECISIONS

    options: dict = {}
    while True:
        base, comma, part = name.rpartition(",")
        key, _, value = part.partition("=")
        if not comma or key not in ("shifts", "precision") or key in options:
            return name, options
        if key == "shifts":
            try:
                options["shifts"] = int(value)
            except ValueError:
                raise RuntimeError(f"{part!r}: shifts must be a whole number") from None
            if options["shifts"] < 1:
                raise RuntimeError(f"{part!r}: shifts must be at least 1")
        elif value not in PRECISIONS:
            raise RuntimeError(f"{part!r}: precision is one of {', '.join(PRECISIONS)}")
        else:
            options["precision"] = value
        name = base


def separator_from_file(path: Path, shifts: int | None = None, precision: str | None = None):
    """``(version, BsrnnSeparator)`` of BSRNN weights at ``path`` (a candidate not shipped
    yet), run with ``shifts`` passes in ``precision`` (default: as the shipped weights run);
    a missing or unreadable file is a ``RuntimeError`` that names it."""
    from embeddings.separation.bsrnn import DEFAULT_PRECISION, DEFAULT_SHIFTS, BsrnnSeparator

    shifts = DEFAULT_SHIFTS if shifts is None else shifts
    precision = precision or DEFAULT_PRECISION

    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise RuntimeError(f"no BSRNN weights at {path} (it needs {path.name} and "
                           f"{path.with_suffix('.json').name})")
    try:
        sep = BsrnnSeparator.from_file(path, shifts=shifts, precision=precision)
    except Exception as e:  # a damaged or foreign file: say which, keep the type simple
        raise RuntimeError(f"{path} could not be loaded as BSRNN weights: {e}") from e
    return sep.version, sep


def heard_singers() -> set[str]:
    """Singers any shipped model was trained on (``heard_singers`` in the weights'
    metadata). Every shipped model trains on the same corpus' train singers."""
    return _heard("heard_singers")


def heard_tunes() -> set[str]:
    """Tunes any shipped model was trained on (``heard_tunes`` in the weights' metadata)."""
    return _heard("heard_tunes")


def _heard(key: str) -> set[str]:
    import json

    from embeddings.registry import WEIGHTS_DIR

    heard: set[str] = set()
    for path in sorted(WEIGHTS_DIR.glob("*.json")):
        heard |= set(json.loads(path.read_text()).get(key, []))
    return heard


def file_stamp(path: Path) -> str:
    """Short digest of a file's path, size and mtime: a cache key that changes when a corpus
    is rebuilt in place."""
    st = Path(path).stat()
    key = f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:10]


def separated_path(song, label: str, cache: Path) -> Path:
    return Path(cache) / "vocals" / label / f"{song.song_id}-{file_stamp(song.mixture)}.wav"


def separated_vocals(song, separator, label: str, cache: Path) -> np.ndarray:
    """The song's mixture through ``separator`` (its clean vocal stem when ``separator`` is
    None), cached as WAV under ``cache/vocals/label``."""
    from embeddings import audio

    if separator is None:
        return audio.load(song.vocals)
    path = separated_path(song, label, cache)
    if path.exists():
        return audio.load(path)
    vocals, _ = separator.separate(audio.load(song.mixture))
    audio.save(path, vocals)
    return vocals
