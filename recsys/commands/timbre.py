"""`recsys train timbre`, `recsys bench singer`, `recsys plot singers`: the singer-timbre model."""

from __future__ import annotations

from pathlib import Path

import typer

from recsys.commands import bench_app, fail, plot_app, separator_option, train_app

DEFAULT_CACHE = Path("data/cache/timbre")


def _sung(songs):
    return [s for s in songs if not s.instrumental and s.singer_id]


def song_windows(song, vocals: Path, label: str, config, per_track: int, copies: bool,
                 seed: int, cache: Path):
    """One song's training windows (+ copies, + clean and accompaniment stems at the same
    windows), cached by the vocals' file stamp so a grown corpus only adds work; ``None``
    when the song has no voiced window. Voicing asks the vocals for a share of the
    mixture's energy, as ingest does."""
    import hashlib
    import json

    from embeddings.timbre_train import WindowSet, build_window_set
    from recsys.bench.vocals import file_stamp

    recipe = json.dumps([vars(config), copies, seed, "mixture+stems"], sort_keys=True)
    recipe = hashlib.sha1(recipe.encode()).hexdigest()[:8]
    path = (cache / "windows" / label
            / f"{song.song_id}-{file_stamp(vocals)}-{recipe}-{per_track}.npz")
    if path.exists():
        return WindowSet.load(path)
    song_seed = seed + int(hashlib.sha1(song.song_id.encode()).hexdigest()[:6], 16)
    try:
        part = build_window_set([vocals], [0], config, per_track, copies, seed=song_seed,
                                mixtures=[song.mixture],
                                stems=[(song.vocals, song.accompaniment)])
    except ValueError:
        return None
    part.save(path)
    return part


def _training_songs(data: Path, extra: list[Path]):
    """``(corpus, extra corpora, {"train": songs, "val": songs})``: the sung train and val
    songs of ``data`` plus those of each ``extra`` corpus that may join them
    (:func:`recsys.corpus.extension_songs`); a bad corpus exits with its error."""
    from recsys.corpus import Corpus, CorpusError, extension_songs

    try:
        corpus = Corpus(data)
        extras = [Corpus(e) for e in extra]
        songs = {split: _sung(corpus.songs(split) + [
            s for e in extras for s in extension_songs(corpus, e, split)])
            for split in ("train", "val")}
    except CorpusError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    return corpus, extras, songs


def _separate_all(songs: dict, source: str, separator: str, cache: Path, console) -> str:
    """Separate (and cache) every song of ``songs``' splits unless ``source`` is
    ``"clean"``; returns the vocals' label (the separator's, or ``"clean"``)."""
    from rich.progress import Progress

    from recsys.bench.vocals import separated_vocals

    if source == "clean":
        return "clean"
    label, sep = separator_option(separator)
    with Progress(console=console) as bar:
        todo = [s for split in songs.values() for s in split]
        task = bar.add_task(f"separating ({label})", total=len(todo))
        for song in todo:
            separated_vocals(song, sep, label, cache)
            bar.advance(task)
    return label


def _vocals_path(song, source: str, label: str, cache: Path) -> Path:
    from recsys.bench.vocals import separated_path

    # "clean" as the separator (resolve_separator) also means the clean stems
    return (song.vocals if source == "clean" or label == "clean"
            else separated_path(song, label, cache))


def split_window_set(songs: list, source: str, label: str, config, per_track: int,
                     copies: bool, seed: int, cache: Path, singer_index: dict, console,
                     name: str):
    """The window set of one split's ``songs`` (track ``i`` is ``songs[i]``; songs without
    a voiced window are left out), singers numbered by ``singer_index``."""
    import numpy as np
    from rich.progress import Progress

    from embeddings.timbre_train import WindowSet

    parts = []
    with Progress(console=console) as bar:
        task = bar.add_task(f"windows{' + copies' if copies else ''} ({name})",
                            total=len(songs))
        for i, song in enumerate(songs):
            part = song_windows(song, _vocals_path(song, source, label, cache), label, config,
                                per_track, copies, seed, cache)
            bar.advance(task)
            if part is None:  # no voiced window in this song
                continue
            part.singer[:] = singer_index[song.singer_id]
            part.track[:] = i
            part.gender = np.full(len(part), song.gender == "male", dtype=np.int64)
            parts.append(part)
    return WindowSet.concat(parts)


