"""Singer gender (male / female) predicted from a timbre track vector and, optionally, the
track's median sung pitch.

A logistic regression on the encoder's ``(dim,)`` track vectors (plus one standardised
pitch input when fitted with pitches), fitted on the training split's tracks by
``recsys train timbre`` and shipped beside the encoder
(``embeddings/weights/timbre-contrastive-gender.*``), or refitted for a trained encoder by
``recsys train gender``. Its inputs (with or without pitch) and regularisation ``C`` are
chosen by leave-singers-out cross-validation on the train songs (:func:`choose_c`): the
classifier meets singers it was never fitted on. The prediction becomes the tag
``male vocal`` / ``female vocal`` and a search filter.

The pitch input is the median of the track's sung pitch contour (MIDI,
:func:`median_pitch`; ingest already computes the contour for the melody space). A track
whose contour has no voiced frame gets the training mean, i.e. no pitch evidence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embeddings.registry import WEIGHTS_DIR

LABELS = ("female", "male")
TAGS = {"female": "female vocal", "male": "male vocal"}
PRETRAINED = WEIGHTS_DIR / "timbre-contrastive-gender.safetensors"
C_GRID = (0.01, 0.1, 1.0, 10.0)


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


class GenderClassifier:
    """``p(male | v, f0) = sigmoid(v . coef + pitch_coef * (f0 - pitch_mean) / pitch_std
    + intercept)`` on ``(n, dim)`` track vectors and ``(n,)`` median pitches (MIDI); the
    pitch term is absent when ``pitch_coef`` is None."""

    def __init__(self, coef: np.ndarray, intercept: float, version: str = "gender-logreg-0",
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
        version: str = "gender-logreg-0", encoder_version: str | None = None,
        pitches: np.ndarray | None = None,
    ) -> GenderClassifier:
        """Fit on ``(n, dim)`` track vectors labelled ``"male"`` / ``"female"``, with their
        ``(n,)`` median pitches (MIDI, NaN allowed) as a second input when given."""
        from sklearn.linear_model import LogisticRegression

        vectors = np.asarray(vectors, dtype=np.float32)
        y = _labels(genders)
        x, mean, std = vectors, 0.0, 1.0
        if pitches is not None:
            pitches = np.asarray(pitches, dtype=np.float64)
            if pitches.shape != (len(vectors),):
                raise ValueError(f"pitches has shape {pitches.shape}, expected ({len(vectors)},)")
            known = pitches[np.isfinite(pitches)]
            if len(known) < 2:
                raise ValueError("need the median pitch of at least two tracks")
            mean, std = float(known.mean()), float(max(known.std(), 1e-3))
            x = np.hstack([vectors, _standard(pitches, mean, std)[:, None]])
        model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
        coef = model.coef_[0]
        return cls(coef[: vectors.shape[1]], model.intercept_[0], version, encoder_version,
                   pitch_coef=None if pitches is None else float(coef[-1]),
                   pitch_mean=mean, pitch_std=std, c=c)

    def predict_proba(self, vectors: np.ndarray, pitches: np.ndarray | None = None) -> np.ndarray:
        """``(n, dim)`` (+ ``(n,)`` median pitches if the classifier uses pitch; NaN or
        None: unknown) -> ``(n,)`` probability that the singer is male."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dim {self.dim}, got {vectors.shape[1]}")
        logit = vectors @ self.coef + self.intercept
        if self.uses_pitch and pitches is not None:
            pitches = np.atleast_1d(np.asarray(pitches, dtype=np.float64))
            if pitches.shape != (len(vectors),):
                raise ValueError(f"pitches has shape {pitches.shape}, expected ({len(vectors)},)")
            logit = logit + self.pitch_coef * _standard(pitches, self.pitch_mean, self.pitch_std)
        return 1.0 / (1.0 + np.exp(-logit))

    def predict(
        self, vectors: np.ndarray, pitches: np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        """``(n, dim)`` (+ ``(n,)`` pitches) -> (labels ``"male"``/``"female"``, ``(n,)``
        probability of that label)."""
        p_male = self.predict_proba(vectors, pitches)
        labels = [LABELS[int(p >= 0.5)] for p in p_male]
        return labels, np.where(p_male >= 0.5, p_male, 1.0 - p_male).astype(np.float32)

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        from safetensors.numpy import save_file

        path = Path(path).with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".safetensors.tmp")
        save_file({"coef": self.coef, "intercept": np.array([self.intercept], np.float32)},
                  str(tmp))
        os.chmod(tmp, 0o644)  # safetensors writes owner-only; weights are shipped files
        tmp_json = path.with_suffix(".json.tmp")
        spec = {"version": self.version, "labels": list(LABELS), "dim": self.dim,
                "encoder_version": self.encoder_version, "c": self.c,
                "inputs": ["timbre track vector"] + (["median sung pitch (MIDI)"]
                                                      if self.uses_pitch else []),
                "pitch": None if not self.uses_pitch else {
                    "coef": self.pitch_coef, "mean": self.pitch_mean, "std": self.pitch_std}}
        if meta:
            spec["meta"] = meta
        tmp_json.write_text(json.dumps(spec, indent=2) + "\n")
        os.replace(tmp, path)
        os.replace(tmp_json, path.with_suffix(".json"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GenderClassifier:
        from safetensors.numpy import load_file

        path = Path(path).with_suffix(".safetensors")
        if not path.exists() or not path.with_suffix(".json").exists():
            raise GenderWeightsError(
                f"gender classifier not found at {path}; `recsys train timbre` writes it"
            )
        try:
            spec = json.loads(path.with_suffix(".json").read_text())
            arrays = load_file(str(path))
            pitch = spec.get("pitch") or {}
            clf = cls(arrays["coef"], float(arrays["intercept"][0]), spec["version"],
                      spec.get("encoder_version"), pitch_coef=pitch.get("coef"),
                      pitch_mean=pitch.get("mean", 0.0), pitch_std=pitch.get("std", 1.0),
                      c=spec.get("c"))
            clf.meta = spec.get("meta") or {}
            return clf
        except (OSError, ValueError, KeyError) as err:
            raise GenderWeightsError(f"cannot read gender classifier {path}: {err}") from err


def load_pretrained() -> GenderClassifier:
    """The classifier shipped with the contrastive encoder."""
    return GenderClassifier.load(PRETRAINED)


def load_for(encoder) -> GenderClassifier | None:
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
    track_vectors: np.ndarray, classifier: GenderClassifier | None = None,
    pitches: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """``(n, dim)`` contrastive track vectors (+ ``(n,)`` median pitches) -> (``"male"`` /
    ``"female"`` per track, ``(n,)`` probability of that label). Uses the shipped classifier
    unless one is given."""
    return (classifier or load_pretrained()).predict(track_vectors, pitches)


def _standard(pitches: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Standardised pitches; unknown (NaN) ones become 0, the training mean."""
    z = (np.asarray(pitches, dtype=np.float64) - mean) / std
    return np.where(np.isfinite(z), z, 0.0)


def choose_c(
    vectors: np.ndarray, genders: Sequence[str], groups: Sequence[str],
    pitches: np.ndarray | None = None, grid: Sequence[float] = C_GRID, folds: int = 5,
) -> tuple[float, dict[float, float]]:
    """Regularisation for unseen singers: leave-singers-out cross-validated accuracy
    (``groups``: one singer id per track) of :meth:`GenderClassifier.fit` for each ``C`` in
    ``grid``. Folds keep the genders' shares as far as whole singers allow (a fold of mostly
    one gender would bias the held-out predictions towards the other). Returns ``(best C,
    {C: accuracy})``; ties go to the smaller ``C``."""
    from sklearn.model_selection import StratifiedGroupKFold

    vectors = np.asarray(vectors, dtype=np.float32)
    genders = np.asarray(genders)
    groups = np.asarray(groups)
    folds = min(folds, len(set(groups.tolist())))
    if folds < 2:
        raise ValueError("need tracks of at least two singers to cross-validate")
    scores = {}
    for c in grid:
        hits = 0
        for tr, te in StratifiedGroupKFold(folds).split(vectors, genders, groups):
            if len(set(genders[tr].tolist())) < 2:
                continue  # a fold without both genders cannot be fitted; count it as missed
            clf = GenderClassifier.fit(vectors[tr], genders[tr].tolist(), c=c,
                                       pitches=None if pitches is None else pitches[tr])
            predicted, _ = clf.predict(vectors[te], None if pitches is None else pitches[te])
            hits += int(np.sum(np.asarray(predicted) == genders[te]))
        scores[float(c)] = hits / len(genders)
    best = max(scores, key=lambda c: (scores[c], -c))
    return best, scores
