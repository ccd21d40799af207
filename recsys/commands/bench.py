"""`recsys bench audio|report`: audio input speed, and BENCHMARKS.md from saved results."""

from pathlib import Path

import typer

from recsys.commands import bench_app


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
