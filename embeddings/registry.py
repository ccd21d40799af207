"""Names of every model and baseline, and how to load each (shipped weights included).

Ingest and search ask for a model by name (settings ``separator``, ``timbre_model``,
``melody_model``, ``tagger``); each entry points at a zero-argument factory, imported only
when asked for, so loading one model never imports the others.
"""

from __future__ import annotations

import importlib
from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"

SEPARATORS = {
    "bsrnn": "embeddings.separation.bsrnn:load_pretrained",
    "repet_sim": "embeddings.separation.baselines:RepetSim",
    "mixture": "embeddings.separation.baselines:MixtureAsEstimate",
}
TIMBRE = {
    "contrastive": "embeddings.timbre:load_pretrained",
    "mfcc": "embeddings.timbre:MfccBaseline",
}
MELODY = {
    "tcae": "embeddings.melody:load_pretrained",
    "pitch_dtw": "embeddings.melody:ContourBaseline",
}
TAGGERS = {
    "jetatag": "embeddings.tagging:load_pretrained",
    "logreg": "embeddings.tagging:load_logreg_baseline",
}


class UnknownModelError(KeyError):
    pass


def _load(table: dict[str, str], kind: str, name: str):
    if name not in table:
        raise UnknownModelError(f"unknown {kind} {name!r}; choose one of {sorted(table)}")
    module, attr = table[name].split(":")
    return getattr(importlib.import_module(module), attr)()


def load_separator(name: str):
    return _load(SEPARATORS, "separator", name)


def load_timbre(name: str):
    return _load(TIMBRE, "timbre encoder", name)


def load_melody(name: str):
    return _load(MELODY, "melody encoder", name)


def load_tagger(name: str):
    return _load(TAGGERS, "tagger", name)
