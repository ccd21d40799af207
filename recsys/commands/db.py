"""``recsys db upgrade|downgrade|current|check|rebuild`` and ``recsys bench index``."""

from __future__ import annotations

from pathlib import Path

import typer

from recsys.commands import bench_app, db_app


def _url(url: str | None) -> str:
    from recsys.settings import get_settings

    return url or get_settings().sqlalchemy_url


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision."),
            url: str = typer.Option(None, help="SQLAlchemy URL (default: from settings).")):
    """Migrate the catalog database up to REVISION (creates it if needed)."""
    from index.db import DatabaseError
    from index.migrate import upgrade as do_upgrade

    target = _url(url)
    try:
        do_upgrade(target, revision)
    except DatabaseError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"database at {revision}: {_redact(target)}")


@db_app.command("downgrade")
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. 'base' or '-1'."),
              url: str = typer.Option(None, help="SQLAlchemy URL (default: from settings).")):
    """Migrate the catalog database down to REVISION ('base' drops every table)."""
    from index.db import DatabaseError
    from index.migrate import downgrade as do_downgrade

    target = _url(url)
    try:
        do_downgrade(target, revision)
    except DatabaseError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"database at {revision}: {_redact(target)}")


@db_app.command("current")
def current(url: str = typer.Option(None, help="SQLAlchemy URL (default: from settings).")):
    """Print the database's revision and the newest one available."""
    from index.db import DatabaseError
    from index.migrate import current_revision, head_revision

    target = _url(url)
    try:
        rev = current_revision(target)
    except DatabaseError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    head = head_revision()
    state = "up to date" if rev == head else "run `recsys db upgrade`"
    typer.echo(f"current: {rev or 'none (empty database)'}; head: {head} ({state})")


@db_app.command("check")
def check():
    """Compare every vector index with SQL and repair what differs (as on every start)."""
    cat = _open_catalog()
    repairs = cat.repairs
    _print_spaces(cat)
    cat.close()
    typer.echo("\n".join(repairs) if repairs else "indexes agree with SQL: nothing to repair")


@db_app.command("rebuild")
def rebuild(space: str = typer.Option(None, help="Only this space (default: all).")):
    """Rebuild vector indexes from the vectors stored in SQL."""
    from index.spaces import UnknownSpaceError

    cat = _open_catalog()
    try:
        cat.rebuild(space)
    except UnknownSpaceError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    _print_spaces(cat)
    cat.close()


def _open_catalog():
    from index.catalog import Catalog
    from index.db import DatabaseError
    from recsys.context import NoCatalogError, require_catalog
    from recsys.settings import get_settings

    s = get_settings()
    try:
        require_catalog(s)
        return Catalog(s.sqlalchemy_url, s.index_dir, exact_max=s.exact_index_max)
    except (NoCatalogError, DatabaseError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def _print_spaces(cat) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="vector indexes")
    for col in ("space", "model version", "owner", "dim", "vectors", "kind"):
        table.add_column(col)
    for i in cat.spaces():
        table.add_row(i.space, i.model_version, i.owner, str(i.dim), str(i.count), i.kind)
    Console().print(table)


@bench_app.command("index")
def bench_index(
    n: int = typer.Option(1_000_000, help="Random vectors (0: catalog only)."),
    dim: int = typer.Option(128, help="Dimension of the random vectors."),
    queries: int = typer.Option(1000, help="Queries per index."),
    catalog: bool = typer.Option(False, "--catalog", help="Also measure the catalog's spaces."),
    threads: int = typer.Option(2, help="Threads for building and batch search."),
    data: str = typer.Option("random", help="'random' (uniform on the sphere, the hardest "
                             "case) or 'clustered' (1000 clusters, like real embeddings)."),
    json_out: Path = typer.Option(None, "--json", help="Write the result as JSON here."),
):
    """Exact vs HNSW vs IVF: recall@10 against exact search, QPS, latency, build time, size."""
    from rich.console import Console

    if data not in ("random", "clustered"):
        typer.echo(f"error: --data is 'random' or 'clustered', not {data!r}", err=True)
        raise typer.Exit(2)

    from recsys.bench.index import run

    console = Console(stderr=True)
    spaces = None
    if catalog:
        cat = _open_catalog()
        spaces = {}
        for info in cat.spaces():
            ids, x = cat.all_vectors(info.space, info.model_version)
            spaces[f"{info.space}@{info.model_version}"] = (ids, x)
        cat.close()
    with console.status("index bench") as status:
        result = run(n=n, dim=dim, n_queries=queries, catalog_spaces=spaces, threads=threads,
                     data=data, progress=lambda msg: status.update(msg))
    result.print()
    if json_out:
        result.save(json_out)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all; index.db reports that itself
        return url
