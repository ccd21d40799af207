"""Tagging benchmark: logistic-regression baseline vs. tagger without / with joint embedding.

Track level: every system tags each window of a track's mixture; probabilities are
averaged per track and joint vectors averaged and re-normalised
(``embeddings.tagging.track_tags``). Metrics, all from scikit-learn:

- ``roc_auc``, ``pr_auc``: macro averages over the tags that have both positive and
  negative tracks in the split (the others are listed in ``notes["skipped_tags"]``);
- ``p_at_10``: precision@10 of tag search for the fixed multi-tag :data:`QUERIES` as the
  product runs it (``tag-prob`` space): test tracks are ranked by cosine between their
  L2-normalised tag probabilities and the normalised multi-hot query; a track is relevant
  when it carries every tag of the query;
- ``p_at_10_joint``: the same queries ranked by cosine between the track's joint vector and
  ``embed_tags(query)`` (the joint audio-tag space). Queries with no relevant
  track in the split are skipped and listed; ``notes["p_at_10_ceiling"]`` is the best
  score possible given how many relevant tracks each query has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Twenty fixed multi-tag queries (AND semantics), chosen from the vocabulary's design
# (instrument x style x voice x tempo/loudness), not from test-split statistics.
QUERIES: list[tuple[str, ...]] = [
    ("piano", "slow"),
    ("female vocal", "folk"),
    ("male vocal", "rock"),
    ("no vocals", "piano"),
    ("drums", "fast"),
    ("electric guitar", "rock"),
    ("strings", "classical"),
    ("synth", "electronic"),
    ("female vocal", "piano"),
    ("male vocal", "guitar"),
    ("quiet", "calm"),
    ("loud", "energetic"),
    ("harp", "celtic"),
    ("harpsichord", "baroque"),
    ("jazz", "piano"),
    ("banjo", "country"),
    ("no vocals", "drums"),
    ("dance", "beat"),
    ("ballad", "slow", "piano"),
    ("female vocal", "pop", "drums"),
]

SYSTEMS = ("logreg", "no_je", "je")


def load_systems(weights_dir: Path | None = None) -> dict:
    """The three systems, from the shipped weights or from ``weights_dir`` (same names)."""
    from embeddings import tagging

    if weights_dir is None:
        return {"logreg": tagging.load_logreg_baseline(),
                "no_je": tagging.load_pretrained("no_je"),
                "je": tagging.load_pretrained("je")}
    weights_dir = Path(weights_dir)
    return {
        "logreg": tagging.LogRegTagger.load(weights_dir / tagging.LOGREG_WEIGHTS.name),
        "no_je": tagging.JetaTagger.load(weights_dir / tagging.NO_JE_WEIGHTS.name),
        "je": tagging.JetaTagger.load(weights_dir / tagging.JE_WEIGHTS.name),
    }


def run(
    corpus_dir: str | Path,
    split: str = "test",
    systems: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
):
    """Tag every mixture of the corpus' ``split`` with every system; returns a ``BenchResult``.
    Train positives per tag count the songs of the extra corpora the JE tagger was trained
    with too (``--extra``, read from its weights' provenance)."""
    from recsys.corpus import Corpus, CorpusError, extension_songs

    corpus = Corpus(corpus_dir)
    songs = corpus.songs(split)[:limit] if limit else corpus.songs(split)
    if not songs:
        raise CorpusError(f"{corpus.root} has no songs in split {split!r}")
    systems = systems or load_systems()
    extras = getattr(systems.get("je"), "provenance", {}).get("extra", [])
    train = corpus.songs("train") + [s for e in extras
                                     for s in extension_songs(corpus, Corpus(e), "train")]
    result = evaluate([s.mixture for s in songs], [s.tags for s in songs], corpus.vocabulary,
                      split, systems, progress, source=str(corpus.root),
                      train_tags=[s.tags for s in train])
    result.notes["train_tracks"] = {"corpus": len(corpus.songs("train")),
                                    "extra": len(train) - len(corpus.songs("train")),
                                    "extra_corpora": extras}
    return result


def run_mtat(
    root: str | Path,
    split: str = "test",
    systems: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
):
    """The same on MagnaTagATune's ``split`` (folders d-f for test, see
    ``recsys.datasets.MTAT_SPLITS``) with its top-50 tags. Unreadable clips are skipped
    and counted in ``notes["unreadable"]``."""
    from recsys.datasets import DatasetError, load_magnatagatune

    mtat = load_magnatagatune(root)
    clips = mtat.split(split)[:limit] if limit else mtat.split(split)
    if not clips:
        raise DatasetError(f"MagnaTagATune: no clips with audio in split {split!r} under {root}")
    return evaluate([c.path for c in clips], [c.tags for c in clips], mtat.vocabulary, split,
                    systems, progress, source=f"MagnaTagATune {root}", skip_unreadable=True,
                    train_tags=[c.tags for c in mtat.split("train")])


def evaluate(
    paths: list[Path],
    tags: list[list[str]],
    vocabulary: list[str],
    split: str,
    systems: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    source: str = "",
    skip_unreadable: bool = False,
    train_tags: list[list[str]] | None = None,
):
    """Tag every audio file (``paths``, with its true ``tags``) with every system.

    ``train_tags`` (the tags of the training items) only adds each scored tag's number of
    training positives to ``notes["per_tag"]`` and lists the scored tags that have none: no
    model can learn those, and they weigh on the macro averages like any other tag.
    """
    from embeddings.audio import AudioError, load
    from embeddings.tagging import TaggerError, multi_hot, track_tags
    from embeddings.windows import cut
    from recsys.bench.result import BenchResult

    systems = systems if systems is not None else load_systems()
    for name, tagger in systems.items():
        if list(tagger.vocabulary) != list(vocabulary):
            raise TaggerError(f"system {name!r} was trained on another tag vocabulary than "
                              f"{source or 'the evaluation data'}'s")

    labels = np.stack([multi_hot(t, vocabulary) for t in tags]) > 0.5
    probs = {n: np.zeros((len(paths), len(vocabulary)), np.float32) for n in systems}
    joint = {n: np.zeros((len(paths), t.dim), np.float32) for n, t in systems.items()}
    readable = np.ones(len(paths), bool)
    for i, path in enumerate(paths):
        try:
            windows = cut(load(path)).audio
        except AudioError:
            if not skip_unreadable:
                raise
            readable[i] = False
        else:
            for name, tagger in systems.items():
                probs[name][i], joint[name][i] = track_tags(*tagger.predict(windows))
        if progress:
            progress(i + 1, len(paths))
    if not readable.any():
        raise TaggerError(f"none of the {len(paths)} audio files of {source} could be read")
    labels = labels[readable]
    probs = {n: p[readable] for n, p in probs.items()}
    joint = {n: j[readable] for n, j in joint.items()}
    n_items = int(readable.sum())

    n_pos = labels.sum(axis=0)
    scored = [t for t in range(len(vocabulary)) if 0 < n_pos[t] < n_items]
    skipped = [vocabulary[t] for t in range(len(vocabulary)) if t not in scored]
    queries, query_notes = _relevant_queries(labels, vocabulary)

    results, per_tag = {}, {vocabulary[t]: {"n_positive": int(n_pos[t])} for t in scored}
    if train_tags is not None:
        n_train = Counter(t for tags_ in train_tags for t in tags_)
        for tag, row in per_tag.items():
            row["n_train_positive"] = n_train[tag]
    for name, tagger in systems.items():
        roc, pr = _per_tag_auc(labels, probs[name], scored)
        for t, r, p in zip(scored, roc, pr, strict=True):
            per_tag[vocabulary[t]][name] = {"roc_auc": round(r, 4), "pr_auc": round(p, 4)}
        p10 = _precision_at_10(_unit(probs[name]), _unit, labels, queries, vocabulary)
        p10_joint = _precision_at_10(joint[name], tagger.embed_tags, labels, queries,
                                     vocabulary)
        for q, v in zip(queries, p10, strict=True):
            query_notes[" AND ".join(q)][name] = round(v, 4)
        results[name] = {
            "roc_auc": float(np.mean(roc)) if roc else float("nan"),
            "pr_auc": float(np.mean(pr)) if pr else float("nan"),
            "p_at_10": float(np.mean(p10)) if p10 else float("nan"),
            "p_at_10_joint": float(np.mean(p10_joint)) if p10_joint else float("nan"),
        }
    notes: dict[str, object] = {
        "unit": "track (window predictions averaged per track)",
        "n_tags_scored": len(scored),
        "skipped_tags": skipped,
        "per_tag": per_tag,
        "queries": query_notes,
        "skipped_queries": [" AND ".join(q) for q in QUERIES if q not in queries],
        "p_at_10_ceiling": float(np.mean([min(10, v["n_relevant"]) / 10
                                          for v in query_notes.values()])) if queries else None,
        "versions": {n: t.version for n, t in systems.items()},
    }
    if train_tags is not None:
        notes["scored_without_train_positives"] = [t for t, row in per_tag.items()
                                                   if row["n_train_positive"] == 0]
    if not readable.all():
        notes["unreadable"] = [str(paths[i]) for i in np.flatnonzero(~readable)]
    if "je" in results and "no_je" in results:
        notes["je_minus_no_je"] = {m: round(results["je"][m] - results["no_je"][m], 4)
                                   for m in ("roc_auc", "pr_auc", "p_at_10",
                                             "p_at_10_joint")}
    return BenchResult(bench="tagging", split=split, n_items=n_items, systems=results,
                       notes=notes)


def _per_tag_auc(labels, probs, scored) -> tuple[list[float], list[float]]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    roc = [float(roc_auc_score(labels[:, t], probs[:, t])) for t in scored]
    pr = [float(average_precision_score(labels[:, t], probs[:, t])) for t in scored]
    return roc, pr


def _relevant_queries(labels, vocabulary) -> tuple[list[tuple[str, ...]], dict]:
    index = {t: i for i, t in enumerate(vocabulary)}
    kept, notes = [], {}
    for q in QUERIES:
        if not all(t in index for t in q):
            continue
        n_rel = int(labels[:, [index[t] for t in q]].all(axis=1).sum())
        if n_rel:
            kept.append(q)
            notes[" AND ".join(q)] = {"n_relevant": n_rel}
    return kept, notes


def _unit(x: np.ndarray) -> np.ndarray:
    from embeddings.base import l2_normalize

    return l2_normalize(x)


def _precision_at_10(track_vectors, embed_query, labels, queries, vocabulary) -> list[float]:
    """P@10 of each query when tracks are ranked by ``track_vectors @ embed_query(multi-hot)``."""
    from embeddings.tagging import multi_hot

    out = []
    index = {t: i for i, t in enumerate(vocabulary)}
    for q in queries:
        target = embed_query(multi_hot(list(q), vocabulary)[None])[0]
        top = np.argsort(-(track_vectors @ target), kind="stable")[:10]
        relevant = labels[:, [index[t] for t in q]].all(axis=1)
        out.append(float(relevant[top].sum()) / 10)
    return out
