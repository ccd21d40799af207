"""Singer gender (male / female) predicted from a timbre track vector and, optionally, the
track's median sung pitch.

Two kinds of classifier, fitted on the training split's tracks by ``recsys train timbre``
(or refitted for a trained encoder by ``recsys train gender``) and shipped beside the
encoder (``embeddings/weights/timbre-contrastive-gender.*``):

- :class:`GenderClassifier`: a logistic regression on the vector (plus one standardised
  pitch input).
- :class:`NeighbourGenderClassifier`: the majority gender of the ``k`` nearest training
  tracks, in the vector space with the standardised pitch as one more (weighted) axis. The
  contrastive space is organised by who sings, not along one gender direction, so a
  singer's nearest neighbours (often other personas of the same voice) tell the gender
  better than a linear boundary fitted on a few dozen singers.

Which kind, inputs (with or without pitch) and setting (``C``; ``k`` and the pitch weight)
are chosen by leave-singers-out cross-validation on the train songs
(:func:`leave_singers_out_accuracy`): the classifier meets singers it was never fitted on.
The prediction becomes the tag ``male vocal`` / ``female vocal`` and a search filter.

The pitch input is the median of the track's sung pitch contour (MIDI,
:func:`median_pitch`; ingest already computes the contour for the melody space). A track
whose contour has no voiced frame gets the training mean, i.e. no pitch evidence.
"""

from __future__ import annotations

import functools
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embeddings.registry import WEIGHTS_DIR

LABELS = ("female", "male")
TAGS = {"female": "female vocal", "male": "male vocal"}
PRETRAINED = WEIGHTS_DIR / "timbre-contrastive-gender.safetensors"
C_GRID = (0.01, 0.1, 1.0, 10.0)
K_GRID = (15, 9, 5, 3, 1)  # neighbours (odd: no tied votes), smoothest first
# the pitch axis' standard deviation, in units of distance between unit track vectors
PITCH_WEIGHT_GRID = (0.2, 0.4, 0.8)


def path_beside(encoder_path: str | os.PathLike) -> Path:
    """Where the gender classifier of the timbre encoder at ``encoder_path`` lives:
    ``<encoder>-gender.safetensors`` beside it."""
    encoder_path = Path(encoder_path)
    return encoder_path.with_name(encoder_path.stem + "-gender.safetensors")


class GenderWeightsError(FileNotFoundError):
    """The gender classifier's weights are missing or unreadable."""


def median_pitch(contour: np.ndarray) -> float:
    """``(frames,)`` MIDI contour (NaN unvoiced) -> median sung pitch, NaN if none voiced."""
    contour = np.asarray(contour, dtype=np.float32)
    voiced = contour[np.isfinite(contour)]
    return float(np.median(voiced)) if len(voiced) else float("nan")


def _labels(genders: Sequence[str]) -> np.ndarray:
    bad = sorted({g for g in genders if g not in LABELS}, key=str)
    if bad:
        raise ValueError(f"gender labels must be one of {LABELS}, got {bad}")
    y = np.array([LABELS.index(g) for g in genders])
    if len(set(y)) < 2:
        raise ValueError("need tracks of both genders to fit the gender classifier")
    return y


