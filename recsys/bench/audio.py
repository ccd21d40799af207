"""How fast ``embeddings.audio.load`` decodes and resamples a long file, and its peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from recsys.bench.result import BenchResult

# Runs in a fresh interpreter so max RSS belongs to this load alone.
_PROBE = """
import json, resource, sys, time
import numpy as np
from embeddings import audio
import gc, os
gc.collect()
# resident set now (not the import-time peak), in kB
before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
t = time.perf_counter()
x = audio.load(sys.argv[1], max_seconds=3600)
took = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": took, "samples": len(x), "peak_kb": peak - before}))
"""


def _write_long_file(path: Path, minutes: float, sr: int = 44_100) -> None:
    """A stereo file of ``minutes`` of tones and noise, written block by block."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        for _ in range(int(minutes * 6)):  # 10 s blocks
            t = np.arange(sr * 10) / sr
            tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
            block = tone[:, None] + 0.05 * rng.standard_normal((len(t), 2))
            f.write(block.astype(np.float32))


def run(minutes: float = 10.0) -> BenchResult:
    systems: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "long.flac"
        _write_long_file(src, minutes)
        variants = {"flac_44k_stereo": src}
        mp3 = Path(tmp) / "long.mp3"
        m4a = Path(tmp) / "long.m4a"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), str(mp3)], check=True)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:a", "aac", str(m4a)],
                       check=True)
        variants["mp3_44k_stereo"] = mp3
        variants["m4a_aac_ffmpeg"] = m4a
        for name, path in variants.items():
            out = subprocess.run([sys.executable, "-c", _PROBE, str(path)], check=True,
                                 capture_output=True, text=True)
            probe = json.loads(out.stdout.strip().splitlines()[-1])
            duration = probe["samples"] / 16_000
            systems[name] = {
                "realtime_factor": round(duration / probe["seconds"], 1),
                "peak_mem_mb": round(probe["peak_kb"] / 1024, 1),
                "output_mb": round(probe["samples"] * 4 / 2**20, 1),
            }
    return BenchResult(
        bench="audio", split="synthetic", n_items=len(systems), systems=systems,
        notes={"file_minutes": minutes,
               "peak_mem_mb": "peak RSS of a fresh process during load minus its resident size "
                              "just before (includes the 16 kHz float32 output, output_mb)"},
    )
