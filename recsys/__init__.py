"""recsys: vocal-aware music search and recommendation."""

__version__ = "0.1.0"