class _Classifier(ABC):
    """What both kinds share: labels from ``predict_proba``, atomic save, load by kind."""

    kind = ""
    version: str
    encoder_version: str | None
    dim: int
    meta: dict

    @property
    @abstractmethod
    def uses_pitch(self) -> bool:
        """Whether the median pitch is an input."""

    @abstractmethod
    def predict_proba(self, vectors: np.ndarray, pitches: np.ndarray | None = None) -> np.ndarray:
        """``(n, dim)`` (+ ``(n,)`` median pitches) -> ``(n,)`` probability of male."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted numbers, as saved."""

    def digest(self) -> str:
        """A short hash of the fitted numbers and settings (names a refit apart)."""
        import hashlib

        from safetensors.numpy import save

        settings = {k: v for k, v in vars(self).items()
                    if isinstance(v, (int, float, str, type(None))) and k != "version"}
        return hashlib.sha1(save(self.arrays()) + repr(sorted(settings.items())).encode()
                            ).hexdigest()[:8]

    def predict(
        self, vectors: np.ndarray, pitches: np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        """``(n, dim)`` (+ ``(n,)`` pitches) -> (labels ``"male"``/``"female"``, ``(n,)``
        probability of that label)."""
        p_male = self.predict_proba(vectors, pitches)
        labels = [LABELS[int(p >= 0.5)] for p in p_male]
        return labels, np.where(p_male >= 0.5, p_male, 1.0 - p_male).astype(np.float32)

    def _check(self, vectors: np.ndarray, pitches: np.ndarray | None) -> tuple:
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dim {self.dim}, got {vectors.shape[1]}")
        if pitches is not None:
            pitches = np.atleast_1d(np.asarray(pitches, dtype=np.float64))
            if pitches.shape != (len(vectors),):
                raise ValueError(f"pitches has shape {pitches.shape}, expected ({len(vectors)},)")
        return vectors, pitches

    def _write(self, path: str | os.PathLike, arrays: dict[str, np.ndarray], spec: dict,
               meta: dict | None) -> None:
        from safetensors.numpy import save_file

        path = Path(path).with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".safetensors.tmp")
        save_file(arrays, str(tmp))
        os.chmod(tmp, 0o644)  # safetensors writes owner-only; weights are shipped files
        tmp_json = path.with_suffix(".json.tmp")
        spec = {"kind": self.kind, "version": self.version, "labels": list(LABELS),
                "dim": self.dim, "encoder_version": self.encoder_version,
                "inputs": ["timbre track vector"] + (["median sung pitch (MIDI)"]
                                                      if self.uses_pitch else []), **spec}
        if meta:
            spec["meta"] = meta
        tmp_json.write_text(json.dumps(spec, indent=2) + "\n")
        os.replace(tmp, path)
        os.replace(tmp_json, path.with_suffix(".json"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GenderClassifier | NeighbourGenderClassifier:
        """Either kind, as its ``.json`` says (files without a kind are logistic)."""
        from safetensors.numpy import load_file

        path = Path(path).with_suffix(".safetensors")
        if not path.exists() or not path.with_suffix(".json").exists():
            raise GenderWeightsError(
                f"gender classifier not found at {path}; `recsys train timbre` writes it"
            )
        try:
            spec = json.loads(path.with_suffix(".json").read_text())
            kinds = {k.kind: k for k in (GenderClassifier, NeighbourGenderClassifier)}
            kind = kinds[spec.get("kind", GenderClassifier.kind)]
            if not issubclass(kind, cls):
                raise ValueError(f"it holds a {kind.kind} classifier")
            clf = kind._from(load_file(str(path)), spec)
            clf.meta = spec.get("meta") or {}
            return clf
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise GenderWeightsError(f"cannot read gender classifier {path}: {err}") from err


class GenderClassifier(_Classifier):
    """``p(male | v, f0) = sigmoid(v . coef + pitch_coef * (f0 - pitch_mean) / pitch_std
    + intercept)`` on ``(n, dim)`` track vectors and ``(n,)`` median pitches (MIDI); the
    pitch term is absent when ``pitch_coef`` is None."""

    kind = "logistic"

    def __init__(self, coef: np.ndarray, intercept: float, version: str = "gender-logistic-0",
                 encoder_version: str | None = None, pitch_coef: float | None = None,
                 pitch_mean: float = 0.0, pitch_std: float = 1.0, c: float | None = None):
        self.coef = np.asarray(coef, dtype=np.float32).reshape(-1)
        self.intercept = float(intercept)
        self.version = version
        self.encoder_version = encoder_version  # the timbre space it was fitted in
        self.dim = len(self.coef)
        self.pitch_coef = None if pitch_coef is None else float(pitch_coef)
        self.pitch_mean, self.pitch_std = float(pitch_mean), float(pitch_std)
        self.c = c
        self.meta: dict = {}  # how it was fitted and chosen (saved with it)

    @property
    def uses_pitch(self) -> bool:
        return self.pitch_coef is not None

    @classmethod
    def fit(
        cls, vectors: np.ndarray, genders: Sequence[str], c: float = 1.0,
        version: str = "gender-logistic-0", encoder_version: str | None = None,
        pitches: np.ndarray | None = None,
    ) -> GenderClassifier:
        """Fit on ``(n, dim)`` track vectors labelled ``"male"`` / ``"female"``, with their
        ``(n,)`` median pitches (MIDI, NaN allowed) as a second input when given."""
        from sklearn.linear_model import LogisticRegression

        vectors = np.asarray(vectors, dtype=np.float32)
        y = _labels(genders)
        x, mean, std = vectors, 0.0, 1.0
        if pitches is not None:
            mean, std = _pitch_scale(pitches, len(vectors))
            x = np.hstack([vectors, _standard(pitches, mean, std)[:, None]])
        model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
        coef = model.coef_[0]
        return cls(coef[: vectors.shape[1]], model.intercept_[0], version, encoder_version,
                   pitch_coef=None if pitches is None else float(coef[-1]),
                   pitch_mean=mean, pitch_std=std, c=c)

    def predict_proba(self, vectors: np.ndarray, pitches: np.ndarray | None = None) -> np.ndarray:
        """``(n, dim)`` (+ ``(n,)`` median pitches (MIDI) if the classifier uses pitch; NaN or
        None: unknown) -> ``(n,)`` probability that the singer is male."""
        vectors, pitches = self._check(vectors, pitches)
        logit = vectors @ self.coef + self.intercept
        if self.uses_pitch and pitches is not None:
            logit = logit + self.pitch_coef * _standard(pitches, self.pitch_mean, self.pitch_std)
        return 1.0 / (1.0 + np.exp(-logit))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": np.array([self.intercept], np.float32)}

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        self._write(path, self.arrays(),
                    {"c": self.c,
                     "pitch": None if not self.uses_pitch else {
                         "coef": self.pitch_coef, "mean": self.pitch_mean,
                         "std": self.pitch_std}}, meta)

    @classmethod
    def _from(cls, arrays: dict, spec: dict) -> GenderClassifier:
        pitch = spec.get("pitch") or {}
        return cls(arrays["coef"], float(arrays["intercept"][0]), spec["version"],
                   spec.get("encoder_version"), pitch_coef=pitch.get("coef"),
                   pitch_mean=pitch.get("mean", 0.0), pitch_std=pitch.get("std", 1.0),
                   c=spec.get("c"))


class NeighbourGenderClassifier(_Classifier):
    """``p(male | v, f0)`` = the share of men among the ``k`` training tracks nearest to
    ``[v, pitch_weight * (f0 - pitch_mean) / pitch_std]`` (Euclidean; the pitch axis is
    absent when ``pitch_weight`` is None). Holds the ``(n, dim)`` training vectors, their
    ``(n,)`` standardised pitches and ``(n,)`` labels (1 male)."""

    kind = "neighbours"

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, k: int,
                 pitches: np.ndarray | None = None, pitch_weight: float | None = None,
                 pitch_mean: float = 0.0, pitch_std: float = 1.0,
                 version: str = "gender-neighbours-0", encoder_version: str | None = None):
        if (pitches is None) != (pitch_weight is None):
            raise ValueError("give the training pitches and their weight together")
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if not 1 <= k <= len(self.labels) or k % 2 == 0:
            raise ValueError(f"k must be odd and in 1..{len(self.labels)}, got {k}")
        self.k = int(k)
        self.pitches = None if pitches is None else np.asarray(pitches, dtype=np.float32)
        self.pitch_weight = None if pitch_weight is None else float(pitch_weight)
        self.pitch_mean, self.pitch_std = float(pitch_mean), float(pitch_std)
        self.version = version
        self.encoder_version = encoder_version
        self.dim = self.vectors.shape[1]
        self.meta: dict = {}

    @property
    def uses_pitch(self) -> bool:
        return self.pitch_weight is not None

    @classmethod
    def fit(
        cls, vectors: np.ndarray, genders: Sequence[str], k: int = 5,
        version: str = "gender-neighbours-0", encoder_version: str | None = None,
        pitches: np.ndarray | None = None, pitch_weight: float = 0.4,
    ) -> NeighbourGenderClassifier:
        """Keep ``(n, dim)`` track vectors labelled ``"male"`` / ``"female"`` (and their
        ``(n,)`` median pitches, NaN allowed, as one more axis when given). ``k`` is odd,
        so votes never tie, and at most ``n``."""
        y = _labels(genders)
        if k % 2 == 0:
            raise ValueError(f"k must be odd (votes must not tie), got {k}")
        k = min(k, len(y) - (len(y) + 1) % 2)
        if pitches is None:
            return cls(vectors, y, k, version=version, encoder_version=encoder_version)
        mean, std = _pitch_scale(pitches, len(y))
        return cls(vectors, y, k, _standard(pitches, mean, std), pitch_weight, mean, std,
                   version, encoder_version)

    def predict_proba(self, vectors: np.ndarray, pitches: np.ndarray | None = None) -> np.ndarray:
        """``(n, dim)`` (+ ``(n,)`` median pitches (MIDI) if the classifier uses pitch; NaN or
        None: unknown, taken as the training mean) -> ``(n,)`` share of men among the
        ``k`` nearest training tracks."""
        from sklearn.neighbors import NearestNeighbors

        vectors, pitches = self._check(vectors, pitches)
        z = None
        if self.uses_pitch:
            z = (np.zeros(len(vectors)) if pitches is None
                 else _standard(pitches, self.pitch_mean, self.pitch_std))
        nearest = (NearestNeighbors(n_neighbors=self.k, algorithm="brute")
                   .fit(self._points(self.vectors, self.pitches))
                   .kneighbors(self._points(vectors, z), return_distance=False))
        return self.labels[nearest].mean(axis=1)

    def _points(self, vectors: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """Track vectors with the weighted standardised pitch ``z`` as one more axis (none
        when the classifier does not use pitch)."""
        if not self.uses_pitch:
            return vectors
        return np.hstack([vectors, (self.pitch_weight * z)[:, None]]).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"vectors": self.vectors, "labels": self.labels}
        if self.uses_pitch:
            arrays["pitches"] = self.pitches
        return arrays

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        self._write(path, self.arrays(), {
            "k": self.k,
            "pitch": None if not self.uses_pitch else {
                "weight": self.pitch_weight, "mean": self.pitch_mean, "std": self.pitch_std}},
            meta)

    @classmethod
    def _from(cls, arrays: dict, spec: dict) -> NeighbourGenderClassifier:
        pitch = spec.get("pitch") or {}
        return cls(arrays["vectors"], arrays["labels"], int(spec["k"]), arrays.get("pitches"),
                   pitch.get("weight"), pitch.get("mean", 0.0), pitch.get("std", 1.0),
                   spec["version"], spec.get("encoder_version"))


def load_classifier(path: str | os.PathLike) -> GenderClassifier | NeighbourGenderClassifier:
    """The classifier at ``path``, of whichever kind it is."""
    return _Classifier.load(path)


def load_pretrained() -> GenderClassifier | NeighbourGenderClassifier:
    """The classifier shipped with the contrastive encoder."""
    return load_classifier(PRETRAINED)


def load_for(encoder) -> GenderClassifier | NeighbourGenderClassifier | None:
    """The shipped classifier if it was fitted in ``encoder``'s space (same ``version``),
    else ``None``: a classifier is only meaningful on the vectors it was trained on."""
    try:
        clf = load_pretrained()
    except GenderWeightsError:
        return None
    if clf.encoder_version != getattr(encoder, "version", None) or clf.dim != encoder.dim:
        return None
    return clf


def predict_gender(
    track_vectors: np.ndarray, classifier: _Classifier | None = None,
    pitches: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """``(n, dim)`` contrastive track vectors (+ ``(n,)`` median pitches) -> (``"male"`` /
    ``"female"`` per track, ``(n,)`` probability of that label). Uses the shipped classifier
    unless one is given."""
    return (classifier or load_pretrained()).predict(track_vectors, pitches)


def _pitch_scale(pitches: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and standard deviation of the known of ``(n,)`` training median pitches."""
    pitches = np.asarray(pitches, dtype=np.float64)
    if pitches.shape != (n,):
        raise ValueError(f"pitches has shape {pitches.shape}, expected ({n},)")
    known = pitches[np.isfinite(pitches)]
    if len(known) < 2:
        raise ValueError("need the median pitch of at least two tracks")
    return float(known.mean()), float(max(known.std(), 1e-3))


def _standard(pitches: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Standardised pitches; unknown (NaN) ones become 0, the training mean."""
    z = (np.asarray(pitches, dtype=np.float64) - mean) / std
    return np.where(np.isfinite(z), z, 0.0)


def leave_singers_out_accuracy(
    fit: Callable[..., _Classifier], vectors: np.ndarray, genders: Sequence[str],
    groups: Sequence[str], pitches: np.ndarray | None = None, folds: int = 5,
) -> float:
    """Accuracy on singers it was not fitted on of ``fit(vectors, genders, pitches=...)``
    (``groups``: one singer id per track), cross-validated over ``folds`` folds of whole
    singers. Folds keep the genders' shares as far as whole singers allow (a fold of mostly
    one gender would bias the held-out predictions towards the other)."""
    from sklearn.model_selection import StratifiedGroupKFold

    vectors = np.asarray(vectors, dtype=np.float32)
    genders = np.asarray(genders)
    groups = np.asarray(groups)
    folds = min(folds, len(set(groups.tolist())))
    if folds < 2:
        raise ValueError("need tracks of at least two singers to cross-validate")
    hits = 0
    for tr, te in StratifiedGroupKFold(folds).split(vectors, genders, groups):
        if len(set(genders[tr].tolist())) < 2:
            continue  # a fold without both genders cannot be fitted; count it as missed
        clf = fit(vectors[tr], genders[tr].tolist(),
                  pitches=None if pitches is None else pitches[tr])
        predicted, _ = clf.predict(vectors[te], None if pitches is None else pitches[te])
        hits += int(np.sum(np.asarray(predicted) == genders[te]))
    return hits / len(genders)


def candidates(with_pitch: bool) -> dict[str, Callable[..., _Classifier]]:
    """The classifiers model selection chooses among, as ``{name: fit(vectors, genders,
    pitches=...)}`` (a fit without pitch ignores ``pitches``): the logistic one for each
    ``C`` in :data:`C_GRID`, the neighbour one for each ``k`` in :data:`K_GRID` (and each
    pitch weight in :data:`PITCH_WEIGHT_GRID`), each on the vector alone and, with
    ``with_pitch``, on the vector and the median pitch.

    Simplest first, so that ties go to the simpler: logistic before neighbours, fewer
    inputs first, then stronger regularisation (smaller ``C``, more neighbours)."""
    def without_pitch(fit):
        return lambda vectors, genders, pitches=None: fit(vectors, genders)

    inputs = (False, True) if with_pitch else (False,)
    out: dict[str, Callable[..., _Classifier]] = {}
    for pitch in inputs:
        for c in C_GRID:
            fit = functools.partial(GenderClassifier.fit, c=c)
            out[f"logistic vector{'+pitch' if pitch else ''} C={c}"] = (
                fit if pitch else without_pitch(fit))
    for pitch in inputs:
        for k in K_GRID:
            if not pitch:
                out[f"neighbours vector k={k}"] = without_pitch(
                    functools.partial(NeighbourGenderClassifier.fit, k=k))
                continue
            for w in PITCH_WEIGHT_GRID:
                out[f"neighbours vector+pitch k={k} w={w}"] = functools.partial(
                    NeighbourGenderClassifier.fit, k=k, pitch_weight=w)
    return out


def choose_c(
    vectors: np.ndarray, genders: Sequence[str], groups: Sequence[str],
    pitches: np.ndarray | None = None, grid: Sequence[float] = C_GRID, folds: int = 5,
) -> tuple[float, dict[float, float]]:
    """Regularisation of the logistic classifier for unseen singers: the
    :func:`leave_singers_out_accuracy` of each ``C`` in ``grid``. Returns ``(best C,
    {C: accuracy})``; ties go to the smaller ``C``."""
    scores = {float(c): leave_singers_out_accuracy(
        functools.partial(GenderClassifier.fit, c=c), vectors, genders, groups, pitches, folds)
        for c in grid}
    best = max(scores, key=lambda c: (scores[c], -c))
    return best, scores
