"""The CLI's command groups. Each module in this package adds its commands to these groups.

Modules import heavy libraries (torch, faiss, ...) inside the command functions so that
``recsys --help`` stays fast.
"""

from typing import NoReturn

import typer

app = typer.Typer(
    name="recsys",
    help="Vocal-aware music search and recommendation: similar singers, query-by-example, "
    "tag and free-text search, and query-by-humming over your own catalog.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
corpus_app = typer.Typer(help="Build the synthetic demo corpus and read real dataset layouts.",
                         no_args_is_help=True)
db_app = typer.Typer(help="Create and migrate the SQL catalog (Alembic).", no_args_is_help=True)
train_app = typer.Typer(help="Train the models (weights go to embeddings/weights/ or --out).",
                        no_args_is_help=True)
bench_app = typer.Typer(help="Measure systems against their baselines; writes JSON and "
                        "BENCHMARKS.md.", no_args_is_help=True)
search_app = typer.Typer(help="Search the catalog from the terminal.", no_args_is_help=True)
plot_app = typer.Typer(help="Draw pictures of the catalog.", no_args_is_help=True)

app.add_typer(corpus_app, name="corpus")
app.add_typer(db_app, name="db")
app.add_typer(train_app, name="train")
app.add_typer(bench_app, name="bench")
app.add_typer(search_app, name="search")
app.add_typer(plot_app, name="plot")


def fail(message: str, code: int = 2) -> NoReturn:
    """End a command with ``error: message`` on stderr and exit ``code`` (2: bad usage or
    input, as typer's own errors), never a traceback."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def separator_option(name: str):
    """``resolve_separator`` for a command's ``--separator``: a name or weights file that
    does not load is a usage error, not a traceback."""
    from recsys.bench.vocals import resolve_separator

    try:
        return resolve_separator(name)
    except RuntimeError as e:
        raise typer.BadParameter(str(e), param_hint="--separator") from e


def device_option(name: str) -> str:
    """``resolve_device`` for a command's ``--device``: an unknown device, or CUDA on a
    machine without a GPU, is a usage error."""
    from embeddings.base import resolve_device

    try:
        return resolve_device(name)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--device") from e
