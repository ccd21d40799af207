"""Audio I/O, features and the models (separation, timbre, melody, tagging).

Knows nothing of storage: it turns audio into arrays and vectors.
"""
