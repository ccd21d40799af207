"""`recsys train melody`, `recsys bench qbh`, `recsys bench pitch`."""

from __future__ import annotations

from pathlib import Path

import typer

from recsys.commands import bench_app, fail, separator_option, train_app


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


@train_app.command("melody")
def train_melody(
    data: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    out: Path = typer.Option(Path("embeddings/weights/tcae-v1"),
                             help="Weights path without suffix (.safetensors/.json)."),
    steps: int = typer.Option(2800, help="Optimiser steps (at most)."),
    minutes: float = typer.Option(0.0, help="Stop training after this many minutes (0: none)."),
    batch: int = typer.Option(32, help="Positive pairs per step."),
    lr: float = typer.Option(2e-3),
    frontend: str = typer.Option("interval", help="'interval' (pitch posterior -> "
                                 "transposition-invariant intervals) or 'mel' (v1)."),
    channels: int = typer.Option(32, help="Width of the causal stacks."),
    layers: int = typer.Option(6, help="Residual blocks per stack (dilation 1..2**(L-1))."),
    hum_fraction: float = typer.Option(0.75, help="Share of each batch drawn from hum pairs."),
    pitch_weight: float = typer.Option(1.0, help="Weight of the auxiliary pitch loss."),
    recon_weight: float = typer.Option(1.0, help="Weight of the reconstruction loss."),
    hums_per_song: int = typer.Option(6, help="Extra hums generated per train song "
                                      "(cached under --hum-cache)."),
    val_hums_per_song: int = typer.Option(3, help="Extra hums generated per val song, "
                                          "used only to select the weights."),
    separator: str = typer.Option("auto", help="Separator of the catalog-side windows "
                                  "('auto', a name, or 'clean' for stems only)."),
    eval_every: int = typer.Option(400, help="Score val retrieval every this many steps."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
    max_songs: int = typer.Option(0, help="Use at most this many training songs (0: all)."),
    seed: int = typer.Option(0),
    hum_cache: Path = typer.Option(Path("data/cache/tcae-hums"), help="Generated hums."),
    cache: Path = typer.Option(Path("data/cache/qbh"),
                               help="Separated vocals (shared with `recsys bench qbh`)."),
    checkpoint: Path = typer.Option(Path("runs/melody/checkpoint"),
                                    help="Saved every 50 steps while training."),
    overwrite: bool = typer.Option(False, help="Replace the weights at --out even when "
                                   "they select better on val than the new ones."),
):
    """Train the TCAE melody encoder on the corpus' train split: its songs (clean and
    separated vocals), its hum queries and --hums-per-song more hums per song rendered by
    the corpus' own hum generator. Weights are selected by window-vote retrieval of val
    hums against the train + val songs' separated vocals; test songs are never read. Weights
already at --out that score better on val are kept (the new ones go to OUT-candidate)."""
    import json
    import sys

    import torch

    from embeddings import audio, pitch
    from embeddings.melody import TCAE, MelodyModelError, TCAEConfig
    from embeddings.melody_train import HumPair, TrainConfig, TrainSong, train
    from recsys.bench.qbh import WindowRetrieval, corpus_cache
    from recsys.bench.vocals import separated_path, separated_vocals
    from recsys.corpus import Corpus, CorpusError
    from recsys.corpus.training_hums import generate

    torch.set_num_threads(threads)
    try:
        corpus = Corpus(data)
        model_config = TCAEConfig(channels=channels, layers=layers, frontend=frontend)
    except (CorpusError, MelodyModelError) as e:
        fail(str(e))
    label, sep = separator_option(separator)
    sep_cache = corpus_cache(cache, corpus)
    bar, update = _progress()

    def split_data(split: str, limit: int, per_song: int):
        songs = [s for s in corpus.songs(split) if not s.instrumental]
        if limit:
            songs = songs[:limit]
        index = {s.song_id: i for i, s in enumerate(songs)}
        pairs = [HumPair(q.path, index[q.song_id], q.start_s, q.end_s, q.notes,
                         q.params.get("song_note_indices", [None])[0])
                 for q in corpus.queries(split) if q.song_id in index]
        extra = generate(corpus, split, per_song, hum_cache,
                         progress=lambda d, t: update(f"hums ({split})", d, t),
                         song_ids=set(index)) if per_song else []
        pairs += [HumPair(h.path, index[h.song_id], h.start_s, h.end_s, h.notes, h.first_note)
                  for h in extra if h.song_id in index]
        separated = []
        for i, s in enumerate(songs):
            vocals = separated_vocals(s, sep, label, sep_cache)
            separated.append(vocals)
            update(f"separated vocals ({split})", i + 1, len(songs))
        train_songs = [TrainSong(s.vocals, s.accompaniment,
                                 separated_path(s, label, sep_cache) if sep else None, s.notes)
                       for s in songs]
        return songs, train_songs, pairs, separated

    with bar:
        songs, train_songs, hums, train_sep = split_data("train", max_songs, hums_per_song)
        val, _, val_hums, val_sep = split_data("val", 0, val_hums_per_song)
        if not train_songs:
            fail(f"{data} has no training songs with vocals")
        # val selection: val hums against the train + val songs' (separated) vocals
        catalog = [(v, pitch.contour(v)) for v in train_sep + val_sep]
        queries = [(audio.load(h.hum), len(songs) + h.song) for h in val_hums]
        evaluate = WindowRetrieval(catalog, queries)
        typer.echo(f"train: {len(train_songs)} songs, {len(hums)} hums; val: {len(val)} songs,"
                   f" {len(val_hums)} hums against {len(catalog)} tracks; separator {label}")
        config = TrainConfig(steps=steps, batch=batch, lr=lr, threads=threads,
                             hum_fraction=hum_fraction, pitch_weight=pitch_weight,
                             recon_weight=recon_weight, eval_every=eval_every,
                             max_minutes=minutes, seed=seed,
                             separated_prob=0.5 if sep else 0.0)
        model, history = train(train_songs, hums, model_config, config, progress=update,
                               checkpoint=checkpoint, evaluate=evaluate)
    best = history.evals[history.eval_steps.index(history.best_step)]
    previous = None
    try:
        previous = evaluate(TCAE.load(out))
    except MelodyModelError:
        pass
    meta = {
        "command": " ".join(["recsys", *sys.argv[1:]]),
        "corpus": str(Path(data).resolve()), "train_songs": len(train_songs),
        "train_hums": len(hums), "separator": label, "train_config": config.__dict__,
        "val": {"selection": "window-vote retrieval of val hums against train+val songs",
                "best_step": history.best_step, "best": best, "previous_weights": previous},
        "history": history.__dict__,
    }
    metric = config.select_metric
    if previous is not None and previous[metric] >= best[metric] and not overwrite:
        # never replace weights that select better on val
        out = out.with_name(out.name + "-candidate")
        typer.secho(f"val {metric} {best[metric]} does not beat the weights already at "
                    f"the output ({previous[metric]}): written to {out} instead",
                    fg=typer.colors.YELLOW, err=True)
    model.save(out, meta=meta)
    typer.echo(json.dumps({"out": str(out), "seconds": round(history.seconds),
                           "steps": history.steps[-1], "final_loss": history.loss[-1],
                           "val_best": best, "best_step": history.best_step,
                           "val_previous_weights_at_out": previous}))


@train_app.command("pitch")
def train_pitch(
    data: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    extra: list[Path] = typer.Option([], "--extra", help="Another corpus (repeat) whose train "
                                     "songs and their hums join --data's train items, less "
                                     "those sung by --data's test singers or set to its tunes "
                                     "(build it with --tune-offset). Val stays --data's."),
    out: Path = typer.Option(Path("embeddings/weights/pitch-cnn"),
                             help="Weights path without suffix (.safetensors/.json)."),
    steps: int = typer.Option(1500, help="Optimiser steps (at most)."),
    minutes: float = typer.Option(0.0, help="Stop training after this many minutes (0: none)."),
    batch: int = typer.Option(16, help="Crops per step."),
    lr: float = typer.Option(2e-3),
    channels: int = typer.Option(12, help="Width of the convolutions."),
    layers: int = typer.Option(3, help="Convolution layers."),
    hums_per_song: int = typer.Option(3, help="Extra hums generated per train song "
                                      "(cached under --hum-cache, shared with `train melody`)."),
    separator: str = typer.Option("auto", help="Separator of the separated-vocals items."),
    eval_every: int = typer.Option(150, help="Score the val split every this many steps."),
    shift_prob: float = typer.Option(0.0, help="Share of crops played faster or slower "
                                     "(pitch and formants moved together, target too)."),
    shift_semitones: float = typer.Option(3.0, help="Largest such move, either way."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
    seed: int = typer.Option(0),
    init: Path | None = typer.Option(None, help="Start from these weights (path without "
                                     "suffix) instead of from scratch."),
    hum_cache: Path = typer.Option(Path("data/cache/tcae-hums"), help="Generated hums."),
    cache: Path = typer.Option(Path("data/cache/qbh"),
                               help="Separated vocals (shared with `recsys bench qbh`)."),
):
    """Train the learned pitch tracker on the corpus' train split: clean vocal stems (with
    accompaniment bleed), separated vocals, hum queries and --hums-per-song more hums, all
    with their known notes. The step with the best val overall accuracy (voicing and pitch
    within 50 cents, averaged over clean, separated and hum audio of the val split) is kept;
    test songs are never read."""
    import json
    import sys

    from embeddings import audio
    from embeddings.pitch_net import PitchModelError, PitchNet, PitchNetConfig
    from embeddings.pitch_train import PitchItem, PitchTrainConfig, PitchValidation, train
    from recsys.bench.qbh import corpus_cache
    from recsys.bench.vocals import separated_vocals
    from recsys.corpus import Corpus, CorpusError, extension_songs
    from recsys.corpus.training_hums import generate

    try:
        corpus = Corpus(data)
        extras = [Corpus(e) for e in extra]
        extra_songs = {e.root: extension_songs(corpus, e, "train") for e in extras}
        model_config = PitchNetConfig(channels=channels, layers=layers)
        start = PitchNet.load(init) if init else None
    except (CorpusError, PitchModelError) as e:
        fail(str(e))
    label, sep = separator_option(separator)
    bar, update = _progress()

    def song_items(c, songs, split: str, bleed: bool) -> list[PitchItem]:
        items = []
        songs = [s for s in songs if not s.instrumental and s.notes]
        for i, s in enumerate(songs):
            items.append(PitchItem(audio.load(s.vocals), s.notes, "clean",
                                   audio.load(s.accompaniment) if bleed else None))
            items.append(PitchItem(separated_vocals(s, sep, label, corpus_cache(cache, c)),
                                   s.notes, "separated"))
            update(f"songs ({split}, {c.root.name})", i + 1, len(songs))
        return items

    def split_items(split: str, per_song: int, bleed: bool) -> list[PitchItem]:
        items = song_items(corpus, corpus.songs(split), split, bleed)
        hums = [(q.path, q.notes) for q in corpus.queries(split) if q.notes]
        if split == "train":
            for e in extras:
                items += song_items(e, extra_songs[e.root], split, bleed)
                allowed = {s.song_id for s in extra_songs[e.root]}
                hums += [(q.path, q.notes) for q in e.queries(split)
                         if q.notes and q.song_id in allowed]
        if per_song:
            hums += [(h.path, h.notes) for h in generate(
                corpus, split, per_song, hum_cache,
                progress=lambda d, t: update(f"hums ({split})", d, t))]
        items += [PitchItem(audio.load(path), notes, "hum") for path, notes in hums]
        return items

    with bar:
        items = split_items("train", hums_per_song, bleed=True)
        val = split_items("val", 0, bleed=False)
        if not items or not val:
            fail(f"{data} needs train and val songs with vocals")
        counts = {k: sum(it.kind == k for it in items) for k in ("clean", "separated", "hum")}
        typer.echo(f"train items: {counts}; val items: {len(val)}; separator {label}")
        config = PitchTrainConfig(steps=steps, batch=batch, lr=lr, eval_every=eval_every,
                                  max_minutes=minutes, seed=seed, threads=threads,
                                  shift_prob=shift_prob, shift_semitones=shift_semitones)
        model, history = train(items, start.config if start else model_config, config,
                               evaluate=PitchValidation(val), progress=update, init=start)
    best = history.evals[history.eval_steps.index(history.best_step)]
    model.save(out, meta={
        "command": " ".join(["recsys", *sys.argv[1:]]),
        "corpus": str(Path(data).resolve()), "split": "train", "train_items": counts,
        "extra": {str(e.root.resolve()): len(extra_songs[e.root]) for e in extras},
        "separator": label, "train_config": config.__dict__, "init": str(init) if init else None,
        "val": {"selection": f"{config.select_metric} on the val split", "best": best,
                "best_step": history.best_step},
        "history": history.__dict__,
    })
    typer.echo(json.dumps({"out": str(out), "seconds": history.seconds,
                           "best_step": history.best_step, "val_best": best}))


@bench_app.command("qbh")
def bench_qbh(
    corpus: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    split: str = typer.Option("test", help="Split of the hum queries ('all': every split, "
                              "for a development corpus no model trained on)."),
    singers: str = typer.Option("all", help="Only the hums of songs by singers the shipped "
                                "models 'heard' in training, or by 'unseen' ones."),
    separator: str = typer.Option("auto", help="'auto' (bsrnn, else repet_sim), a separator "
                                  "name, 'clean' for the clean vocal stems, or a BSRNN "
                                  ".safetensors file (a candidate before it ships); "
                                  "append ',shifts=2' to average 2 shifted BSRNN passes, "
                                  "',precision=bf16' to run them in bfloat16."),
    model: str = typer.Option("tcae", help="Melody encoder (registry name)."),
    max_queries: int = typer.Option(0, help="At most this many queries (0: all)."),
    rerank_k: int = typer.Option(0, help="Tracks re-ranked by DTW (0: the search service's "
                                 "depth, chosen on val)."),
    crop: bool = typer.Option(True, "--around-hits/--whole-tracks",
                              help="Align only around each candidate's best FAISS hits."),
    cache: Path = typer.Option(Path("data/cache/qbh"), help="Separated vocals and features."),
    weights: Path | None = typer.Option(None, help="TCAE weights (path without suffix) "
                                        "instead of the shipped ones."),
    extra: list[Path] = typer.Option([], "--extra", help="Another corpus whose songs join the "
                                     "catalog (repeat); its tunes must not be the main "
                                     "corpus' (build it with --tune-offset). Neither the "
                                     "separator nor the melody encoder may train on it: its "
                                     "val queries serve --split val, all its other queries "
                                     "--split test."),
    pitch_method: str | None = typer.Option(None, "--pitch", help="Pitch tracker of catalog "
                                            "and hum contours (yin, pyin, cnn) instead of "
                                            "the default."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """Query-by-humming: exhaustive pitch DTW vs TCAE vs TCAE + DTW re-rank (MRR, top-1,
    top-10, latency), plus latency at 1k/2k/5k songs' worth of windows."""
    from recsys.bench.qbh import run
    from recsys.corpus import CorpusError
    from recsys.search import HUM_RERANK

    bar, update = _progress()
    try:
        with bar:
            result = run(corpus, split=split, separator=separator, model=model,
                         max_queries=max_queries or None, rerank_k=rerank_k or HUM_RERANK,
                         crop=crop,
                         cache=cache, weights=weights, extra=tuple(extra),
                         pitch_method=pitch_method, singers=singers, progress=update)
    except (CorpusError, ValueError, RuntimeError) as e:  # MelodyModelError included
        fail(str(e))
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
    method: list[str] = typer.Option(["yin", "pyin", "cnn"], "--method",
                                     help="Pitch trackers to compare (repeat)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
):
    """Pitch accuracy (50 cents) and speed of YIN, pYIN and the learned tracker (cnn) on
    clean vocals, separated vocals and hums, against the corpus' sung notes."""
    from recsys.bench.pitch import run
    from recsys.corpus import CorpusError

    bar, update = _progress()
    try:
        with bar:
            result = run(corpus, split=split, separator=separator, max_songs=max_songs,
                         max_queries=max_queries, max_seconds=max_seconds,
                         methods=tuple(method), progress=update)
    except (CorpusError, ValueError, RuntimeError) as e:
        fail(str(e))
    result.print()
    if json_out:
        result.save(json_out)
