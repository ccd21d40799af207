"""``recsys serve`` (the API and the web page) and ``recsys bench api``."""

from __future__ import annotations

from pathlib import Path

import typer

from recsys.commands import app, bench_app


def serve(settings=None, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info") -> None:
    """Open the catalog, load the models once and serve on ``host:port`` (blocks)."""
    from api.main import serve as serve_app

    serve_app(settings, host=host, port=port, log_level=log_level)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn log level (warning: quieter)."),
):
    """Serve the HTTP API and the web page (open http://HOST:PORT/ in a browser)."""
    from recsys.settings import get_settings

    settings = get_settings()
    typer.echo(f"loading the catalog at {settings.data_dir} and the models...")
    try:
        serve(settings, host=host, port=port, log_level=log_level)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        # missing weights, an unmigrated database, a busy port: one clear line, no traceback
        typer.secho(f"error: the server could not start: {e}", fg="red", err=True)
        raise typer.Exit(1) from None


@bench_app.command("api")
def bench_api_command(
    url: str | None = typer.Option(None, help="A running server; default: start one here."),
    duration: float = typer.Option(10.0, min=0.5, max=600, help="Seconds per endpoint."),
    rps: float = typer.Option(100.0, min=0.1, max=5000,
                              help="Rate for /artists/{id}/similar and /search/tags."),
    example_rps: float = typer.Option(2.0, min=0.05, max=1000,
                                      help="Rate for /search/example (separates a clip)."),
    workers: int = typer.Option(32, min=1, max=512, help="Concurrent client threads."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """p50/p99 latency, throughput and errors of the API under concurrent clients."""
    from rich.console import Console

    from recsys.bench.api import ApiBenchError, bench_api

    console = Console()
    try:
        result = bench_api(url, duration=duration, rps=rps, example_rps=example_rps,
                           workers=workers, on_step=lambda s: console.print(f"[dim]{s}[/dim]"))
    except ApiBenchError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    result.print()
    if json_path:
        result.save(json_path)
        console.print(f"wrote {json_path}")