def _pitch_reader(songs: dict, source: str, label: str, cache: Path):
    """``pitch_of(split, track) -> MIDI``: the median sung pitch of the vocals the encoder
    sees for ``songs[split][track]`` (ingest: its separated vocals)."""
    from embeddings import audio
    from embeddings.gender import median_pitch
    from embeddings.pitch import contour

    def pitch_of(split: str, t: int) -> float:
        return median_pitch(contour(audio.load(
            _vocals_path(songs[split][t], source, label, cache))))

    return pitch_of


@train_app.command("timbre")
def train_timbre(
    data: Path = typer.Option(..., "--data", help="A corpus built by `recsys corpus build`."),
    extra: list[Path] = typer.Option([], "--extra", help="Another corpus (repeat) whose train "
                                     "and val songs join --data's, less those sung by --data's "
                                     "test singers or set to its tunes (build it with "
                                     "--tune-offset)."),
    source: str = typer.Option("separated", help="Train on 'separated' vocals (what ingest "
                               "sees) or the 'clean' vocal stems (for comparison)."),
    separator: str = typer.Option("auto", help="'auto' (BSRNN, else REPET-SIM), a name, "
                                  "or a BSRNN .safetensors file ('...,shifts=2': "
                                  "2 shifted BSRNN passes; ',precision=bf16')."),
    steps: int = typer.Option(3000, help="Optimiser steps."),
    singers_per_batch: int = typer.Option(16, help="Singers per batch (2 windows each)."),
    windows_per_track: int = typer.Option(8, help="Voiced windows cached per training song."),
    copies: bool = typer.Option(True, help="Pitch-shift / time-stretch copies as negatives."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (warm-up, then cosine)."),
    clean_prob: float = typer.Option(0.0, help="Share of training windows replaced by the "
                                     "clean vocal stem with accompaniment bled in."),
    bleed_snr: tuple[float, float] = typer.Option((0.0, 20.0), help="Vocal-to-accompaniment "
                                                  "ratio (dB) range of that bleed."),
    residue_prob: float = typer.Option(0.0, help="Share of separated windows given extra "
                                       "accompaniment residue."),
    residue_snr: tuple[float, float] = typer.Option((10.0, 25.0), help="Vocal-to-residue "
                                                    "ratio (dB) range of that residue."),
    weighted: bool = typer.Option(False, help="Validate with track vectors weighted by "
                                  "each window's voicing score (as ingest should then do)."),
    val_windows: int = typer.Option(12, help="Voiced windows per val song (12 = all of a "
                                    "20 s song)."),
    gender_weight: float = typer.Option(0.0, help="Weight of a joint male/female loss on "
                                        "the embedding (keeps a shared gender direction)."),
    holdout_singers: int = typer.Option(0, help="Leave this many training singers (half "
                                        "of each gender) out of training and report gender "
                                        "accuracy and retrieval on their songs: a check on "
                                        "singers the encoder never heard, which val (seen "
                                        "singers) is not."),
    gender_pitch: bool = typer.Option(True, help="Offer the gender classifier the track's "
                                      "median sung pitch as a second input (kept only if "
                                      "leave-singers-out cross-validation prefers it)."),
    eval_every: int = typer.Option(250, help="Validate (val split) every N steps."),
    out: Path = typer.Option(Path("embeddings/weights/timbre-contrastive.safetensors"),
                             help="Best weights (by val mAP) go here, + .json; the gender "
                             "classifier beside it as <name>-gender.*"),
    cache: Path = typer.Option(DEFAULT_CACHE, help="Separated vocals and window caches."),
    init: Path | None = typer.Option(None, help="Start from these weights (fine-tuning)."),
    threads: int = typer.Option(1, help="torch CPU threads."),
    seed: int = typer.Option(0),
):
    """Train the contrastive timbre encoder on the train split, select on val, fit the
    gender classifier on train track vectors, and write both."""
    import hashlib
    import json

    import numpy as np
    import torch
    from rich.console import Console
    from rich.progress import Progress

    from embeddings.gender import path_beside
    from embeddings.timbre import WEIGHTED_TRACK_VECTOR, TimbreConfig, TimbreNet
    from embeddings.timbre_train import TrainConfig, WindowSet, evaluate, train
    from recsys.bench.result import invoked_command

    if source not in ("clean", "separated"):
        raise typer.BadParameter("--source is 'clean' or 'separated'")
    console = Console()
    torch.set_num_threads(threads)
    corpus, extras, songs = _training_songs(data, extra)
    if holdout_singers:
        held = _holdout(songs["train"], holdout_singers, seed)
        songs["holdout"] = [s for split in ("train", "val") for s in songs[split]
                            if s.singer_id in held]
        for split in ("train", "val"):
            songs[split] = [s for s in songs[split] if s.singer_id not in held]
    singer_ids = sorted({s.singer_id for split in songs.values() for s in split})
    singer_index = {s: i for i, s in enumerate(singer_ids)}
    # Fine-tuning keeps the initial model's shape (and so its log-mel features).
    config = TimbreNet.load(init).config if init else TimbreConfig()

    label = _separate_all(songs, source, separator, cache, console)

    def window_set(split: str, per_track: int, copies: bool = copies) -> WindowSet:
        return split_window_set(songs[split], source, label, config, per_track,
                                copies and split == "train", seed, cache, singer_index,
                                console, split)

    sets = {"train": window_set("train", windows_per_track),
            "val": window_set("val", val_windows)}
    if holdout_singers:
        sets["holdout"] = window_set("holdout", val_windows)
    console.print(f"train windows {len(sets['train'])} of {len(songs['train'])} songs, "
                  f"val windows {len(sets['val'])} of {len(songs['val'])} songs")

    torch.manual_seed(seed)
    model = TimbreNet.load(init) if init else TimbreNet(config)
    cfg = TrainConfig(steps=steps, singers_per_batch=singers_per_batch, lr=lr, copies=copies,
                      eval_every=eval_every, seed=seed, clean_prob=clean_prob,
                      bleed_snr_db=bleed_snr, residue_prob=residue_prob,
                      residue_snr_db=residue_snr, weighted_eval=weighted,
                      gender_weight=gender_weight)
    meta = {"source": source, "separator": label, "corpus": str(corpus.root),
            "extra": [str(e.root) for e in extras], "train_songs": len(songs["train"]),
            "train_singers": len({s.singer_id for s in songs["train"]}),
            "command": invoked_command(), "train_config": vars(cfg),
            "init": str(init) if init else None}
    log_path = out.with_suffix(".log.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)

    def checkpoint(net, metrics):
        digest = hashlib.sha1(b"".join(
            t.detach().cpu().numpy().tobytes() for t in net.state_dict().values()
        )).hexdigest()[:8]
        net.version = f"timbre-contrastive-{digest}"
        net.save(out, meta={**meta, "val": metrics})

    def on_eval(step, metrics):
        with log_path.open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in metrics.items()))

    with Progress(console=console) as bar:
        task = bar.add_task("training", total=steps)
        # Val songs query among val + train songs: many more queries than val alone.
        train(model, sets["train"], cfg, val=sets["val"], gallery=sets["train"],
              on_step=lambda step, loss: bar.update(task, completed=step,
                                                    description=f"training loss {loss:.3f}"),
              on_eval=on_eval, checkpoint=checkpoint)

    best = TimbreNet.load(out)
    console.print(f"best: {best.meta['val']}")

    pitch_of = _pitch_reader(songs, source, label, cache)
    # every voiced window of each train song, no copies: as `recsys train gender` fits it
    gender_sets = {"train": window_set("train", val_windows, copies=False),
                   "val": sets["val"]}
    clf, gender_meta = fit_gender(best, gender_sets, songs, weighted,
                                  pitch_of if gender_pitch else None)
    val_acc = gender_meta["val_acc"]
    clf.save(path_beside(out), meta=gender_meta)
    if holdout_singers:
        vectors, tracks = track_vectors(best, sets["holdout"], weighted)
        pitches = (None if not gender_pitch
                   else np.array([pitch_of("holdout", t) for t in tracks]))
        truth = np.array([songs["holdout"][t].gender for t in tracks])
        gender_meta["holdout_acc"] = float(np.mean(
            np.array(clf.predict(vectors, pitches)[0]) == truth))
        gender_meta["holdout"] = {"singers": sorted({s.singer_id for s in songs["holdout"]}),
                                  "tracks": len(tracks),
                                  **evaluate(best, sets["holdout"], weighted=weighted)}
        console.print(f"held-out singers: {gender_meta['holdout']}, gender accuracy "
                      f"{gender_meta['holdout_acc']:.3f}")
    best.save(out, meta={**best.meta, "gender_val_acc": val_acc, "gender": gender_meta,
                         "track_vector": WEIGHTED_TRACK_VECTOR if weighted else "mean",
                         "val_final": evaluate(best, sets["val"], sets["train"],
                                               weighted=weighted)})
    console.print(f"wrote {out} ({best.version}) and its gender classifier "
                  f"({gender_meta['classifier']}, val accuracy {val_acc:.3f})")


