"""`recsys train tagger` and `recsys bench tagging`: the JETATAG tagger and its baselines."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import partial
from pathlib import Path

import typer

from recsys.commands import bench_app, device_option, fail, train_app


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn())


def cached_dataset(name: str, paths: list[Path], tags: list[list[str]], vocabulary: list[str],
                   config, cache_dir: Path, skip_unreadable: bool = False):
    """Log-mel windows of ``paths`` with multi-hot ``tags`` (one list per file), cached on disk
    as ``cache_dir/<name>-<key>.npz``.

    The key covers ``name``, the vocabulary, the files (absolute path and mtime) and the mel
    settings, so a rebuilt dataset or another mel configuration never reads stale features.
    With ``skip_unreadable`` files the audio loader rejects are left out (MagnaTagATune ships
    a few empty mp3s); their count is printed.
    """
    import numpy as np

    from embeddings.tagging import multi_hot
    from embeddings.tagging_train import Dataset, window_mels

    key = json.dumps([name, vocabulary, config.n_mels, config.n_fft, config.hop,
                      [(str(Path(p).resolve()), Path(p).stat().st_mtime_ns) for p in paths]])
    cache = cache_dir / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache.exists():
        data = np.load(cache)
        return Dataset(data["mel"], data["labels"], data["groups"])
    with _progress() as progress:
        task = progress.add_task(f"log-mel of {name} audio", total=len(paths))
        mel, groups, _ = window_mels(paths, config, skip_unreadable=skip_unreadable,
                                     progress=lambda i: progress.advance(task))
    skipped = len(paths) - len(np.unique(groups))
    if skipped:
        typer.echo(f"{name}: skipped {skipped} unreadable audio files")
    labels = np.stack([multi_hot(t, vocabulary) for t in tags])[groups].astype(np.uint8)
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


def corpus_dataset(corpus, split: str, config, cache_dir: Path, extra=()):
    """Log-mel windows of every ``split`` mixture of the corpus with its song's tags, plus the
    ``split`` songs of each ``extra`` corpus (``recsys.corpus.extension_songs``)."""
    from recsys.corpus import CorpusError, extension_songs

    try:
        songs = corpus.songs(split) + [s for e in extra
                                       for s in extension_songs(corpus, e, split)]
    except CorpusError as e:
        fail(str(e))
    if not songs:
        fail(f"{corpus.root} has no songs in split {split!r}")
    missing = [str(s.mixture) for s in songs if not s.mixture.exists()]
    if missing:
        fail(f"{len(missing)} mixture files are missing, e.g. {missing[0]}")
    return cached_dataset(split, [s.mixture for s in songs], [s.tags for s in songs],
                          corpus.vocabulary, config, cache_dir)


def mtat_dataset(mtat, split: str, config, cache_dir: Path):
    """Log-mel windows of MagnaTagATune's ``split`` clips (folder split, see
    ``recsys.datasets.MTAT_SPLITS``) with their top-50 tags."""
    clips = mtat.split(split)
    if not clips:
        fail(f"MagnaTagATune has no clips with audio in split {split!r}")
    return cached_dataset(f"mtat-{split}", [c.path for c in clips], [c.tags for c in clips],
                          mtat.vocabulary, config, cache_dir, skip_unreadable=True)


def _training_data(data: Path | None, mtat: Path | None, extra: list[Path] = ()):
    """``(vocabulary, dataset(split, config, cache))`` of the corpus (with ``extra`` corpora)
    or MagnaTagATune."""
    from recsys.corpus import Corpus, CorpusError
    from recsys.datasets import DatasetError, load_magnatagatune

    if (data is None) == (mtat is None):
        fail("give exactly one of --data CORPUS and --mtat MAGNATAGATUNE_DIR")
    if extra and mtat is not None:
        fail("--extra adds corpora to --data, not to --mtat")
    try:
        if mtat is not None:
            ds = load_magnatagatune(mtat)
            if ds.missing_audio:
                typer.echo(f"{ds.missing_audio} annotated MagnaTagATune clips have no audio "
                           "file; skipped")
            return ds.vocabulary, partial(mtat_dataset, ds)
        corpus = Corpus(data)
        extras = [Corpus(e) for e in extra]
    except (CorpusError, DatasetError) as e:
        fail(str(e))
    return corpus.vocabulary, partial(corpus_dataset, corpus, extra=extras)


@train_app.command("tagger")
def train_tagger(
    data: Path = typer.Option(None, "--data", help="Corpus directory (recsys corpus build)."),
    mtat: Path = typer.Option(None, "--mtat", help="MagnaTagATune folder instead of a corpus: "
                              "annotations_final.csv + the 0-f mp3 folders; top-50 tags, "
                              "folders 0-b train, c val."),
    no_joint: bool = typer.Option(False, "--no-joint",
                                  help="Train the tagger without the joint embedding (no_je)."),
    baseline: bool = typer.Option(False, "--baseline",
                                  help="Train only the logistic-regression baseline."),
    extra: list[Path] = typer.Option([], "--extra", help="Another corpus (repeat) whose train "
                                     "and val songs join --data's, less those sung by --data's "
                                     "test singers or set to its tunes (build it with "
                                     "--tune-offset)."),
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

    With --mtat, the same on MagnaTagATune (folders 0-b train, c val; its top-50 tags become
    the vocabulary stored with the weights).

    Default: the joint-embedding tagger (stage 1 + stage 2) and the logistic-regression baseline.

    --no-joint: the same extractor + classifier trained end to end. --baseline: only the baseline.
    """
    from dataclasses import asdict

    import torch

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
    from recsys.settings import get_settings

    if no_joint and baseline:
        fail("--no-joint and --baseline train different models; pick one")
    dev = device_option(device)
    torch.set_num_threads(max(1, threads))
    vocabulary, dataset = _training_data(data, mtat, extra)
    out = out or JE_WEIGHTS.parent
    cache = cache or get_settings().data_dir / "cache" / "tagging"
    config = TaggerConfig(vocabulary=vocabulary, joint=not no_joint)
    train = dataset("train", config, cache)
    val = dataset("val", config, cache)
    typer.echo(f"{len(train.mel)} train windows ({len(set(train.groups))} tracks), "
               f"{len(val.mel)} val windows; {len(config.vocabulary)} tags")

    provenance = {"dataset": "magnatagatune" if mtat else "corpus", "data": str(mtat or data),
                  "extra": [str(e) for e in extra],
                  "train_tracks": len(set(train.groups)), "val_tracks": len(set(val.groups))}
    if not no_joint:
        typer.echo("training the logistic-regression baseline ...")
        logreg = train_logreg(train, config.vocabulary, config)
        logreg.save(out / LOGREG_WEIGHTS.name, training=provenance)
        typer.echo(f"saved {out / LOGREG_WEIGHTS.name} ({logreg.version})")
    if baseline:
        return

    cfg = TrainConfig(stage1_epochs=stage1_epochs, stage2_epochs=stage2_epochs,
                      no_je_epochs=epochs, batch_size=batch_size, lr=lr,
                      windows_per_track=windows_per_track, seed=seed, max_minutes=max_minutes)
    torch.manual_seed(seed)
    model = JetaTagger(config).to(dev)

    def on_epoch(stage, epoch, total, metrics):
        parts = " ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                         if isinstance(v, float) and k != "seconds")
        mark = " *" if metrics.get("best") else ""
        typer.echo(f"[{stage}] epoch {epoch}/{total} {parts} ({metrics['seconds']:.0f} s){mark}",
                   )

    provenance["train_config"] = asdict(cfg)
    if no_joint:
        provenance["no_je"] = _selected(train_no_je(model, train, val, cfg, on_epoch))
        path = out / NO_JE_WEIGHTS.name
    else:
        provenance["stage1"] = _selected(train_stage1(model, train, val, cfg, on_epoch))
        model.save(cache / "jetatag_stage1.safetensors")  # the extractor, if stage 2 dies
        provenance["stage2"] = _selected(train_stage2(model, train, val, cfg, on_epoch))
        path = out / JE_WEIGHTS.name
    model.cpu().save(path, training=provenance)
    typer.echo(f"saved {path} ({model.version})")


