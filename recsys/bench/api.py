"""``recsys bench api``: latency and throughput of the HTTP API under concurrent clients.

Requests are sent open-loop at a fixed rate (one every ``1/rps`` s, whatever the answers
take) from a pool of client threads over loopback, one endpoint at a time, for a bounded
time and count. Latency runs from the request's scheduled send time to its full answer, so
queueing in the client or server counts too (no coordinated omission).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from recsys.bench.result import BenchResult

STARTUP_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 60.0


class ApiBenchError(RuntimeError):
    """The server could not be started or holds nothing to query."""


WARMUP_REQUESTS = 20  # per endpoint, sent one by one before the timed run


@dataclass
class Load:
    name: str
    rps: float
    send: Callable  # (client, i) -> httpx.Response


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict | None = None) -> subprocess.Popen:
    """``recsys serve`` in a subprocess on ``port``; returns once ``/health`` answers."""
    import httpx

    cmd = [sys.executable, "-m", "recsys.cli", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ApiBenchError(f"`{' '.join(cmd)}` exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise ApiBenchError(f"the server did not answer within {STARTUP_TIMEOUT_S:.0f} s")


def run_load(client, load: Load, duration: float, workers: int) -> dict[str, float]:
    """Send ``load`` at its rate for ``duration`` seconds; p50/p99 latency, achieved rate,
    and errors (non-2xx answers and transport failures)."""
    n = max(1, int(round(duration * load.rps)))
    latencies: list[float] = []
    errors = 0

    def one(i: int, scheduled: float):
        nonlocal errors
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            response = load.send(client, i)
            ok = 200 <= response.status_code < 300
        except Exception:  # a transport failure is a measured error, not a crash
            ok = False
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if not ok:
            errors += 1

    start = time.perf_counter() + 0.05
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, i, start + i / load.rps) for i in range(n)]
        for f in futures:
            f.result()
    elapsed = time.perf_counter() - start
    lat = np.asarray(latencies)
    return {"p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "rps": round(n / elapsed, 2), "errors": int(errors)}


def _example_clip(client, track_id: int, seconds: float = 8.0) -> bytes:
    """The first seconds of a catalog track as WAV bytes: a realistic query clip."""
    import soundfile as sf

    from embeddings import audio

    response = client.get(f"/tracks/{track_id}/audio")
    response.raise_for_status()
    samples = audio.load(response.content)[: int(seconds * audio.SAMPLE_RATE)]
    buffer = io.BytesIO()
    sf.write(buffer, samples, audio.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def bench_api(url: str | None = None, *, duration: float = 10.0, rps: float = 100.0,
              example_rps: float = 2.0, workers: int = 32,
              on_step: Callable[[str], None] | None = None) -> BenchResult:
    """Measure ``GET /artists/{id}/similar`` and ``POST /search/tags`` at ``rps`` and
    ``POST /search/example`` at ``example_rps`` (it separates and embeds a clip, so it is
    far slower), each for ``duration`` seconds, against ``url`` or a server started here."""
    import httpx

    proc = None
    if url is None:
        port = free_port()
        if on_step:
            on_step(f"starting `recsys serve` on port {port}")
        proc = start_server(port)
        url = f"http://127.0.0.1:{port}"
    try:
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            # singers only: an artist with instrumental tracks alone has no voice to match
            artists = [p["id"] for p in client.get("/singers/map")
                       .raise_for_status().json()["points"]]
            tracks = client.get("/tracks", params={"limit": 1}).raise_for_status().json()
            if not artists or not tracks["results"]:
                raise ApiBenchError(f"the catalog at {url} is empty; ingest songs first")
            tags = [t["name"] for t in client.get("/tags").raise_for_status().json()["tags"]
                    if t["count"] > 0][:10] or ["piano"]
            clip = _example_clip(client, tracks["results"][0]["id"])
            loads = [
                Load("GET /artists/{id}/similar", rps, lambda c, i: c.get(
                    f"/artists/{artists[i % len(artists)]}/similar", params={"limit": 10})),
                Load("POST /search/tags", rps, lambda c, i: c.post(
                    "/search/tags", json={"tags": [tags[i % len(tags)]], "limit": 10})),
                Load("POST /search/example", example_rps, lambda c, i: c.post(
                    "/search/example", files={"file": ("clip.wav", clip, "audio/wav")},
                    data={"space": "timbre", "limit": "10"})),
            ]
            systems, sent = {}, {}
            for load in loads:
                for i in range(WARMUP_REQUESTS):  # first calls fill caches; not timed
                    load.send(client, i)
                if on_step:
                    on_step(f"{load.name} at {load.rps:g} requests/s for {duration:g} s")
                systems[load.name] = run_load(client, load, duration, workers)
                sent[load.name] = {"target_rps": load.rps,
                                   "requests": max(1, int(round(duration * load.rps)))}
            n_tracks = tracks["total"]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return BenchResult(
        bench="api", split="catalog", n_items=int(n_tracks or 0), systems=systems,
        notes={"url": url, "duration_s": duration, "workers": workers, "sent": sent,
               "latency": "from scheduled send time to full answer (open loop), after "
                          f"{WARMUP_REQUESTS} untimed warm-up requests per endpoint",
               "aim": "p99 <= 50 ms at 100 requests/s for the first two endpoints",
               "server_started_here": proc is not None},
    )
