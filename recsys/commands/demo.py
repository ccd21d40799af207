"""`recsys demo`: the embedded default, end to end — corpus, ingest, serve."""

from __future__ import annotations

import typer
from rich.console import Console

from recsys.commands import app

console = Console()


@app.command("demo")
def demo(
    songs: int = typer.Option(120, help="Songs in the demo corpus."),
    seed: int = typer.Option(0, help="Seed of the demo corpus."),
    song_seconds: float = typer.Option(20.0, help="Length of each song."),
    host: str = typer.Option("127.0.0.1", help="Where to serve."),
    port: int = typer.Option(8000, help="Port to serve on."),
    serve: bool = typer.Option(True, help="Serve the catalog when it is ready."),
):
    """Build the demo corpus (once), ingest it (what is already in is skipped), then serve
    the API and web page. A second run reuses everything that exists."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from recsys.corpus import Corpus
    from recsys.corpus.build import BuildParams, build
    from recsys.settings import get_settings

    settings = get_settings()
    corpus_dir = settings.data_dir / f"demo-corpus-{songs}-{seed}"
    if not (corpus_dir / "corpus.json").exists():
        console.print(f"building the demo corpus ({songs} songs) in {corpus_dir}")
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
            tasks: dict[str, int] = {}

            def on_progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            build(corpus_dir, BuildParams(songs=songs, seed=seed, song_seconds=song_seconds),
                  progress=on_progress)
    corpus = Corpus(corpus_dir)
    console.print(f"corpus: {corpus}")

    from recsys.commands.catalog import ingest

    ingest([corpus_dir])
    if serve:
        from recsys.commands.serve import serve as serve_api

        console.print(f"[bold green]serving the catalog at http://{host}:{port}/[/bold green]")
        serve_api(settings, host=host, port=port)
