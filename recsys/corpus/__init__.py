"""The synthetic demo corpus: a reader for built corpora and (in ``build``) the builder.

``Corpus(path)`` reads a corpus made by ``recsys corpus build``; see ``manifest`` for the
file layout and ``build`` for how songs, singers and hum queries are made.
"""

from recsys.corpus.manifest import (
    SPLITS,
    Corpus,
    CorpusError,
    Query,
    Singer,
    Song,
    extension_songs,
)
from recsys.corpus.vocabulary import VOCABULARY

__all__ = ["Corpus", "CorpusError", "Query", "SPLITS", "Singer", "Song", "VOCABULARY",
           "extension_songs"]
