"""BENCHMARKS.md, generated from the bench JSON files so figures and commands never drift apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from recsys.bench.result import BenchResult, _fmt

ORDER = ["separation", "singer", "qbh", "tagging", "index", "api", "ingest", "corpus", "audio",
         "pitch"]

TITLES = {
    "separation": "Vocal separation (issue: Band-Split RNN)",
    "singer": "Same-singer retrieval and gender (issue: timbre encoder)",
    "qbh": "Query-by-humming (issue: TCAE melody encoder)",
    "tagging": "Auto-tagging and tag search (issue: JETATAG)",
    "index": "Vector index (issue: catalog core)",
    "api": "HTTP API under load (issue: API and web page)",
    "ingest": "Ingest pipeline (issue: catalog core)",
    "corpus": "Demo corpus build (issue: foundation)",
    "audio": "Audio input: decode + resample (issue: foundation)",
    "pitch": "Pitch trackers (issue: TCAE melody encoder)",
}

Systems = dict[str, dict[str, float]]


def _get(systems: Systems, system: str, metric: str) -> float | None:
    value = systems.get(system, {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _bar(text: str, check: Callable[[Systems], bool | None]):
    return text, check


def _cmp(a, b, op):
    if a is None or b is None:
        return None
    return op(a, b)


# The bars the issues set, checked against the measured figures (None: not measured).
BARS: dict[str, list[tuple[str, Callable[[Systems], bool | None]]]] = {
    "separation": [
        _bar("BSRNN vocals SDR within 2 dB of the oracle IRM", lambda s: _cmp(
            _get(s, "bsrnn", "vocals_sdr"), _get(s, "oracle_irm", "vocals_sdr"),
            lambda a, b: a >= b - 2)),
        _bar("BSRNN vocals SDR at least 6 dB above REPET-SIM", lambda s: _cmp(
            _get(s, "bsrnn", "vocals_sdr"), _get(s, "repet_sim", "vocals_sdr"),
            lambda a, b: a >= b + 6)),
        _bar("BSRNN at >= 15x real time on this CPU", lambda s: _cmp(
            _get(s, "bsrnn", "realtime_factor"), 15.0, lambda a, b: a >= b)),
    ],
    "singer": [
        _bar("(a) top-1 >= 0.95 from separated vocals", lambda s: _cmp(
            _get(s, "encoder_separated", "top1_seen"), 0.95, lambda a, b: a >= b)),
        _bar("(b) mAP >= 1.5x the MFCC baseline's", lambda s: _cmp(
            _get(s, "encoder_separated", "map_unseen"), _get(s, "mfcc", "map_unseen"),
            lambda a, b: a >= 1.5 * b)),
        _bar("gender accuracy >= 0.95 on unseen singers", lambda s: _cmp(
            _get(s, "encoder_separated", "gender_acc"), 0.95, lambda a, b: a >= b)),
    ],
    "qbh": [
        _bar("TCAE + DTW MRR >= 0.85", lambda s: _cmp(
            _get(s, "tcae_dtw", "mrr"), 0.85, lambda a, b: a >= b)),
        _bar("TCAE + DTW top-10 >= 0.95", lambda s: _cmp(
            _get(s, "tcae_dtw", "top10"), 0.95, lambda a, b: a >= b)),
        _bar("TCAE + DTW p95 latency <= 300 ms", lambda s: _cmp(
            _get(s, "tcae_dtw", "p95_ms"), 300.0, lambda a, b: a <= b)),
        # the same thresholds on the service's path, whose candidates add the key profile
        # and the screening alignment
        _bar("same bars, TCAE + key profile + screening + DTW (the service's path): "
             "MRR >= 0.85",
             lambda s: _cmp(_get(s, "tcae_screen_dtw", "mrr"), 0.85, lambda a, b: a >= b)),
        _bar("TCAE + key profile + screening + DTW: top-10 >= 0.95", lambda s: _cmp(
            _get(s, "tcae_screen_dtw", "top10"), 0.95, lambda a, b: a >= b)),
        _bar("TCAE + key profile + screening + DTW: p95 latency <= 300 ms", lambda s: _cmp(
            _get(s, "tcae_screen_dtw", "p95_ms"), 300.0, lambda a, b: a <= b)),
    ],
    "tagging": [
        _bar("with-JE macro ROC-AUC >= 0.95", lambda s: _cmp(
            _get(s, "je", "roc_auc"), 0.95, lambda a, b: a >= b)),
        _bar("with-JE macro PR-AUC >= 0.75", lambda s: _cmp(
            _get(s, "je", "pr_auc"), 0.75, lambda a, b: a >= b)),
    ],
    "index": [
        _bar("HNSW recall@10 >= 0.95 at p99 <= 2 ms", lambda s: _cmp(
            _get(s, "hnsw", "recall_at_10"), _get(s, "hnsw", "p99_ms"),
            lambda r, p: r >= 0.95 and p <= 2.0)),
    ],
    "api": [
        _bar("p99 <= 50 ms for /artists/{id}/similar and /search/tags", lambda s: (
            None if not any("similar" in k for k in s) else all(
                v.get("p99_ms", 1e9) <= 50 for k, v in s.items()
                if "similar" in k or "tags" in k))),
    ],
    "corpus": [
        _bar("100 songs of 20 s in <= 5 min", lambda s: _cmp(
            _get(s, "corpus_build", "wall_s"), 300.0, lambda a, b: a <= b)),
    ],
}


def _is_table(value) -> bool:
    """A note whose values are all dicts (e.g. per-tag figures) reads best as a table."""
    return isinstance(value, dict) and len(value) > 1 and all(
        isinstance(v, dict) for v in value.values())


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _note_table(value: dict) -> list[str]:
    rows = {k: _flatten(v) for k, v in value.items()}
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return lines


def _verdict(ok: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[ok]


def render(results: list[BenchResult]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `recsys bench report` from the JSON files each `recsys bench NAME --json`",
        "wrote (`recsys bench all` reruns every bench and rewrites this file). Every figure",
        "names the command that produced it, the split and the machine. Bars are the issues';",
        "a bar not met is marked so with the measured figure.",
        "",
    ]
    split_order = {"train": 1, "all": 2, "val": 3}  # test first, development runs after
    ordered = sorted(results, key=lambda r: (ORDER.index(r.bench) if r.bench in ORDER else 99,
                                             r.bench, split_order.get(r.split, 0)))
    for r in ordered:  # a bench may have several results (e.g. two data sets)
        name = r.bench
        # the split names a section when a bench has several (index data sets, val runs,
        # runs on a development corpus's train split or all of it), and so do its singers
        # when the run kept only some
        title = TITLES.get(name, name) + (f" — {r.split}" if name == "index"
                                          or r.split in ("val", "train", "all") else "")
        singers = (r.notes or {}).get("singers") if name == "qbh" else None
        title += f", {singers} singers" if singers in ("heard", "unseen") else ""
        lines += [f"## {title}", "",
                  f"- command: `{r.command}`",
                  f"- split: {r.split}; items: {r.n_items}; machine: {r.machine}", ""]
        metrics: list[str] = []
        for values in r.systems.values():
            metrics += [m for m in values if m not in metrics]
        lines.append("| system | " + " | ".join(metrics) + " |")
        lines.append("|---|" + "---:|" * len(metrics))
        for system, values in r.systems.items():
            lines.append(f"| {system} | " + " | ".join(_fmt(values.get(m)) for m in metrics)
                         + " |")
        lines.append("")
        for text, check in BARS.get(name, []):
            try:
                ok = check(r.systems)
            except (TypeError, KeyError):
                ok = None
            lines.append(f"- bar: {text}: {_verdict(ok)}")
        if r.notes:
            lines.append("")
            tables = []
            for key, value in r.notes.items():
                if _is_table(value):
                    tables.append((key, value))
                    continue
                if isinstance(value, list):
                    value = ", ".join(map(str, value)) or "none"
                elif isinstance(value, dict):
                    value = "`" + json.dumps(value, separators=(", ", ": ")) + "`"
                lines.append(f"- {key}: {value}")
            for key, value in tables:
                lines += ["", f"{key}:", ""] + _note_table(value)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_report(results_dir: Path, out: Path) -> None:
    results = [BenchResult.load(p) for p in sorted(Path(results_dir).glob("*.json"))]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(render(results))
    tmp.replace(out)
