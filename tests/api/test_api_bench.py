"""``recsys bench api`` machinery on a live server: a short, low-rate run (the real figures
come from the command, never from a test)."""

from __future__ import annotations

from recsys.bench.api import bench_api


def test_bench_api_measures_each_endpoint(live_url, ingested, tmp_path):
    result = bench_api(live_url, duration=1.0, rps=10.0, example_rps=2.0, workers=4)
    assert result.bench == "api" and result.n_items == ingested.catalog.count_tracks()
    assert set(result.systems) == {"GET /artists/{id}/similar", "POST /search/tags",
                                   "POST /search/example"}
    for name, metrics in result.systems.items():
        assert set(metrics) == {"p50_ms", "p99_ms", "rps", "errors"}, name
        assert metrics["errors"] == 0, name
        assert 0 < metrics["p50_ms"] <= metrics["p99_ms"], name
        assert metrics["rps"] > 0, name
    result.save(tmp_path / "api.json")
    assert (tmp_path / "api.json").read_text().startswith("{")
