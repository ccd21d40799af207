"""`recsys bench audio|report`: audio input speed, and BENCHMARKS.md from saved results."""

from pathlib import Path

import typer

from recsys.commands import bench_app, fail


@bench_app.command("audio")
def bench_audio(
    minutes: float = typer.Option(10.0, help="Length of the synthetic test file."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """Decode + resample speed (x real time) and peak memory of a long file, per format."""
    from recsys.bench.audio import run

    result = run(minutes)
    result.print()
    if json_out:
        result.save(json_out)


@bench_app.command("report")
def bench_report(
    results: Path = typer.Option(Path("bench-out"), help="Folder of bench JSON files."),
    out: Path = typer.Option(Path("BENCHMARKS.md"), help="Markdown file to (re)write."),
):
    """Rewrite BENCHMARKS.md from the JSON results in RESULTS (no bench is rerun)."""
    from recsys.bench.report import write_report

    write_report(results, out)
    typer.echo(f"wrote {out}")


@bench_app.command("ingest")
def bench_ingest(
    corpus: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    split: str = typer.Option("test", help="Which split's songs to ingest."),
    max_songs: int = typer.Option(20, help="How many songs."),
    long_minutes: float = typer.Option(10.0, help="Length of the long-file run."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """Whole ingest pipeline speed (x real time) and peak memory, on corpus songs and on one
    long file, with the models the settings name."""
    from recsys.bench.ingest import run
    from recsys.corpus import CorpusError

    try:
        result = run(corpus, split=split, max_songs=max_songs, long_minutes=long_minutes)
    except (CorpusError, ValueError) as e:  # no corpus, an unknown split, no songs
        fail(str(e))
    result.print()
    if json_out:
        result.save(json_out)


@bench_app.command("corpus")
def bench_corpus(
    songs: int = typer.Option(100, help="Songs to build."),
    song_seconds: float = typer.Option(20.0, help="Length of each song."),
    seed: int = typer.Option(2, help="Corpus seed."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """Wall and CPU time to build a corpus of SONGS songs (in a temporary folder)."""
    from recsys.bench.corpus import run

    result = run(songs=songs, song_seconds=song_seconds, seed=seed)
    result.print()
    if json_out:
        result.save(json_out)


def _bench_commands(corpus: Path) -> dict[str, list[str]]:
    """Each bench as the command a person would type, in the order they run."""
    c = str(corpus)
    return {
        "audio": ["bench", "audio"],
        "corpus": ["bench", "corpus"],
        "index": ["bench", "index"],
        "separation": ["bench", "separation", "--corpus", c, "--split", "test"],
        "singer": ["bench", "singer", "--corpus", c],
        "qbh": ["bench", "qbh", "--corpus", c],
        "tagging": ["bench", "tagging", "--corpus", c],
        "ingest": ["bench", "ingest", "--corpus", c],
        "api": ["bench", "api"],
    }


@bench_app.command("all")
def bench_all(
    corpus: Path = typer.Option(..., help="The corpus whose test split the benches use."),
    results: Path = typer.Option(Path("bench-out"), help="Folder for the JSON results."),
    only: list[str] = typer.Option([], help="Run only these benches (repeat)."),
    out: Path = typer.Option(Path("BENCHMARKS.md"), help="Markdown file to rewrite."),
):
    """Run every bench on CORPUS (each as its own `recsys bench NAME --json` command), then
    rewrite BENCHMARKS.md from all the JSON results."""
    import subprocess
    import sys

    from recsys.bench.report import write_report

    recsys_bin = Path(sys.executable).parent / "recsys"
    commands = _bench_commands(corpus)
    if unknown := set(only) - set(commands):
        raise typer.BadParameter(f"unknown bench(es) {sorted(unknown)}; "
                                 f"choose from {list(commands)}")
    failed = []
    for name, args in commands.items():
        if only and name not in only:
            continue
        typer.echo(f"== recsys {' '.join(args)}")
        code = subprocess.call([str(recsys_bin), *args, "--json", str(results / f"{name}.json")])
        if code != 0:
            failed.append(name)
    write_report(results, out)
    typer.echo(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        raise typer.Exit(1)
