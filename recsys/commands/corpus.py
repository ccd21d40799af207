"""`recsys corpus ...`: build the synthetic demo corpus and inspect corpora."""

from __future__ import annotations

from pathlib import Path

import typer

from recsys.commands import corpus_app


@corpus_app.command("build")
def build_cmd(
    out: Path = typer.Option(..., "--out", help="Directory to write the corpus into."),
    songs: int = typer.Option(40, "--songs", min=1, help="Number of songs."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same files (byte for byte)."),
    workers: int = typer.Option(0, "--workers", min=0,
                                help="Parallel processes (0 = all cores)."),
    song_seconds: float = typer.Option(20.0, "--song-seconds", help="Length of each song."),
    queries_per_song: float = typer.Option(
        1.0, "--queries-per-song", help="Hum queries per song (fractions allowed: 0.5 means "
        "every other song on average)."),
    tune_offset: int = typer.Option(
        0, "--tune-offset", min=0, help="Skip the first N tunes of the fixed tune table: with "
        "another corpus' --songs, the new corpus shares no tune with it (a held-out "
        "catalog extension, e.g. QBH distractors)."),
    cache_dir: Path = typer.Option(None, "--cache-dir",
                                   help="Where parsed music21 tunes are cached "
                                   "(default: <data dir>/cache)."),
) -> None:
    """Synthesise a demo corpus: Festival singers over FluidSynth arrangements of real tunes.

    Writes songs/<id>/{mixture,vocals,accompaniment}.wav and stems/, hum queries, and the
    manifests songs.jsonl, singers.jsonl, queries.jsonl and corpus.json (written last).
    Re-running with the same arguments resumes an interrupted build.
    """
    import os
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from recsys.corpus.build import BuildError, BuildParams, build
    from recsys.settings import get_settings

    console = Console()
    for option, path in (("--out", out), ("--cache-dir", cache_dir)):
        if path is not None and path.exists() and not path.is_dir():
            console.print(f"[red]error:[/red] {option} {path} is a file, not a folder")
            raise typer.Exit(2)
    params = BuildParams(songs=songs, seed=seed, song_seconds=song_seconds,
                         queries_per_song=queries_per_song, tune_offset=tune_offset)
    cache = cache_dir or get_settings().data_dir / "cache"
    t0, c0 = time.time(), _cpu_seconds()
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "parsing tunes" if stage == "tunes" else "rendering songs"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        try:
            path = build(out, params, workers=workers or os.cpu_count(), cache_dir=cache,
                         progress=progress)
        except (BuildError, ValueError) as e:  # ValueError: more tunes than there are
            console.print(f"[red]error:[/red] {e}", soft_wrap=True)
            raise typer.Exit(2) from None
    from recsys.corpus import Corpus

    c = Corpus(path)
    wall, cpu = time.time() - t0, _cpu_seconds() - c0
    console.print(f"built {c!r}: {len(c.singers())} singers, splits {c.meta['split_counts']} "
                  f"in {wall:.1f} s wall, {cpu:.1f} s CPU (all processes)")


@corpus_app.command("info")
def info_cmd(path: Path = typer.Argument(..., help="A corpus directory.")) -> None:
    """Summarise a corpus: songs per split, singers, tags, queries."""
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from recsys.corpus import Corpus, CorpusError

    console = Console()
    try:
        c = Corpus(path)
    except CorpusError as e:
        console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        raise typer.Exit(2) from None
    t = Table(title=f"{c.root} (seed {c.seed})")
    for col in ("split", "songs", "singers", "instrumental", "queries"):
        t.add_column(col)
    for sp in ("train", "val", "test", "test_seen"):
        ss = c.songs(sp)
        t.add_row(sp, str(len(ss)), str(len({s.singer_id for s in ss if s.singer_id})),
                  str(sum(s.instrumental for s in ss)), str(len(c.queries(sp))))
    console.print(t)
    tags = Counter(tag for s in c.songs() for tag in s.tags)
    console.print("tags: " + ", ".join(f"{k} {v}" for k, v in tags.most_common()))
    g = Counter(s.gender for s in c.singers())
    console.print(f"singers: {len(c.singers())} ({dict(g)})")


def _cpu_seconds() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

