"""Singer gender (male / female) predicted from a timbre track vector.

A logistic regression on the encoder's ``(dim,)`` track vectors, fitted on the training
split's tracks by ``recsys train timbre`` and shipped beside the encoder
(``embeddings/weights/timbre-contrastive-gender.*``). The prediction becomes the tag
``male vocal`` / ``female vocal`` and a search filter.
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


class GenderWeightsError(FileNotFoundError):
    """The gender classifier's weights are missing or unreadable."""


class GenderClassifier:
    """``p(male | v) = sigmoid(v . coef + intercept)`` on ``(n, dim)`` track vectors."""

    def __init__(self, coef: np.ndarray, intercept: float, version: str = "gender-logreg-0",
                 encoder_version: str | None = None):
        self.coef = np.asarray(coef, dtype=np.float32).reshape(-1)
        self.intercept = float(intercept)
        self.version = version
        self.encoder_version = encoder_version  # the timbre space it was fitted in
        self.dim = len(self.coef)

    @classmethod
    def fit(
        cls, vectors: np.ndarray, genders: Sequence[str], c: float = 1.0,
        version: str = "gender-logreg-0", encoder_version: str | None = None,
    ) -> GenderClassifier:
        """Fit on ``(n, dim)`` track vectors labelled ``"male"`` / ``"female"``."""
        from sklearn.linear_model import LogisticRegression

        vectors = np.asarray(vectors, dtype=np.float32)
        bad = sorted({g for g in genders if g not in LABELS}, key=str)
        if bad:
            raise ValueError(f"gender labels must be one of {LABELS}, got {bad}")
        y = np.array([LABELS.index(g) for g in genders])
        if len(set(y)) < 2:
            raise ValueError("need tracks of both genders to fit the gender classifier")
        model = LogisticRegression(C=c, max_iter=2000).fit(vectors, y)
        return cls(model.coef_[0], model.intercept_[0], version, encoder_version)

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, dim)`` -> ``(n,)`` probability that the singer is male."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dim {self.dim}, got {vectors.shape[1]}")
        return 1.0 / (1.0 + np.exp(-(vectors @ self.coef + self.intercept)))

    def predict(self, vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
        """``(n, dim)`` -> (labels ``"male"``/``"female"``, ``(n,)`` probability of that label)."""
        p_male = self.predict_proba(vectors)
        labels = [LABELS[int(p >= 0.5)] for p in p_male]
        return labels, np.where(p_male >= 0.5, p_male, 1.0 - p_male).astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.numpy import save_file

        path = Path(path).with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".safetensors.tmp")
        save_file({"coef": self.coef, "intercept": np.array([self.intercept], np.float32)},
                  str(tmp))
        os.chmod(tmp, 0o644)  # safetensors writes owner-only; weights are shipped files
        tmp_json = path.with_suffix(".json.tmp")
        tmp_json.write_text(json.dumps({"version": self.version, "labels": list(LABELS),
                                        "dim": self.dim, "encoder_version": self.encoder_version},
                                       indent=2) + "\n")
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
            return cls(arrays["coef"], float(arrays["intercept"][0]), spec["version"],
                       spec.get("encoder_version"))
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
    track_vectors: np.ndarray, classifier: GenderClassifier | None = None
) -> tuple[list[str], np.ndarray]:
    """``(n, dim)`` contrastive track vectors -> (``"male"``/``"female"`` per track,
    ``(n,)`` probability of that label). Uses the shipped classifier unless one is given."""
    return (classifier or load_pretrained()).predict(track_vectors)
