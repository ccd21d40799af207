"""Singer bench: same-singer retrieval at track level, and singer gender, on the demo corpus.

Every sung song of a split gets one track vector per system (mean of its voiced windows,
L2-normalised); each track queries all the others of the same split (leave-one-track-out)
and a hit is a track by the same singer. Systems, side by side in one run:

- ``mfcc``: MFCC mean+std baseline on the separated vocals (``mfcc_clean``: on clean stems);
- ``encoder_clean``: the contrastive encoder on the clean vocal stems (upper bound);
- ``encoder_separated``: the encoder on separated vocals (what ingest does);
- ``encoder_mixture``: the encoder on the raw mixture (no separation).

Voiced windows come from the vocals the system sees (clean stems for the clean systems,
separated vocals otherwise, as in ingest). Settings: (a) ``test_seen`` songs (singers seen
in training, unseen tunes) -> ``top1_seen``, ``map_seen``; (b) ``test`` songs (unseen
singers and tunes) -> ``top1_unseen``, ``map_unseen``, ``gender_acc``. The encoder's gender
classifier is the shipped one; the other systems get the same logistic regression fitted on
their own vectors of ``train`` songs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.bench.result import BenchResult
from recsys.bench.vocals import resolve_separator, separated_path, separated_vocals

SYSTEMS = ("mfcc", "mfcc_clean", "encoder_clean", "encoder_separated", "encoder_mixture")
DEFAULT_CACHE = Path("data/cache/timbre")


@dataclass
class TrackVectors:
    """Per system: ``(n_tracks, dim)`` vectors in ``song_ids`` order."""

    song_ids: list[str] = field(default_factory=list)
    singers: list[str] = field(default_factory=list)
    genders: list[str] = field(default_factory=list)
    vectors: dict[str, list[np.ndarray]] = field(default_factory=dict)
    no_voiced: dict[str, int] = field(default_factory=dict)
    pitches: list[float] = field(default_factory=list)  # median sung pitch, separated vocals

    def matrix(self, system: str) -> np.ndarray:
        return np.stack(self.vectors[system])


def embed_songs(
    songs, encoder, baseline, separator, label: str, cache: Path,
    systems: tuple[str, ...] = SYSTEMS, advance: Callable[[], None] | None = None,
    weighted: bool = False, pitch: bool = False,
) -> TrackVectors:
    """Track vectors of every sung song for each system (see the module docstring).

    Separated vocals must also carry a share of the mixture's energy to count as voiced, as
    in ingest. ``weighted``: track vectors weigh windows by their voicing score. ``pitch``:
    also the median sung pitch of the separated vocals (for a gender classifier that takes
    it). A sung song where no window passes the voicing test falls back to all its windows
    (and is counted in ``no_voiced``) so every song stays in the evaluation."""
    from embeddings import audio
    from embeddings.gender import median_pitch
    from embeddings.pitch import contour
    from embeddings.timbre import track_vector
    from embeddings.voicing import VoicingConfig, voicing_scores
    from embeddings.windows import cut

    min_score = VoicingConfig().min_voiced_fraction

    out = TrackVectors(vectors={s: [] for s in systems}, no_voiced={"clean": 0, "separated": 0})
    for song in songs:
        if song.instrumental or not song.singer_id:
            continue
        clean = audio.load(song.vocals)
        sep = separated_vocals(song, separator, label, cache)
        mix = audio.load(song.mixture)
        wc, ws, wm = cut(clean), cut(sep), cut(mix)
        same_cut = len(wm) == len(ws)  # the mixture is cut like the separated vocals
        sc = voicing_scores(wc.audio, clean)
        ss = voicing_scores(ws.audio, sep, wm.audio if same_cut else None)
        vc, vs = sc >= min_score, ss >= min_score
        if not vc.any():
            out.no_voiced["clean"] += 1
            vc[:], sc[:] = True, 1.0
        if not vs.any():
            out.no_voiced["separated"] += 1
            vs[:], ss[:] = True, 1.0
        vm, sm = (vs, ss) if same_cut else (np.ones(len(wm), bool), np.ones(len(wm)))
        inputs = {
            "mfcc": (baseline, ws.audio[vs], ss[vs]),
            "mfcc_clean": (baseline, wc.audio[vc], sc[vc]),
            "encoder_clean": (encoder, wc.audio[vc], sc[vc]),
            "encoder_separated": (encoder, ws.audio[vs], ss[vs]),
            "encoder_mixture": (encoder, wm.audio[vm], sm[vm]),
        }
        for system in systems:
            model, windows, scores = inputs[system]
            out.vectors[system].append(track_vector(model.embed(windows),
                                                    weights=scores if weighted else None))
        out.pitches.append(median_pitch(contour(sep)) if pitch else float("nan"))
        out.song_ids.append(song.song_id)
        out.singers.append(song.singer_id)
        out.genders.append(song.gender)
        if advance:
            advance()
    return out


def run(
    corpus_dir: Path,
    encoder=None,
    separator: str = "auto",
    cache: Path = DEFAULT_CACHE,
    gender_train_max: int = 100,
    seed: int = 0,
    progress: bool = True,
    weighted: bool | None = None,
) -> BenchResult:
    """Run the singer bench on a corpus; ``encoder`` defaults to the shipped contrastive one.

    ``weighted``: track vectors weigh windows by voicing score; by default as the encoder
    was validated (its ``meta["track_vector"]``)."""
    from rich.progress import Progress

    from embeddings.gender import GenderClassifier, load_for
    from embeddings.timbre import MfccBaseline, load_pretrained, voicing_weighted
    from embeddings.timbre_train import same_singer_retrieval
    from recsys.corpus import Corpus

    corpus = Corpus(corpus_dir)
    encoder = encoder or load_pretrained()
    if weighted is None:
        weighted = voicing_weighted(encoder)
    shipped = load_for(encoder)
    pitch = shipped is not None and shipped.uses_pitch
    baseline = MfccBaseline()
    label, sep = resolve_separator(separator)
    sung = {
        split: [s for s in corpus.songs(split) if not s.instrumental and s.singer_id]
        for split in ("test_seen", "test", "train")
    }
    rng = np.random.default_rng(seed)
    # A random subset of train songs for the baselines' gender classifiers, taking songs whose
    # separated vocals are already cached first (separation is the slow part).
    order = rng.permutation(len(sung["train"]))
    cached = [separated_path(sung["train"][i], label, cache).exists() for i in order]
    order = [i for _, i in sorted(zip([not c for c in cached], order, strict=True),
                                  key=lambda x: x[0])]
    train = [sung["train"][i] for i in sorted(order[:gender_train_max])]
    total = len(sung["test_seen"]) + len(sung["test"]) + len(train)
    with Progress(disable=not progress) as bar:
        task = bar.add_task("singer bench", total=total)

        def advance():
            bar.advance(task)

        vecs = {
            split: embed_songs(songs, encoder, baseline, sep, label, cache, advance=advance,
                               weighted=weighted, pitch=pitch and split == "test")
            for split, songs in (("test_seen", sung["test_seen"]), ("test", sung["test"]),
                                 ("train", train))
        }

    systems: dict[str, dict[str, float]] = {}
    n_queries = {}
    for system in SYSTEMS:
        seen = same_singer_retrieval(vecs["test_seen"].matrix(system), vecs["test_seen"].singers)
        unseen = same_singer_retrieval(vecs["test"].matrix(system), vecs["test"].singers)
        pitches = None
        if system == "encoder_separated" and shipped is not None:
            clf = shipped
            pitches = np.array(vecs["test"].pitches) if shipped.uses_pitch else None
        else:
            clf = GenderClassifier.fit(vecs["train"].matrix(system), vecs["train"].genders)
        predicted, _ = clf.predict(vecs["test"].matrix(system), pitches)
        gender_acc = float(np.mean([p == g for p, g in zip(predicted, vecs["test"].genders,
                                                            strict=True)]))
        systems[system] = {
            "top1_seen": seen["top1"], "map_seen": seen["map"],
            "top1_unseen": unseen["top1"], "map_unseen": unseen["map"],
            "gender_acc": gender_acc,
        }
        n_queries[system] = {"seen": seen["n_queries"], "unseen": unseen["n_queries"]}

    mfcc_map = systems["mfcc"]["map_unseen"]
    notes = {
        "separator": label,
        "encoder": encoder.version,
        "gender_classifier": {
            "encoder_separated": (
                (shipped.version + f" ({shipped.kind}; inputs: track vector"
                 + (" + median sung pitch of the separated vocals)" if shipped.uses_pitch
                    else ")"))
                if shipped else "fitted on train vectors"),
            "others": f"logistic regression fitted on {len(train)} train songs' vectors",
        },
        "gender_classifier_selection": (
            {k: shipped.meta[k] for k in ("selected_on", "classifier", "inputs", "c",
                                          "leave_singers_out_cv_acc", "train_tracks",
                                          "train_singers", "command") if k in shipped.meta}
            if shipped else None),
        "track_vector": "voicing-weighted mean of voiced windows" if weighted
        else "mean of voiced windows",
        "voicing": "separated vocals: loud + periodic frames and a share of the mixture's "
                   "energy (as ingest)",
        "tracks": {split: len(v.song_ids) for split, v in vecs.items()},
        "singers": {split: len(set(v.singers)) for split, v in vecs.items()},
        "queries_with_a_same_singer_track": n_queries["mfcc"],
        "songs_without_voiced_window": {split: v.no_voiced for split, v in vecs.items()},
        "bars": {
            "top1_seen_separated>=0.95": systems["encoder_separated"]["top1_seen"] >= 0.95,
            "map_unseen_separated>=1.5x_mfcc": (
                systems["encoder_separated"]["map_unseen"] >= 1.5 * mfcc_map
            ),
            "gender_acc_separated>=0.95": systems["encoder_separated"]["gender_acc"] >= 0.95,
        },
    }
    return BenchResult(
        bench="singer", split="test_seen (a) + test (b)",
        n_items=len(vecs["test_seen"].song_ids) + len(vecs["test"].song_ids),
        systems=systems, notes=notes,
    )
