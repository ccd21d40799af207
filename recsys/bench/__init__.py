"""Benchmarks: each ``recsys bench NAME`` measures systems side by side in one run.

Every bench returns a :class:`BenchResult` in the shape of DESIGN.md ("Benchmarks: one shape
for all"); ``recsys bench all`` writes them to ``bench-out/*.json`` and regenerates
BENCHMARKS.md from those files.
"""
