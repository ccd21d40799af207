"""`recsys corpus ...`: build the demo corpus."""

from recsys.commands import corpus_app  # noqa: F401
