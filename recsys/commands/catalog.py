"""`recsys ingest` and `recsys search ...`: fill the catalog and ask it questions."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from recsys.commands import app, search_app

console = Console()


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="Audio files, folders (recursive) or a corpus "
                                       "folder (its manifest gives artist and title)."),
):
    """Add songs to the catalog: separate vocals, embed voice, melody and tags, index them.

    The same audio twice is one track. A bad file is reported with its reason and skipped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from index.db import DatabaseError
    from recsys.context import open_catalog
    from recsys.corpus import CorpusError
    from recsys.ingest import IngestReport, ingest_paths
    from recsys.metadata import discover
    from recsys.pipeline import Models
    from recsys.settings import get_settings

    settings = get_settings()
    try:
        sources = discover(paths)
    except CorpusError as e:  # a folder with a damaged corpus.json
        _fail(str(e))
    if not sources:
        _fail("no audio files found under the given paths")
    try:
        catalog = open_catalog(settings)
    except (DatabaseError, OSError) as e:
        _fail(f"cannot open the catalog: {e}")
    with console.status("loading models"):
        models = Models.load(settings)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("ingesting", total=len(sources))
        report = IngestReport()  # made first: `advance` reads each failure's reason from it

        def advance(source, status):
            if status == "failed":
                progress.console.print(f"[yellow]skipped[/yellow] {report.failed[-1][1]}")
            progress.update(task, advance=1,
                            description=f"{source.artist[:20]} – {source.title[:30]}")

        ingest_paths(sources, catalog, models, on_progress=advance,
                     max_seconds=settings.max_audio_seconds, report=report)
    console.print(
        f"added {len(report.added)}, already present {len(report.existing)}, "
        f"failed {len(report.failed)}; {report.audio_seconds / 60:.1f} min of audio at "
        f"{report.realtime_factor:.1f}x real time"
    )
    if report.failed and not report.added and not report.existing:
        raise typer.Exit(1)


def _service():
    """The search service over the settings' catalog; a catalog that cannot be opened (a
    damaged database file, a data folder that is a file, none at all) is one line, not a
    traceback."""
    from index.db import DatabaseError
    from recsys.context import NoCatalogError, open_service

    try:
        return open_service(create=False)
    except NoCatalogError as e:
        _fail(str(e))
    except (DatabaseError, OSError) as e:
        _fail(f"cannot open the catalog: {e}")


def _load_clip(path: Path):
    from embeddings import audio

    try:
        return audio.load(path)
    except audio.AudioError as e:
        _fail(str(e))


def _parse_filter(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(f"--filter is not valid JSON: {e.msg}")
    except RecursionError:
        _fail("--filter is nested too deeply")
    if not isinstance(value, dict):
        _fail("--filter must be a JSON object")
    return value


def _show(answer, title: str, kind: str = "track") -> None:
    if answer.understood is not None:
        console.print(f"understood as: tags={answer.understood.get('tags')} "
                      f"not={answer.understood.get('not_tags')}")
    if not answer.results:
        console.print(f"[yellow]{answer.message or 'no results'}[/yellow] "
                      f"({answer.took_ms:.0f} ms)")
        return
    table = Table(title=f"{title} ({answer.took_ms:.0f} ms)")
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("score", justify="right")
    if kind == "artist":
        table.add_column("artist")
        table.add_column("closest tracks")
    else:
        table.add_column("title")
        table.add_column("artist")
        table.add_column("match")
    for rank, r in enumerate(answer.results, 1):
        p = r.payload
        if kind == "artist":
            closest = ", ".join(f"{t['title']} ({t['score']:.2f})"
                                for t in p.get("closest_tracks", []))
            table.add_row(str(rank), str(r.id), f"{r.score:.3f}", str(p.get("name")), closest)
        else:
            span = ""
            start = p.get("match_start", p.get("start"))
            end = p.get("match_end", p.get("end"))
            if start is not None and end is not None:
                span = f"{start:.1f}–{end:.1f} s"
            table.add_row(str(rank), str(r.id), f"{r.score:.3f}", str(p.get("title")),
                          str(p.get("artist")), span)
    console.print(table)


def _guard(fn):
    """Typed errors of the service and storage become one clear line, not a traceback."""
    from recsys.search import SearchError

    try:
        return fn()
    except SearchError as e:
        _fail(str(e))
    except ValueError as e:  # FilterError and friends
        _fail(str(e))


@search_app.command("singers")
def search_singers(
    artist: int | None = typer.Option(None, help="Artist id."),
    track: int | None = typer.Option(None, help="Track id."),
    clip: Path | None = typer.Option(None, help="An audio file with singing."),
    limit: int = typer.Option(10, min=1, max=100),
    filter: str | None = typer.Option(None, help='JSON filter, e.g. \'{"must": [{"key": '
                                      '"gender", "match": {"value": "female"}}]}\''),
):
    """Singers who sound like an artist, a track or a clip (timbre space)."""
    service = _service()
    audio = _load_clip(clip) if clip else None
    answer = _guard(lambda: service.similar_singers(
        artist_id=artist, track_id=track, clip=audio, limit=limit, filter=_parse_filter(filter)))
    _show(answer, "similar singers", kind="artist")


@search_app.command("example")
def search_example(
    clip: Path = typer.Argument(..., help="An audio clip."),
    space: str = typer.Option("timbre", help="timbre, melody, tags, or mix."),
    limit: int = typer.Option(10, min=1, max=100),
    filter: str | None = typer.Option(None, help="JSON filter."),
):
    """Tracks that sound like a clip, in one space or a mix of them."""
    service = _service()
    audio = _load_clip(clip)
    answer = _guard(lambda: service.search_example(audio, space=space, limit=limit,
                                                   filter=_parse_filter(filter)))
    _show(answer, f"query by example ({space})")


@search_app.command("tags")
def search_tags(
    tag: list[str] = typer.Option([], "--tag", "-t", help="A required tag (repeat for AND)."),
    not_tag: list[str] = typer.Option([], "--not", "-n", help="An excluded tag (repeat)."),
    text: str | None = typer.Option(None, help="Free text, mapped to tags."),
    min_tag_score: float = typer.Option(0.5, help="Score from which a track carries a tag."),
    limit: int = typer.Option(10, min=1, max=100),
    filter: str | None = typer.Option(None, help="JSON filter."),
):
    """Tracks carrying every --tag and no --not tag, or matching free --text."""
    service = _service()
    answer = _guard(lambda: service.search_tags(
        tags=tag, not_tags=not_tag, text=text, min_tag_score=min_tag_score, limit=limit,
        filter=_parse_filter(filter)))
    _show(answer, "tag search")


@search_app.command("hum")
def search_hum(
    clip: Path = typer.Argument(..., help="A recording of someone humming or singing a tune."),
    limit: int = typer.Option(10, min=1, max=100),
):
    """The songs a hummed tune comes from, with the matched time span."""
    service = _service()
    audio = _load_clip(clip)
    answer = _guard(lambda: service.search_hum(audio, limit=limit))
    _show(answer, "query by humming")


@search_app.command("tracks")
def search_tracks(
    track: int = typer.Argument(..., help="Track id."),
    space: str = typer.Option("timbre", help="timbre, melody or tags."),
    limit: int = typer.Option(10, min=1, max=100),
):
    """Tracks closest to a catalog track in one space."""
    service = _service()
    answer = _guard(lambda: service.similar_tracks(track, space=space, limit=limit))
    _show(answer, f"similar tracks ({space})")
