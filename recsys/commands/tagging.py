"""`recsys train tagger` and `recsys bench tagging`: the JETATAG tagger and its baselines."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import typer

from recsys.commands import bench_app, train_app


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn())


def corpus_dataset(corpus, split: str, config, cache_dir: Path):
    """Log-mel windows of every ``split`` mixture with its song's tags, cached on disk.

    The cache file is keyed by the corpus, the songs and their files, and the mel settings,
    so a rebuilt corpus or another mel configuration never reads stale features.
    """
    import numpy as np

    from embeddings.tagging import multi_hot
    from embeddings.tagging_train import Dataset, window_mels

    songs = corpus.songs(split)
    if not songs:
        _fail(f"{corpus.root} has no songs in split {split!r}")
    missing = [str(s.mixture) for s in songs if not s.mixture.exists()]
    if missing:
        _fail(f"{len(missing)} mixture files are missing, e.g. {missing[0]}")
    key = json.dumps([str(corpus.root), split, corpus.vocabulary, config.n_mels, config.n_fft,
                      config.hop, [(s.song_id, s.mixture.stat().st_mtime_ns) for s in songs]])
    cache = cache_dir / f"{split}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache.exists():
        data = np.load(cache)
        return Dataset(data["mel"], data["labels"], data["groups"])
    with _progress() as progress:
        task = progress.add_task(f"log-mel of {split} mixtures", total=len(songs))
        mel, groups, _ = window_mels([s.mixture for s in songs], config,
                                     progress=lambda i: progress.advance(task))
    tags = np.stack([multi_hot(s.tags, corpus.vocabulary) for s in songs])
    labels = tags[groups].astype(np.uint8)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, mel=mel, labels=labels, groups=groups)
        os.replace(tmp, cache)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Dataset(mel, labels, groups)


@train_app.command("tagger")
def train_tagger(
    data: Path = typer.Option(..., "--data", help="Corpus directory (recsys corpus build)."),
    no_joint: bool = typer.Option(False, "--no-joint",
                                  help="Train the tagger without the joint embedding (no_je)."),
    baseline: bool = typer.Option(False, "--baseline",
                                  help="Train only the logistic-regression baseline."),
    out: Path = typer.Option(None, help="Weights folder (default: embeddings/weights)."),
    stage1_epochs: int = typer.Option(20, help="Stage 1 epochs (joint embedding)."),
    stage2_epochs: int = typer.Option(60, help="Stage 2 epochs (classifier, frozen extractor)."),
    epochs: int = typer.Option(20, help="Epochs of the --no-joint model."),
    windows_per_track: int = typer.Option(8, help="Random windows per track per epoch "
                                          "(0 = all)."),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(1e-3),
    max_minutes: float = typer.Option(0.0, help="Per-stage time limit (0 = none)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
    device: str = typer.Option("auto", help="'auto', 'cpu' or 'cuda'."),
    seed: int = typer.Option(0),
    cache: Path = typer.Option(None, help="Feature cache folder (default: DATA_DIR/cache/"
                               "tagging)."),
):
    """Train the tagger on the corpus' train split, selecting epochs on its val split.

    Default: the joint-embedding tagger (stage 1 + stage 2) and the logistic-regression baseline.

    --no-joint: the same extractor + classifier trained end to end. --baseline: only the baseline.
    """
    import torch

    from embeddings.base import resolve_device
    from embeddings.tagging import (
        JE_WEIGHTS,
        LOGREG_WEIGHTS,
        NO_JE_WEIGHTS,
        JetaTagger,
        TaggerConfig,
    )
    from embeddings.tagging_train import (
        TrainConfig,
        train_logreg,
        train_no_je,
        train_stage1,
        train_stage2,
    )
    from recsys.corpus import Corpus, CorpusError
    from recsys.settings import get_settings

    if no_joint and baseline:
        _fail("--no-joint and --baseline train different models; pick one")
    torch.set_num_threads(max(1, threads))
    try:
        corpus = Corpus(data)
    except CorpusError as e:
        _fail(str(e))
    out = out or JE_WEIGHTS.parent
    cache = cache or get_settings().data_dir / "cache" / "tagging"
    config = TaggerConfig(vocabulary=corpus.vocabulary, joint=not no_joint)
    train = corpus_dataset(corpus, "train", config, cache)
    val = corpus_dataset(corpus, "val", config, cache)
    typer.echo(f"{len(train.mel)} train windows ({len(set(train.groups))} tracks), "
               f"{len(val.mel)} val windows; {len(config.vocabulary)} tags")

    if not no_joint:
        typer.echo("training the logistic-regression baseline ...")
        logreg = train_logreg(train, config.vocabulary, config)
        logreg.save(out / LOGREG_WEIGHTS.name)
        typer.echo(f"saved {out / LOGREG_WEIGHTS.name} ({logreg.version})")
    if baseline:
        return

    cfg = TrainConfig(stage1_epochs=stage1_epochs, stage2_epochs=stage2_epochs,
                      no_je_epochs=epochs, batch_size=batch_size, lr=lr,
                      windows_per_track=windows_per_track, seed=seed, max_minutes=max_minutes)
    torch.manual_seed(seed)
    model = JetaTagger(config).to(resolve_device(device))

    def on_epoch(stage, epoch, total, metrics):
        parts = " ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                         if isinstance(v, float) and k != "seconds")
        mark = " *" if metrics.get("best") else ""
        typer.echo(f"[{stage}] epoch {epoch}/{total} {parts} ({metrics['seconds']:.0f} s){mark}",
                   )

    if no_joint:
        train_no_je(model, train, val, cfg, on_epoch)
        path = out / NO_JE_WEIGHTS.name
    else:
        train_stage1(model, train, val, cfg, on_epoch)
        model.save(cache / "jetatag_stage1.safetensors")  # the extractor, if stage 2 dies
        train_stage2(model, train, val, cfg, on_epoch)
        path = out / JE_WEIGHTS.name
    model.cpu().save(path)
    typer.echo(f"saved {path} ({model.version})")


@bench_app.command("tagging")
def bench_tagging(
    corpus: Path = typer.Option(..., "--corpus", help="Corpus directory."),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    split: str = typer.Option("test", help="Split to evaluate (never trained on)."),
    weights: Path = typer.Option(None, help="Folder with logreg/no_je/je weights "
                                 "(default: the shipped ones)."),
    limit: int = typer.Option(0, help="Only the first N tracks (0 = all)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
):
    """logreg vs. no_je vs. je on one split: macro ROC-AUC, PR-AUC and tag-search P@10."""
    import torch

    from embeddings.tagging import TaggerError, TaggerWeightsError
    from recsys.bench.tagging import load_systems, run
    from recsys.corpus import CorpusError

    torch.set_num_threads(max(1, threads))
    try:
        systems = load_systems(weights)
        with _progress() as progress:
            task = progress.add_task(f"tagging {split} tracks", total=None)
            result = run(corpus, split=split, systems=systems, limit=limit or None,
                         progress=lambda i, n: progress.update(task, completed=i, total=n))
    except (CorpusError, TaggerError, TaggerWeightsError) as e:
        _fail(str(e))
    result.print()
    diff = result.notes.get("je_minus_no_je")
    if diff:
        typer.echo("je - no_je: " + ", ".join(f"{k} {v:+.4f}" for k, v in diff.items()))
    if result.notes.get("skipped_tags"):
        typer.echo(f"tags absent from (or on every track of) {split}: "
                   f"{', '.join(result.notes['skipped_tags'])}")
    if json_out:
        result.save(json_out)
        typer.echo(f"wrote {json_out}")
