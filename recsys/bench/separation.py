"""Separation benchmark: mixture, REPET-SIM, BSRNN, BSRNN after semi-supervised fine-tuning
and the oracle IRM side by side on one corpus split.

Metrics per system: ``vocals_sdr`` and ``accompaniment_sdr`` (BSSEval v4 through
``museval.evaluate`` with 1 s windows and hops at 16 kHz: median over frames, then median
over tracks), ``vocals_si_sdr`` (scale-invariant SDR over the whole track, median over
tracks), ``realtime_factor`` (seconds of audio per second of separation on the corpus
songs, this machine) and ``peak_mem_mb`` (separating one long file in a fresh subprocess:
the peak resident set, sampled every 10 ms from /proc while it separates, minus the resident
set once the model and the input are loaded: the extra memory the separation needs, its two
output arrays included; ``peak_mem_stream_mb``, for separators that stream, the same file
written to disk segment by segment as `recsys separate` does).
Instrumental songs are skipped: their vocals SDR is undefined.

The ``bsrnn`` rows run as shipped (``load_pretrained``: ``DEFAULT_SHIFTS`` shifted passes,
``DEFAULT_PRECISION``) unless ``precision`` is given. A candidate's weights (``separator``, a
``.safetensors`` path) take the ``bsrnn`` row, so a model can be scored before it ships;
``shifts`` adds a ``bsrnn_shifts{S}`` row per other S, the ``bsrnn`` row's weights averaged
over S shifted passes (``recsys separate --shifts S``; S = 1 is one plain pass).
``singers`` keeps only songs by singers the shipped weights heard in training, or only
those by singers they never heard (``split="all"`` on a corpus no model trains on measures
unheard voices without touching the test split).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from recsys.bench.result import BenchResult
from recsys.bench.vocals import heard_singers, heard_tunes, separator_from_file

SEPARATED = ("mixture", "repet_sim", "bsrnn", "bsrnn_semi")
WEIGHTS = {"bsrnn": "bsrnn-cpu", "bsrnn_semi": "bsrnn-cpu-semi"}
SINGERS = ("all", "heard", "unseen")


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-9) -> float:
    """Scale-invariant SDR in dB of ``(samples,)`` signals (Le Roux et al. 2019)."""
    ref = reference.astype(np.float64) - reference.mean()
    est = estimate.astype(np.float64) - estimate.mean()
    target = (np.dot(est, ref) / (np.dot(ref, ref) + eps)) * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def bss_eval(vocals, accompaniment, est_vocals, est_accompaniment, sr: int) -> tuple[float, float]:
    """Median-over-1 s-frames BSSEval v4 SDR of vocals and accompaniment (museval)."""
    import museval

    refs = np.stack([vocals, accompaniment])[..., None].astype(np.float64)
    ests = np.stack([est_vocals, est_accompaniment])[..., None].astype(np.float64)
    sdr, _, _, _ = museval.evaluate(refs, ests, win=sr, hop=sr)
    return float(np.nanmedian(sdr[0])), float(np.nanmedian(sdr[1]))


def songs_to_score(songs, split: str, singers: str, singers_heard: set[str],
                   tunes_heard: set[str]) -> list:
    """The songs with vocals a separator may be scored on: never on a tune any shipped
    weights trained on, never on `test` by a singer they heard; ``singers`` ("all",
    "heard", "unseen") keeps songs by heard or unheard singers only."""
    if singers not in SINGERS:
        raise ValueError(f"singers is one of {', '.join(SINGERS)}, not {singers!r}")
    kept = []
    for s in songs:
        heard = s.singer_id in singers_heard
        if s.instrumental or s.tune_id in tunes_heard or (split == "test" and heard):
            continue
        if singers == "all" or heard == (singers == "heard"):
            kept.append(s)
    return kept


def _load_separator(system: str, weights: str | None = None, precision: str | None = None):
    """The separator of a row: ``bsrnn`` runs as shipped (``load_pretrained``'s default
    shifts), ``bsrnn_shifts4`` with 4 shifts; BSRNN rows run in ``precision`` (default: as
    shipped)."""
    from embeddings.separation.baselines import MixtureAsEstimate, RepetSim
    from embeddings.separation.bsrnn import DEFAULT_PRECISION, DEFAULT_SHIFTS, load_pretrained

    if system == "mixture":
        return MixtureAsEstimate()
    if system == "repet_sim":
        return RepetSim()
    system, _, shifts = system.partition("_shifts")
    passes = int(shifts) if shifts else DEFAULT_SHIFTS
    precision = precision or DEFAULT_PRECISION
    if system == "bsrnn" and weights:
        return separator_from_file(Path(weights), shifts=passes, precision=precision)[1]
    return load_pretrained(WEIGHTS[system], shifts=passes, precision=precision)


def run(corpus_dir: str | Path, split: str = "test", max_songs: int = 0,
        long_minutes: float = 10.0, threads: int = 2, progress: bool = False,
        separator: Path | None = None, singers: str = "all",
        shifts: tuple[int, ...] = (), precision: str | None = None) -> BenchResult:
    """Score every system on the split's songs with vocals (``split="all"``: every song);
    see the module docstring for ``separator`` and ``singers``."""
    from embeddings.audio import SAMPLE_RATE, load
    from embeddings.registry import WEIGHTS_DIR
    from embeddings.separation.baselines import oracle_irm
    from embeddings.separation.bsrnn import DEFAULT_SHIFTS
    from recsys.corpus import Corpus

    corpus = Corpus(corpus_dir)
    weights = str(separator) if separator else None
    systems = [s for s in SEPARATED if s not in WEIGHTS or (s == "bsrnn" and weights)
               or (WEIGHTS_DIR / f"{WEIGHTS[s]}.safetensors").exists()]
    if shifts and "bsrnn" in systems:
        at = systems.index("bsrnn") + 1
        systems[at:at] = [f"bsrnn_shifts{s}" for s in sorted(set(shifts))
                          if s != DEFAULT_SHIFTS]
    # never score on a tune (or, on `test`, a singer) any shipped weights were trained on,
    # even when the weights came from another corpus build
    candidates = [s for s in corpus.songs(None if split == "all" else split)
                  if not s.instrumental]
    songs = songs_to_score(candidates, split, singers, heard_singers(), heard_tunes())
    excluded = len(candidates) - len(songs)
    if max_songs:
        songs = songs[:max_songs]
    if not songs:
        raise ValueError(f"the {split} split of {corpus_dir} has no songs with vocals "
                         "that the separators were not trained on")
    missing = [s for s in SEPARATED if s not in systems]
    separators = {s: _load_separator(s, weights, precision) for s in systems}
    scores: dict[str, dict[str, list[float]]] = {
        s: {"vocals_sdr": [], "accompaniment_sdr": [], "vocals_si_sdr": []}
        for s in [*systems, "oracle_irm"]}
    seconds = {s: 0.0 for s in systems}
    audio_seconds = 0.0

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("separation bench", total=len(songs))
    try:
        for song in songs:
            mix, voc, acc = load(song.mixture), load(song.vocals), load(song.accompaniment)
            n = min(len(mix), len(voc), len(acc))
            mix, voc, acc = mix[:n], voc[:n], acc[:n]
            audio_seconds += n / SAMPLE_RATE
            estimates = {}
            for name, sep in separators.items():
                t0 = time.perf_counter()
                estimates[name] = sep.separate(mix)
                seconds[name] += time.perf_counter() - t0
            estimates["oracle_irm"] = oracle_irm(mix, voc, acc)
            for name, (ev, ea) in estimates.items():
                v_sdr, a_sdr = bss_eval(voc, acc, ev, ea, SAMPLE_RATE)
                scores[name]["vocals_sdr"].append(v_sdr)
                scores[name]["accompaniment_sdr"].append(a_sdr)
                scores[name]["vocals_si_sdr"].append(si_sdr(voc, ev))
            if bar:
                bar.advance(task)
    finally:
        if bar:
            bar.stop()

    long_source = songs[0].mixture
    result: dict[str, dict[str, float]] = {}
    for name, metric_lists in scores.items():
        row = {m: float(np.nanmedian(v)) for m, v in metric_lists.items()}
        if name in seconds and name != "mixture":
            row["realtime_factor"] = audio_seconds / max(seconds[name], 1e-9)
            memory = peak_memory_mb(name, long_source, long_minutes, threads, weights,
                                    precision)
            row["peak_mem_mb"] = memory["peak_mb"]
            if "stream_peak_mb" in memory:
                row["peak_mem_stream_mb"] = memory["stream_peak_mb"]
        result[name] = row
    notes = {
        "sdr": "BSSEval v4 (museval.evaluate, 1 s windows/hops at 16 kHz): median over "
               "frames, then median over tracks; instrumental songs skipped",
        "realtime_factor": f"audio seconds / separation seconds over the {len(songs)} songs, "
                           f"torch threads={threads}, on a machine shared with other jobs",
        "peak_mem_mb": f"{long_minutes:g}-min file (a test mixture tiled), fresh subprocess: "
                       "peak resident set (sampled every 10 ms from /proc) during separation "
                       "minus the resident set with model and input loaded (the two output "
                       "arrays included)",
        "peak_mem_stream_mb": "the same file the way `recsys separate` writes it: segments "
                              "streamed to two WAV files as they finish (separators that "
                              "stream only)",
        "oracle_irm": "power ratio mask |V|^2/(|V|^2+|A|^2) from the true stems, STFT 1024/256",
        "audio_seconds": round(audio_seconds, 1),
        "excluded_heard": f"{excluded} {split} songs skipped: their tune (or singer) was "
                          "heard in training by the shipped weights"
                          + ("" if singers == "all" else f", or their singer was not {singers}"),
        "singers": singers,
    }
    if weights:
        notes["bsrnn"] = f"candidate weights {weights} ({separators['bsrnn'].version})"
    bsrnn_rows = [s for s in systems if s.startswith("bsrnn")]
    if bsrnn_rows:
        notes["inference"] = ", ".join(
            f"{s}: {separators[s].shifts} pass{'es' if separators[s].shifts > 1 else ''}, "
            f"{separators[s].precision}" for s in bsrnn_rows)
    if any("_shifts" in s for s in systems):
        notes["bsrnn_shifts"] = ("bsrnn_shiftsS: the bsrnn row's weights, vocals averaged "
                                 "over S passes delayed by i*hop/S samples (i = 0..S-1)")
    if missing:
        notes["missing"] = f"no shipped weights for {', '.join(missing)}"
    return BenchResult(bench="separation", split=split, n_items=len(songs), systems=result,
                       notes=notes)


def peak_memory_mb(system: str, source: Path, minutes: float, threads: int,
                   weights: str | None = None, precision: str | None = None) -> dict:
    """Extra peak resident memory (MB) of separating a ``minutes``-long file, in a subprocess:
    ``peak_mb`` for ``separate()`` (both outputs in memory) and, for separators that stream,
    ``stream_peak_mb`` for the streamed path `recsys separate` takes."""
    code = ("import sys, json; from recsys.bench.separation import _child; "
            "print(json.dumps(_child(sys.argv[1], sys.argv[2], float(sys.argv[3]), "
            "int(sys.argv[4]), sys.argv[5] or None, sys.argv[6] or None)))")
    args = [system, str(source), str(minutes), str(threads), weights or "", precision or ""]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"peak-memory run of {system} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(system: str, source: str, minutes: float, threads: int,
           weights: str | None = None, precision: str | None = None) -> dict:
    import gc
    import os
    import tempfile
    import threading

    import torch

    from embeddings.audio import SAMPLE_RATE, load
    from embeddings.separation.infer import write_stems

    torch.set_num_threads(threads)
    sep = _load_separator(system, weights, precision)
    song = load(source)
    n = int(minutes * 60 * SAMPLE_RATE)
    mixture = np.resize(song, n).astype(np.float32)
    del song
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    # ru_maxrss keeps the peak of loading (imports, decoding), so the separation's own peak is
    # taken by sampling the current RSS while it runs
    before = rss()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss())

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    vocals, accompaniment = sep.separate(mixture)
    elapsed = time.perf_counter() - t0
    peak[0] = max(peak[0], rss())
    result = {"peak_mb": (peak[0] - before) / 2**20, "seconds": elapsed,
              "realtime_factor": minutes * 60 / elapsed}
    if hasattr(sep, "iter_separate"):
        # what `recsys separate` does: segments streamed to two WAV files as they finish
        del vocals, accompaniment
        gc.collect()
        with tempfile.TemporaryDirectory() as out:
            before = peak[0] = rss()
            write_stems(Path(out), "long", sep.iter_separate(mixture), SAMPLE_RATE)
            peak[0] = max(peak[0], rss())
        result["stream_peak_mb"] = (peak[0] - before) / 2**20
    done.set()
    watcher.join()
    return result