def _selected(history: list[dict]) -> dict:
    """Which epoch a training stage kept (best validation score) out of how many it ran."""
    if not history:
        return {"epochs_run": 0}
    best = max(range(len(history)), key=lambda i: history[i]["val_score"])
    return {"epochs_run": len(history), "kept_epoch": best + 1,
            "val_score": round(history[best]["val_score"], 4)}


@bench_app.command("tagging")
def bench_tagging(
    corpus: Path = typer.Option(None, "--corpus", help="Corpus directory."),
    mtat: Path = typer.Option(None, "--mtat", help="MagnaTagATune folder instead of a corpus "
                              "(test = folders d-f); needs --weights trained with --mtat."),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    split: str = typer.Option("test", help="Split to evaluate (never trained on)."),
    weights: Path = typer.Option(None, help="Folder with logreg/no_je/je weights "
                                 "(default: the shipped ones)."),
    limit: int = typer.Option(0, help="Only the first N tracks (0 = all)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
):
    """logreg vs. no_je vs. je on one split: macro ROC-AUC, PR-AUC and tag-search P@10."""
    import torch

    from embeddings.audio import AudioError
    from embeddings.tagging import TaggerError, TaggerWeightsError
    from recsys.bench.tagging import load_systems, run, run_mtat
    from recsys.corpus import CorpusError
    from recsys.datasets import DatasetError

    if (corpus is None) == (mtat is None):
        fail("give exactly one of --corpus CORPUS and --mtat MAGNATAGATUNE_DIR")
    torch.set_num_threads(max(1, threads))
    try:
        systems = load_systems(weights)
        with _progress() as progress:
            task = progress.add_task(f"tagging {split} tracks", total=None)
            result = (run_mtat if mtat else run)(
                mtat or corpus, split=split, systems=systems, limit=limit or None,
                progress=lambda i, n: progress.update(task, completed=i, total=n))
    except (AudioError, CorpusError, DatasetError, TaggerError, TaggerWeightsError) as e:
        fail(str(e))
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
