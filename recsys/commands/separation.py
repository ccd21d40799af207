"""`recsys train separator`, `recsys separate`, `recsys bench separation`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from recsys.commands import app, bench_app, device_option, fail, train_app

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aiff",
                  ".aif", ".wma", ".webm"}


def _progress():
    from rich import progress as p

    return p.Progress(p.TextColumn("{task.description}"), p.BarColumn(), p.MofNCompleteColumn(),
                      p.TimeElapsedColumn(), p.TextColumn("{task.fields[info]}"))


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def _val_excerpts(songs, seconds: float, limit: int):
    """``(mixture, vocals)`` excerpts: per song, the ``seconds`` with the most vocal energy."""
    import numpy as np

    from embeddings.audio import SAMPLE_RATE, load

    items = []
    n = int(seconds * SAMPLE_RATE)
    for song in [s for s in songs if not s.instrumental][:limit]:
        vocals, mixture = load(song.vocals), load(song.mixture)
        m = min(len(vocals), len(mixture))
        if m <= n:
            items.append((mixture[:m], vocals[:m]))
            continue
        cum = np.concatenate([[0.0], np.cumsum(vocals[:m].astype(np.float64) ** 2)])
        starts = np.arange(0, m - n + 1, SAMPLE_RATE)
        start = int(starts[np.argmax(cum[starts + n] - cum[starts])])
        items.append((mixture[start : start + n], vocals[start : start + n]))
    return items


def _unlabeled_sources(folder: Path, unlabeled, data_corpus) -> list:
    """Songs (corpus entries) or audio paths to mine pseudo-labels from: a folder of any
    songs, or the mixtures of ``unlabeled``, the folder's corpus when it is one.

    From a corpus only the mixtures are used (never its stems), and never songs sharing a
    singer or a tune with the test splits of the training corpus (nor, when it is the
    training corpus itself, anything but its train split: val picks the weights).
    """
    if unlabeled is not None:
        # `test` holds the unseen singers; `test` and `test_seen` hold the unseen tunes
        singers = {s.singer_id for s in data_corpus.songs("test") if s.singer_id}
        tunes = {s.tune_id for split in ("test", "test_seen") for s in data_corpus.songs(split)}
        # the training corpus itself lends only its train mixtures; another corpus lends
        # every song that shares no singer or tune with the training corpus' held-out splits
        same = unlabeled.root == data_corpus.root
        return [s for s in unlabeled.songs() if (not same or s.split == "train")
                and s.singer_id not in singers and s.tune_id not in tunes]
    return _audio_files(folder)


def _config_name(config) -> str:
    """``"cpu"`` or ``"paper"`` when ``config`` is that named size, else its shape (a grown
    or custom model), for the version a training run writes."""
    from embeddings.separation.bsrnn import BSRNNConfig

    for name in ("cpu", "paper"):
        if config == BSRNNConfig.named(name):
            return name
    return f"n{config.features}-l{config.modules}"


@train_app.command("separator")
def train_separator(
    data: Path = typer.Option(..., help="A corpus built by `recsys corpus build` (its train "
                              "split is trained on, its val split scores each epoch)."),
    extra: list[Path] = typer.Option([], "--extra", help="Another corpus (repeat) whose "
                                     "songs, every split, join the training songs, less "
                                     "those sung by --data's test singers or set to its tunes "
                                     "(build it with --tune-offset)."),
    config: str | None = typer.Option(None, help="Size of a new model: 'cpu' (default) or "
                                      "'paper'. --init and --resume weights keep theirs."),
    device: str = typer.Option("auto", help="'auto', 'cpu' or 'cuda'."),
    epochs: int = typer.Option(20, min=1, help="Epochs (each `--steps` batches)."),
    steps: int = typer.Option(60, min=1, help="Batches per epoch."),
    batch: int = typer.Option(4, min=1, help="Random-remix segments per batch."),
    segment: float = typer.Option(3.0, min=0.5, help="Segment length in seconds."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    lr_final: float | None = typer.Option(None, help="Cosine-decay the learning rate to this "
                                          "by the last epoch (default: constant)."),
    out: Path = typer.Option(Path("runs/separator"), help="Checkpoints and best weights."),
    resume: bool = typer.Option(False, help="Continue from OUT/last.pt."),
    unlabeled: Path | None = typer.Option(None, help="Semi-supervised fine-tuning: a folder "
                                          "of songs (any audio) or a corpus, whose mixtures "
                                          "are separated and filtered into pseudo-labels."),
    init: Path | None = typer.Option(None, help="Start from these weights (.safetensors); "
                                     "with --unlabeled the default is the shipped bsrnn-cpu."),
    add_modules: int = typer.Option(0, help="Append this many modules to the --init "
                                    "weights, starting as the identity (depth growth)."),
    threshold_db: float = typer.Option(30.0, help="Energy-filter margin for pseudo-labels."),
    val_songs: int = typer.Option(12, min=0, help="Validation excerpts (10 s each) from "
                                  "`val`."),
    max_songs: int = typer.Option(0, min=0, help="Use at most this many training songs "
                                  "(0: all)."),
    ship: str | None = typer.Option(None, help="Copy the best weights to "
                                    "embeddings/weights/NAME.safetensors (+ .json)."),
    shift_prob: float = typer.Option(0.0, help="Share of examples whose vocals are played "
                                     "faster or slower (a voice in another register)."),
    shift_semitones: float = typer.Option(4.0, help="Largest such move, either way."),
    threads: int = typer.Option(2, min=1, help="CPU threads for torch."),
    seed: int = typer.Option(0),
):
    """Train the BSRNN vocal separator on the corpus' train split with random-remix
    augmentation; validation SDR on `val` each epoch; resumable. With --unlabeled, fine-tune
    on labeled data mixed with energy-filtered pseudo-labels (BSRNN paper)."""
    import json
    import shutil
    import time

    import torch

    from embeddings.audio import SAMPLE_RATE, AudioError, load
    from embeddings.registry import WEIGHTS_DIR
    from embeddings.separation.bsrnn import BSRNN, BSRNNConfig, BsrnnSeparator
    from embeddings.separation.train import Pools, TrainConfig, mine_pseudo_labels, train
    from recsys.corpus import Corpus, CorpusError, extension_songs

    torch.set_num_threads(threads)
    dev = device_option(device)
    if config is not None and (init is not None or resume):
        fail("--config sets the size of a new model; --init and --resume weights keep theirs")
    if resume and add_modules:
        fail("--add-modules grows --init weights; a resumed run keeps its checkpoint's size")
    if ship is not None and (not ship or "/" in ship or "\\" in ship or ship.startswith(".")):
        fail(f"--ship takes a plain name such as bsrnn-cpu, not {ship!r}")
    if init is not None and not init.is_file():  # before minutes of loading audio
        fail(f"--init {init} does not exist")
    ckpt_path = out / "last.pt"
    if resume and not ckpt_path.exists():
        fail(f"--resume: there is no {ckpt_path} to continue from")
    unlabeled_corpus = None  # --unlabeled when it is a corpus, read once and checked early
    if unlabeled is not None:
        if not unlabeled.is_dir():
            fail(f"--unlabeled {unlabeled} is not a folder")
        if (unlabeled / "corpus.json").exists():
            try:
                unlabeled_corpus = Corpus(unlabeled)
            except CorpusError as e:
                fail(f"--unlabeled: {e}")
    try:
        corpus = Corpus(data)
        model_config = BSRNNConfig.named(config or "cpu")
        # a separator has no use for another corpus' split labels: all of its songs may
        # join, less those by --data's test singers or on any of --data's tunes
        extra_songs = [s for e in extra for s in extension_songs(corpus, Corpus(e), None)]
    except (CorpusError, ValueError) as e:
        fail(str(e))
    songs = corpus.songs("train")
    if max_songs:
        songs = songs[:max_songs]
    songs += extra_songs
    if not songs:
        fail(f"{data} has no training songs")
    t0 = time.time()
    vocals, accompaniment = [], []
    try:
        for s in songs:
            v, a = load(s.vocals), load(s.accompaniment)
            n = min(len(v), len(a))
            vocals.append(v[:n])
            accompaniment.append(a[:n])
        val_items = _val_excerpts(corpus.songs("val"), 10.0, val_songs)
    except AudioError as e:
        fail(f"corpus audio could not be read: {e}")
    minutes = sum(map(len, vocals)) / SAMPLE_RATE / 60
    typer.echo(f"train: {len(songs)} songs ({len(extra_songs)} from --extra, {minutes:.1f} "
               f"min); val: {len(val_items)} excerpts; device {dev}; "
               f"loaded in {time.time() - t0:.0f} s")

    init_path = init
    if init_path is None and unlabeled is not None and not resume:
        init_path = WEIGHTS_DIR / "bsrnn-cpu.safetensors"
    if resume:  # the checkpoint's own size and weights: pseudo-labels need the trained model
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model = BSRNN(BSRNNConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    elif init_path is not None:
        if not init_path.exists():
            fail(f"--init {init_path} does not exist")
        try:
            model, _ = BSRNN.load(init_path)
        except Exception as e:  # a missing JSON, a damaged or foreign file
            fail(f"--init {init_path} could not be loaded as BSRNN weights: {e}")
    else:
        model = BSRNN(model_config)
    if add_modules:
        if init_path is None:
            fail("--add-modules grows the --init weights; give --init")
        model = model.grown(add_modules)
    pools = Pools(vocals, accompaniment)
    # every singer and tune the weights have heard, so a benchmark can prove it never scores
    # on them (init weights pass theirs on)
    heard_singers = {x.singer_id for x in songs if x.singer_id}
    heard_tunes = {x.tune_id for x in songs}
    if init_path is not None and init_path.with_suffix(".json").exists():
        init_doc = json.loads(init_path.with_suffix(".json").read_text())
        heard_singers |= set(init_doc.get("heard_singers", []))
        heard_tunes |= set(init_doc.get("heard_tunes", []))
    size = _config_name(model.config)
    meta = {"version": f"bsrnn-{size}-1", "trained_on": str(data), "split": "train",
            "extra": [str(e) for e in extra], "extra_songs": len(extra_songs)}
    mining = {}
    if unlabeled is not None:
        meta["version"] = f"bsrnn-{size}-semi-1"
        separator = BsrnnSeparator(model, device=dev)
        sources = _unlabeled_sources(unlabeled, unlabeled_corpus, corpus)
        items = []  # the sources that decoded; each song is loaded, mined and let go in turn

        def mixtures(bar, task):
            for source in sources:
                path = getattr(source, "mixture", source)
                try:
                    audio = load(path)
                except AudioError as e:
                    bar.console.print(f"[yellow]skipped {path}: {e}[/yellow]", highlight=False)
                    bar.advance(task)
                    continue
                items.append(source)
                yield audio

        with _progress() as bar:
            task = bar.add_task("pseudo-labels", total=len(sources), info="")
            pv, pa, mining = mine_pseudo_labels(
                separator.separate, mixtures(bar, task), int(segment * SAMPLE_RATE),
                threshold_db, on_item=lambda: bar.advance(task))
        if not items:
            fail(f"no readable audio in {unlabeled}")
        heard_singers |= {x.singer_id for x in items if getattr(x, "singer_id", None)}
        heard_tunes |= {x.tune_id for x in items if getattr(x, "tune_id", None)}
        pools.pseudo_vocals, pools.pseudo_accompaniment = pv, pa
        model.train()
        mining["unlabeled"] = str(unlabeled)
        mining["unlabeled_files"] = len(items)
        meta["semi_supervised"] = mining
        typer.echo(f"pseudo-labels from {len(items)} songs: {mining['windows']} windows, "
                   f"kept {mining['clean_vocals']} clean-vocal and "
                   f"{mining['clean_accompaniment']} clean-accompaniment windows "
                   f"({threshold_db:g} dB filter)")
        if not pv and not pa:
            typer.secho("no window passed the energy filter; fine-tuning on labeled data only",
                        fg="yellow", err=True)

    meta["heard_singers"], meta["heard_tunes"] = sorted(heard_singers), sorted(heard_tunes)
    cfg = TrainConfig(epochs=epochs, steps_per_epoch=steps, batch_size=batch,
                      segment_seconds=segment, lr=lr, lr_final=lr_final,
                      shift_prob=shift_prob, shift_semitones=shift_semitones, seed=seed)
    with _progress() as bar:
        task = bar.add_task("epoch 1", total=steps, info="")

        def on_step(step, loss):
            bar.update(task, completed=step + 1, info=f"loss {loss:.4f}")

        def on_epoch(rec):
            bar.console.print(f"epoch {rec['epoch']}: loss {rec['loss']:.4f}, "
                              f"val SDR {rec['val_sdr']:.2f} dB, {rec['seconds']:.0f} s")
            bar.reset(task, total=steps, description=f"epoch {rec['epoch'] + 1}")

        history = train(model, pools, val_items, cfg, out, device=dev, resume=resume,
                        meta=meta, on_step=on_step, on_epoch=on_epoch)
    best = out / "best.safetensors"
    if not best.exists():
        fail(f"no weights were written to {best}")
    seconds = sum(h["seconds"] for h in history)
    typer.echo(f"trained {len(history)} epochs ({seconds / 60:.1f} min); best weights: {best}")
    if ship:
        for suffix in (".safetensors", ".json"):
            dst = WEIGHTS_DIR / f"{ship}{suffix}"
            tmp = dst.with_name(f".{dst.name}.tmp")
            shutil.copyfile(best.with_suffix(suffix), tmp)
            tmp.replace(dst)
        typer.echo(f"shipped as {WEIGHTS_DIR / ship}.safetensors")


@app.command("separate")
def separate(
    files: list[Path] = typer.Argument(..., help="Audio files (any common format)."),
    out: Path = typer.Option(..., help="Folder for <name>.vocals.wav and "
                             "<name>.accompaniment.wav."),
    model: str = typer.Option("bsrnn", help="'bsrnn', 'repet_sim' or 'mixture'."),
    device: str = typer.Option("auto", help="'auto', 'cpu' or 'cuda'."),
    max_minutes: float = typer.Option(240.0, min=0.01, help="Longest input accepted."),
    threads: int = typer.Option(2, min=1, help="CPU threads for torch."),
    # 2 is bsrnn.DEFAULT_SHIFTS, written out so that `--help` need not import torch
    shifts: int = typer.Option(2, min=1, max=16, help="bsrnn: average this many passes on "
                               "shifted STFT frame grids (S times the compute of one; 1: "
                               "fastest; see BENCHMARKS.md)."),
    precision: str = typer.Option("auto", help="bsrnn: 'fp32', 'bf16' (faster on a CPU with "
                                  "native bfloat16) or 'auto' (bf16 where the CPU has it)."),
):
    """Separate vocals from accompaniment; the model loads once for all FILES. Long files
    run in cross-faded chunks and are written as they go, so the separation's memory stays
    flat (the decoded input is held whole: about 230 MB for an hour)."""
    import numpy as np
    import torch

    from embeddings.audio import SAMPLE_RATE, AudioError, load
    from embeddings.registry import UnknownModelError, load_separator
    from embeddings.separation.bsrnn import (
        DEFAULT_SHIFTS,
        PRECISIONS,
        BsrnnSeparator,
        load_pretrained,
    )
    from embeddings.separation.infer import write_stems

    torch.set_num_threads(threads)
    dev = device_option(device)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file, not a folder")
    if shifts != DEFAULT_SHIFTS and model != "bsrnn":
        fail(f"--shifts applies to the bsrnn model only, not {model}")
    if precision not in PRECISIONS:
        fail(f"--precision is one of {', '.join(PRECISIONS)}, not {precision!r}")
    stems: dict[str, Path] = {}
    for path in files:
        stem = _stem(path)
        if stem in stems and stems[stem] != path:
            fail(f"{stems[stem]} and {path} would both write {stem}.vocals.wav; "
                  "separate them into different --out folders")
        stems[stem] = path
    try:
        sep = (load_pretrained(device=dev, shifts=shifts, precision=precision)
               if model == "bsrnn"
               else load_separator(model))
    except (UnknownModelError, FileNotFoundError) as e:
        fail(str(e.args[0]) if e.args else str(e))
    failed = 0
    with _progress() as bar:
        task = bar.add_task("separating", total=len(files), info="")
        for path in files:
            bar.update(task, info=path.name)
            try:
                audio = load(path, max_seconds=max_minutes * 60)
            except AudioError as e:
                bar.console.print(f"[red]error:[/red] {e}", highlight=False)
                failed += 1
                bar.advance(task)
                continue
            # a floating-point file louder than full scale would be clipped to noise in
            # 16 bits; its stems are written as 32-bit float instead, nothing lost
            subtype = "FLOAT" if float(np.abs(audio).max()) > 1.0 else "PCM_16"
            if subtype == "FLOAT":
                bar.console.print(f"{path.name}: louder than full scale; stems written as "
                                  "32-bit float WAV", highlight=False)
            if isinstance(sep, BsrnnSeparator):
                segments = sep.iter_separate(audio)
            else:
                v, a = sep.separate(audio)
                segments = iter([[v, a]])
            try:
                write_stems(out, _stem(path), segments, SAMPLE_RATE, subtype)
            except OSError as e:  # disk full, no permission: this file fails, not the rest
                bar.console.print(f"[red]error:[/red] {path}: could not write: {e}",
                                  highlight=False)
                failed += 1
            bar.advance(task)
    typer.echo(f"wrote {2 * (len(files) - failed)} files to {out}")
    if failed:
        typer.secho(f"{failed} of {len(files)} files failed", fg="red", err=True)
        raise typer.Exit(1)


def _stem(path: Path) -> str:
    return path.name.rsplit(".", 1)[0] if "." in path.name else path.name


@bench_app.command("separation")
def bench_separation(
    corpus: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    split: str = typer.Option("test", help="Split to score (never trained or tuned on)."),
    max_songs: int = typer.Option(0, help="Score at most this many songs (0: all)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
    long_minutes: float = typer.Option(10.0, help="Length of the file for peak memory."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
    separator: Path | None = typer.Option(
        None, help="Candidate BSRNN weights (.safetensors) for the bsrnn row, e.g. "
                   "runs/separator/best.safetensors, scored before they ship."),
    singers: str = typer.Option("all", help="all, heard or unseen: only songs by singers "
                                "the shipped weights heard in training, or never heard."),
    shifts: list[int] = typer.Option([], min=1, max=16, help="Also score the bsrnn row's "
                                     "weights with S shifted passes (repeatable; 1: one "
                                     "plain pass)."),
    precision: str = typer.Option(None, help="Arithmetic of the BSRNN rows: 'fp32', 'bf16' "
                                  "or 'auto' (bf16 on a CPU with native bfloat16); default: "
                                  "as shipped (auto)."),
):
    """mixture, repet_sim, bsrnn, bsrnn_semi and oracle_irm side by side: BSSEval v4 SDR
    (museval, 1 s frames), SI-SDR, real-time factor and peak memory of a long file.
    ``--split all`` scores every song (for a corpus no model trains on)."""
    import torch

    from recsys.bench.separation import run
    from recsys.corpus import CorpusError

    torch.set_num_threads(threads)
    try:
        result = run(corpus, split=split, max_songs=max_songs, long_minutes=long_minutes,
                     threads=threads, progress=True, separator=separator, singers=singers,
                     shifts=tuple(shifts), precision=precision)
    except (CorpusError, FileNotFoundError, ValueError, RuntimeError) as e:
        fail(str(e))
    result.print()
    if json_out:
        result.save(json_out)
        print(f"wrote {json_out}", file=sys.stderr)
