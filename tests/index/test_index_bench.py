"""`recsys bench index` on a tiny random set (the real figures come from the command)."""

import json

import numpy as np
from typer.testing import CliRunner

from recsys.bench.index import recall_at_k, run


def test_recall_at_k():
    truth = np.array([[1, 2, 3, 4]])
    assert recall_at_k(np.array([[4, 3, 9, -1]]), truth) == 0.5


def test_bench_shape_on_random_and_catalog_vectors():
    rng = np.random.default_rng(0)
    space = (np.arange(100) * 7, rng.standard_normal((100, 8)).astype(np.float32))
    result = run(n=400, dim=16, n_queries=20, catalog_spaces={"tag-joint@v1": space})
    assert set(result.systems) == {"exact", "hnsw", "ivf", "exact/tag-joint@v1",
                                   "hnsw/tag-joint@v1", "ivf/tag-joint@v1"}
    for metrics in result.systems.values():
        assert set(metrics) == {"recall_at_10", "qps", "p50_ms", "p99_ms", "build_s", "mem_mb"}
        assert 0 <= metrics["recall_at_10"] <= 1 and metrics["p99_ms"] >= metrics["p50_ms"]
    assert result.systems["exact"]["recall_at_10"] == 1.0
    assert result.systems["hnsw"]["recall_at_10"] > 0.5
    assert [row["hnsw_ef_search"] for row in result.notes["sweeps"]["hnsw"]][:2] == [32, 64]


def test_bench_command_writes_json(tmp_path, monkeypatch):
    from recsys.cli import app

    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "index.json"
    result = CliRunner().invoke(app, ["bench", "index", "--n", "300", "--dim", "8",
                                      "--queries", "10", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["bench"] == "index" and data["n_items"] == 300 and "exact" in data["systems"]
