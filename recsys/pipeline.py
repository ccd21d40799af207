"""What the models say about one song: separation, windows, embeddings, contour, tags.

``Models`` loads every model once per process; ``analyse`` runs them on one mixture and
returns plain arrays, which ``recsys.ingest`` hands to the catalog. Search services use the
same ``analyse_clip`` path for queries so clips and catalog songs are embedded alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from embeddings import pitch, registry, voicing
from embeddings.base import MelodyEncoder, Separator, Tagger, TimbreEncoder, l2_normalize
from embeddings.gender import median_pitch
from embeddings.timbre import track_vector, voicing_weighted
from embeddings.windows import CONTOUR_HOP_SECONDS, WINDOW_SECONDS, Windows, cut
from recsys.settings import Settings

log = logging.getLogger(__name__)

# The vector spaces the catalog stores, by the level they live at.
TIMBRE_TRACK = "timbre-track"
TIMBRE_ARTIST = "timbre-artist"
MELODY_WINDOW = "melody-window"
TAG_JOINT = "tag-joint"
TAG_PROB = "tag-prob"
PITCH_CONTOUR = "pitch-contour"
GENDER_TAGS = {"male": "male vocal", "female": "female vocal"}


@dataclass
class Models:
    """Every model ingest and search need, loaded once."""

    separator: Separator
    timbre: TimbreEncoder
    melody: MelodyEncoder
    tagger: Tagger
    gender: object | None = None  # embeddings.gender classifier, when shipped with the encoder

    @classmethod
    def load(cls, settings: Settings) -> Models:
        timbre = registry.load_timbre(settings.timbre_model)
        melody = registry.load_melody(settings.melody_model)
        try:
            melody.pitch_method = pitch.check_method(settings.pitch_tracker)
        except ValueError as e:
            raise registry.UnknownModelError(str(e)) from None
        return cls(
            separator=registry.load_separator(settings.separator),
            timbre=timbre,
            melody=melody,
            tagger=registry.load_tagger(settings.tagger),
            gender=_load_gender(timbre),
        )

    @property
    def versions(self) -> dict[str, str]:
        return {
            TIMBRE_TRACK: self.timbre.version,
            TIMBRE_ARTIST: self.timbre.version,
            MELODY_WINDOW: self.melody.version,
            TAG_JOINT: self.tagger.version,
            TAG_PROB: self.tagger.version,
            PITCH_CONTOUR: pitch.tracker_version(self.melody.pitch_method),
        }


def _load_gender(timbre):
    try:
        from embeddings import gender
    except ImportError:
        return None
    return gender.load_for(timbre)


@dataclass
class Analysis:
    """Everything stored about one track (or one query clip)."""

    windows: Windows  # windows of the mixture / vocals (same cut)
    voiced: np.ndarray  # (n,) bool
    timbre_windows: np.ndarray  # (n_voiced, d) rows for voiced windows only
    timbre_track: np.ndarray | None  # (d,) or None when nothing is sung
    melody_windows: np.ndarray  # (n, d)
    melodic: np.ndarray  # (n,) bool: windows with enough voiced pitch to index their melody
    contour: np.ndarray  # (frames,) MIDI, NaN unvoiced
    tag_probs: np.ndarray  # (T,) track-level
    tag_joint: np.ndarray  # (d,) track-level
    gender: str | None = None
    gender_prob: float | None = None
    extra: dict = field(default_factory=dict)

    def predicted_tags(self, vocabulary: list[str], min_score: float = 0.0):
        """``(tag, score)`` for every tag at or above ``min_score``, best first."""
        order = np.argsort(-self.tag_probs)
        return [(vocabulary[i], float(self.tag_probs[i])) for i in order
                if self.tag_probs[i] >= min_score]


def analyse(mixture: np.ndarray, models: Models) -> Analysis:
    """Run every model on a ``(samples,)`` 16 kHz mixture."""
    vocals, _ = models.separator.separate(mixture)
    return analyse_separated(mixture, vocals, models)


def analyse_separated(mixture: np.ndarray, vocals: np.ndarray, models: Models) -> Analysis:
    mix_windows = cut(mixture)
    vocal_windows = cut(vocals)
    scores = voicing.voicing_scores(vocal_windows.audio, vocals, mix_windows.audio)
    voiced = scores >= voicing.VoicingConfig().min_voiced_fraction
    timbre_windows = (
        models.timbre.embed(vocal_windows.audio[voiced])
        if voiced.any() else np.zeros((0, models.timbre.dim), np.float32)
    )
    timbre_track = (track_vector(timbre_windows, weights=scores[voiced]
                                 if voicing_weighted(models.timbre) else None)
                    if len(timbre_windows) else None)
    probs, joint = models.tagger.predict(mix_windows.audio)
    contour = np.asarray(models.melody.contour(vocals), dtype=np.float32)
    analysis = Analysis(
        windows=vocal_windows,
        voiced=voiced,
        timbre_windows=timbre_windows,
        timbre_track=timbre_track,
        melody_windows=models.melody.embed(vocal_windows.audio),
        melodic=melodic_windows(contour, vocal_windows.starts),
        contour=contour,
        tag_probs=probs.mean(axis=0),
        tag_joint=l2_normalize(joint.mean(axis=0)),
    )
    if timbre_track is not None and models.gender is not None:
        labels, p = models.gender.predict(timbre_track[None], [median_pitch(contour)])
        analysis.gender, analysis.gender_prob = str(labels[0]), float(p[0])
    return analysis


MIN_VOICED_WINDOW_SECONDS = 0.5


def melodic_windows(contour: np.ndarray, starts: np.ndarray,
                    min_voiced: float = MIN_VOICED_WINDOW_SECONDS) -> np.ndarray:
    """``(n,)`` bool: which windows (starting at ``starts`` seconds) hold at least
    ``min_voiced`` seconds of voiced pitch in ``contour`` — the windows worth indexing in
    the melody space (instrumental passages have no melody to hum)."""
    per = int(round(WINDOW_SECONDS / CONTOUR_HOP_SECONDS))
    voiced = np.isfinite(contour)
    out = np.zeros(len(starts), dtype=bool)
    for i, start in enumerate(starts):
        a = int(round(start / CONTOUR_HOP_SECONDS))
        out[i] = voiced[a: a + per].sum() * CONTOUR_HOP_SECONDS >= min_voiced
    return out