def _holdout(songs, n: int, seed: int) -> set[str]:
    """``n`` singers of ``songs`` (half female, half male; drawn with ``seed``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_gender = {g: sorted({s.singer_id for s in songs if s.gender == g})
                 for g in ("female", "male")}
    picked = set()
    for i, g in enumerate(("female", "male")):
        k = (n + 1 - i) // 2
        if k > len(by_gender[g]) - 2:
            raise typer.BadParameter(f"--holdout-singers {n} leaves too few {g} singers")
        picked |= set(rng.choice(by_gender[g], size=k, replace=False).tolist())
    return picked


def track_vectors(model, data_set, weighted: bool):
    """``(track vectors (tracks, dim), track numbers)`` of a window set in ``model``'s space
    (voicing-weighted means if ``weighted``)."""
    import torch

    from embeddings.timbre_train import track_means

    with torch.no_grad():
        z = model.embed_logmel(torch.from_numpy(data_set.logmel).float()).numpy()
    return track_means(z, data_set, weighted)


def fit_gender(model, sets: dict, songs: dict, weighted: bool, pitch_of=None):
    """The gender classifier in ``model``'s space, fitted on the train songs' track vectors
    (``sets["train"]``; voicing-weighted if ``weighted``). With ``pitch_of(split, track) ->
    MIDI``, the track's median sung pitch is a candidate second input.

    The kind, inputs and setting (:func:`embeddings.gender.candidates`) are chosen for
    singers the classifier has never seen, which is what the product meets: by
    leave-singers-out cross-validated accuracy on the train songs
    (:func:`embeddings.gender.leave_singers_out_accuracy`), ties broken by accuracy on the
    val songs (``sets["val"]``: other songs of the train singers), then by the simpler
    candidate. Val alone cannot choose: it holds only singers the classifier was fitted on,
    where every option scores near 1. Returns ``(classifier, meta)``."""
    import numpy as np

    from embeddings.gender import candidates, leave_singers_out_accuracy

    def split_vectors(split: str):
        v, tracks = track_vectors(model, sets[split], weighted)
        p = None if pitch_of is None else np.array([pitch_of(split, t) for t in tracks])
        return v, tracks, p

    vt, tt, pt = split_vectors("train")
    vv, tv, pv = split_vectors("val")
    genders = [songs["train"][t].gender for t in tt]
    singers = [songs["train"][t].singer_id for t in tt]
    truth = np.array([songs["val"][t].gender for t in tv])
    options = candidates(with_pitch=pitch_of is not None)
    cv, val_acc, fitted = {}, {}, {}
    for name, fit in options.items():
        cv[name] = leave_singers_out_accuracy(fit, vt, genders, singers, pt)
        fitted[name] = fit(vt, genders, pitches=pt)
        fitted[name].encoder_version = model.version
        val_acc[name] = float(np.mean(np.array(fitted[name].predict(vv, pv)[0]) == truth))
    simpler = {name: -i for i, name in enumerate(options)}
    best = max(options, key=lambda n: (cv[n], val_acc[n], simpler[n]))
    clf = fitted[best]
    # the version names the fitted weights, so a refit in the same space is told apart
    clf.version = f"gender-{clf.kind}-{model.version}-{clf.digest()}"
    meta = {"classifier": best, "inputs": "vector+pitch" if clf.uses_pitch else "vector",
            "val_acc": val_acc[best], "leave_singers_out_cv_acc": cv[best],
            "val_acc_by_candidate": val_acc, "leave_singers_out_cv_acc_by_candidate": cv,
            "train_tracks": len(tt), "train_singers": len(set(singers)),
            "pitch_input": clf.uses_pitch,
            "selected_on": "leave-singers-out CV accuracy on train (folds stratified by "
                           "gender), then val accuracy"}
    return clf, meta


@train_app.command("gender")
def train_gender(
    data: Path = typer.Option(..., "--data", help="A corpus built by `recsys corpus build`."),
    extra: list[Path] = typer.Option([], "--extra", help="Another corpus (repeat) whose train "
                                     "and val songs join --data's (as `recsys train timbre`)."),
    weights: Path | None = typer.Option(None, help="Timbre encoder weights (default: "
                                        "shipped)."),
    separator: str = typer.Option("auto", help="'auto' (BSRNN, else REPET-SIM), a name, "
                                  "or a BSRNN .safetensors file ('...,shifts=2': "
                                  "2 shifted BSRNN passes; ',precision=bf16')."),
    pitch: bool = typer.Option(True, help="Offer the track's median sung pitch as a second "
                               "input (kept only if cross-validation prefers it)."),
    windows_per_track: int = typer.Option(12, help="Voiced windows per song (12 = all of a "
                                          "20 s song)."),
    out: Path | None = typer.Option(None, help="Where to write the classifier (default: "
                                    "beside the encoder, <encoder>-gender.safetensors)."),
    cache: Path = typer.Option(DEFAULT_CACHE, help="Separated vocals and window caches."),
    threads: int = typer.Option(1, help="torch CPU threads."),
    seed: int = typer.Option(0, help="Which voiced windows a longer song gives (as "
                             "`recsys train timbre --seed`)."),
):
    """Fit the singer gender classifier of a trained timbre encoder (as `recsys train timbre`
    does after training) on the separated vocals of the train songs, without retraining the
    encoder."""
    import torch
    from rich.console import Console

    from embeddings.gender import path_beside
    from embeddings.timbre import PRETRAINED, TimbreNet, TimbreWeightsError, voicing_weighted
    from recsys.bench.result import invoked_command

    console = Console()
    torch.set_num_threads(threads)
    _, _, songs = _training_songs(data, extra)
    singer_index = {s: i for i, s in enumerate(sorted({s.singer_id for split in songs.values()
                                                       for s in split}))}
    try:
        encoder = TimbreNet.load(weights or PRETRAINED)
        label = _separate_all(songs, "separated", separator, cache, console)
        sets = {split: split_window_set(songs[split], "separated", label, encoder.config,
                                        windows_per_track, False, seed, cache, singer_index,
                                        console, split)
                for split in ("train", "val")}
        pitch_of = _pitch_reader(songs, "separated", label, cache) if pitch else None
        clf, meta = fit_gender(encoder, sets, songs, voicing_weighted(encoder), pitch_of)
    except (TimbreWeightsError, RuntimeError, ValueError) as e:
        # missing weights, an unknown separator, no voiced song, one gender or one singer
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    path = out or path_beside(weights or PRETRAINED)
    clf.save(path, meta={**meta, "separator": label, "command": invoked_command()})
    console.print(f"wrote {path}: {meta['classifier']}, leave-singers-out "
                  f"CV accuracy {meta['leave_singers_out_cv_acc']:.3f}, val accuracy "
                  f"{meta['val_acc']:.3f}")


@bench_app.command("singer")
def bench_singer(
    corpus: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
    weights: Path | None = typer.Option(None, help="Encoder weights (default: shipped)."),
    separator: str = typer.Option("auto", help="'auto' (BSRNN, else REPET-SIM), a name, "
                                  "or a BSRNN .safetensors file ('...,shifts=2': "
                                  "2 shifted BSRNN passes; ',precision=bf16')."),
    cache: Path = typer.Option(DEFAULT_CACHE, help="Where separated vocals are cached."),
    gender_train_max: int = typer.Option(100, help="Train songs the baselines' gender "
                                         "classifiers are fitted on."),
    threads: int = typer.Option(1, help="torch CPU threads."),
):
    """Same-singer retrieval (top-1, mAP; seen and unseen singers) and gender accuracy for
    the MFCC baseline and the encoder on clean, separated and mixture audio."""
    import torch

    from embeddings.timbre import TimbreNet, TimbreWeightsError
    from recsys.bench.singer import run
    from recsys.corpus import CorpusError

    torch.set_num_threads(threads)
    try:
        encoder = TimbreNet.load(weights) if weights else None
        result = run(corpus, encoder=encoder, separator=separator, cache=cache,
                     gender_train_max=gender_train_max)
    except (CorpusError, TimbreWeightsError, RuntimeError) as e:
        # no corpus, weights that do not load, a separator that does not load
        fail(str(e))
    result.print()
    typer.echo(f"notes: {result.notes}")
    if json_out:
        result.save(json_out)


@plot_app.command("singers")
def plot_singers(
    corpus: Path = typer.Option(..., help="A corpus built by `recsys corpus build`."),
    out: Path = typer.Option(Path("docs/singers.png"), help="PNG to write."),
    model: str = typer.Option("contrastive", help="'contrastive' or 'mfcc'."),
    weights: Path | None = typer.Option(None, help="Encoder weights (default: shipped)."),
    separator: str = typer.Option("auto", help="Separator for the vocals."),
    songs_per_singer: int = typer.Option(4, min=1, help="Songs averaged into each artist vector."),
    cache: Path = typer.Option(DEFAULT_CACHE, help="Where separated vocals are cached."),
    seed: int = typer.Option(0),
):
    """2-D t-SNE map of artist vectors (mean of their track vectors), coloured by Festival
    voice, marked by gender; filled markers are training singers, hollow ones unseen."""
    import os
    from collections import defaultdict

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.manifold import TSNE

    from embeddings.timbre import (
        MfccBaseline,
        TimbreNet,
        TimbreWeightsError,
        artist_vector,
        load_pretrained,
    )
    from recsys.bench.singer import embed_songs
    from recsys.bench.vocals import separated_path
    from recsys.corpus import Corpus, CorpusError

    if model not in ("contrastive", "mfcc"):
        raise typer.BadParameter("--model is 'contrastive' or 'mfcc'")
    if out.is_dir():
        fail(f"--out {out} is a folder; give the path of a .png file")
    if out.parent.exists() and not out.parent.is_dir():
        fail(f"--out {out}: {out.parent} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # before minutes of embedding
    except OSError as e:
        fail(f"--out {out}: {e}")
    try:
        c = Corpus(corpus)
        encoder = TimbreNet.load(weights) if weights else load_pretrained()
    except (CorpusError, TimbreWeightsError) as e:
        fail(str(e))
    label, sep = separator_option(separator)
    per_singer = defaultdict(list)
    # Songs with cached separated vocals first: separation is the slow part.
    for song in sorted(_sung(c.songs()),
                       key=lambda s: not separated_path(s, label, cache).exists()):
        if len(per_singer[song.singer_id]) < songs_per_singer:
            per_singer[song.singer_id].append(song)
    songs = [s for group in per_singer.values() for s in group]
    system = "mfcc" if model == "mfcc" else "encoder_separated"
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task("embedding songs", total=len(songs))
        vecs = embed_songs(songs, encoder, MfccBaseline(), sep, label, cache, systems=(system,),
                           advance=lambda: bar.advance(task))
    by_singer = defaultdict(list)
    for sid, v in zip(vecs.singers, vecs.vectors[system], strict=True):
        by_singer[sid].append(v)
    singers = {s.singer_id: s for s in c.singers()}
    ids = sorted(by_singer)
    if len(ids) < 3:
        raise typer.BadParameter("need at least 3 singers with sung songs to draw a map")
    artists = np.stack([artist_vector(np.stack(by_singer[s])) for s in ids])
    xy = TSNE(n_components=2, perplexity=min(10.0, (len(ids) - 1) / 3), metric="cosine",
              init="pca", random_state=seed).fit_transform(artists)

    voices = sorted({singers[s].voice for s in ids})
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9, 7))
    for i, sid in enumerate(ids):
        s = singers[sid]
        colour = colours(voices.index(s.voice) % 10)
        ax.scatter(*xy[i], marker="^" if s.gender == "male" else "o", s=80,
                   facecolors=colour if s.split == "train" else "none", edgecolors=colour)
        ax.annotate(s.name, xy[i], fontsize=6, xytext=(4, 3), textcoords="offset points")
    for v in voices:
        ax.scatter([], [], color=colours(voices.index(v) % 10), label=v)
    ax.scatter([], [], marker="^", color="grey", label="male")
    ax.scatter([], [], marker="o", color="grey", label="female")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="grey", label="unseen singer")
    ax.legend(fontsize=7, loc="best")
    name = encoder.version if model != "mfcc" else "mfcc"
    ax.set_title(f"Singers: artist vectors ({name}, {label} vocals), t-SNE")
    ax.set_xticks([])
    ax.set_yticks([])
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.tight_layout()
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        fail(f"--out {out} could not be written: {e}")
    finally:
        plt.close(fig)
    typer.echo(f"wrote {out} ({len(ids)} singers, {len(songs)} songs)")
