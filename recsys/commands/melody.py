"""`recsys train melody`, `recsys bench qbh`, `recsys bench pitch`."""

from __future__ import annotations

from pathlib import Path

import typer

from recsys.commands import bench_app, train_app


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn())
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@train_app.command("melody")
def train_melody(
    data: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    out: Path = typer.Option(Path("embeddings/weights/tcae-v1"),
                             help="Weights path without suffix (.safetensors/.json)."),
    steps: int = typer.Option(3000, help="Optimiser steps."),
    batch: int = typer.Option(16, help="Positive pairs per step."),
    lr: float = typer.Option(2e-3),
    channels: int = typer.Option(32, help="Width of the causal stacks."),
    layers: int = typer.Option(6, help="Residual blocks per stack (dilation 1..2**(L-1))."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
    max_songs: int = typer.Option(0, help="Use at most this many training songs (0: all)."),
    checkpoint: Path = typer.Option(Path("runs/melody/checkpoint"),
                                    help="Saved every 50 steps while training."),
):
    """Train the TCAE melody encoder on the corpus' train split (songs + hum queries);
    the val split is only scored (pair top-1), never trained on."""
    import json

    from embeddings.melody import TCAEConfig
    from embeddings.melody_train import HumPair, TrainConfig, train
    from recsys.corpus import Corpus, CorpusError

    try:
        corpus = Corpus(data)
    except CorpusError as e:
        _fail(str(e))

    def pairs(split: str, limit: int):
        songs = [s for s in corpus.songs(split) if not s.instrumental]
        if limit:
            songs = songs[:limit]
        index = {s.song_id: i for i, s in enumerate(songs)}
        hums = [HumPair(q.path, index[q.song_id], q.start_s, q.end_s)
                for q in corpus.queries(split) if q.song_id in index]
        return [(s.vocals, s.accompaniment) for s in songs], hums

    songs, hums = pairs("train", max_songs)
    val_songs, val_hums = pairs("val", 40)
    if not songs:
        _fail(f"{data} has no training songs with vocals")
    typer.echo(f"train: {len(songs)} songs, {len(hums)} hum queries; "
               f"val: {len(val_songs)} songs, {len(val_hums)} hum queries")
    model_config = TCAEConfig(channels=channels, layers=layers)
    config = TrainConfig(steps=steps, batch=batch, lr=lr, threads=threads)
    bar, update = _progress()
    with bar:
        model, history = train(songs, hums, model_config, config, val_songs, val_hums,
                               progress=update, checkpoint=checkpoint)
    meta = {
        "corpus": str(Path(data).resolve()), "train_songs": len(songs), "train_hums": len(hums),
        "train_config": config.__dict__, "history": history.__dict__,
    }
    model.save(out, meta=meta)
    typer.echo(json.dumps({"out": str(out), "seconds": round(history.seconds),
                           "final_loss": history.loss[-1],
                           "val_pair_top1": history.val_pair_top1[-1:]}))


@bench_app.command("qbh")
def bench_qbh(
    corpus: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    split: str = typer.Option("test", help="Split of the hum queries."),
    separator: str = typer.Option("auto", help="'auto' (bsrnn, else repet_sim), a separator "
                                  "name, or 'clean' for the clean vocal stems."),
    model: str = typer.Option("tcae", help="Melody encoder (registry name)."),
    max_queries: int = typer.Option(0, help="At most this many queries (0: all)."),
    rerank_k: int = typer.Option(10, help="Tracks re-ranked by DTW."),
    crop: bool = typer.Option(True, "--around-hits/--whole-tracks",
                              help="Align only around each candidate's best FAISS hits."),
    cache: Path = typer.Option(Path("data/cache/qbh"), help="Separated vocals and features."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """Query-by-humming: exhaustive pitch DTW vs TCAE vs TCAE + DTW re-rank (MRR, top-1,
    top-10, latency), plus latency at 1k/2k/5k songs' worth of windows."""
    from recsys.bench.qbh import run
    from recsys.corpus import CorpusError

    bar, update = _progress()
    try:
        with bar:
            result = run(corpus, split=split, separator=separator, model=model,
                         max_queries=max_queries or None, rerank_k=rerank_k, crop=crop,
                         cache=cache,
                         progress=update)
    except (CorpusError, ValueError, RuntimeError) as e:
        _fail(str(e))
    result.print()
    typer.echo(f"notes: {result.notes}")
    if json_out:
        result.save(json_out)


@bench_app.command("pitch")
def bench_pitch(
    corpus: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    split: str = typer.Option("val", help="Split of the songs and hum queries."),
    separator: str = typer.Option("auto", help="As in `recsys bench qbh`."),
    max_songs: int = typer.Option(10),
    max_queries: int = typer.Option(10),
    max_seconds: float = typer.Option(30.0, help="Seconds of each item analysed."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """Raw pitch accuracy (50 cents) and speed of YIN vs pYIN on clean vocals, separated
    vocals and hums, against the corpus' sung notes."""
    from recsys.bench.pitch import run
    from recsys.corpus import CorpusError

    bar, update = _progress()
    try:
        with bar:
            result = run(corpus, split=split, separator=separator, max_songs=max_songs,
                         max_queries=max_queries, max_seconds=max_seconds, progress=update)
    except (CorpusError, ValueError, RuntimeError) as e:
        _fail(str(e))
    result.print()
    if json_out:
        result.save(json_out)
