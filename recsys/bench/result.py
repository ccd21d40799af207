"""The one shape every benchmark result takes, and how it is printed and saved."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


def machine_description() -> str:
    """E.g. ``"2 cores, no GPU"`` or ``"16 cores, NVIDIA H100"``."""
    cores = os.cpu_count() or 1
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cores} cores, {gpu}, {platform.machine()}"


def invoked_command() -> str:
    """The command line that is running, as a person would type it."""
    argv = list(sys.argv)
    argv[0] = Path(argv[0]).name
    return shlex.join(argv)


@dataclass
class BenchResult:
    bench: str
    split: str
    n_items: int
    systems: dict[str, dict[str, float]]
    command: str = field(default_factory=invoked_command)
    machine: str = field(default_factory=machine_description)
    notes: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchResult:
        return cls(**json.loads(Path(path).read_text()))

    def table(self) -> Table:
        metrics: list[str] = []
        for values in self.systems.values():
            metrics += [m for m in values if m not in metrics]
        table = Table(title=f"{self.bench} ({self.split}, n={self.n_items}, {self.machine})")
        table.add_column("system")
        for m in metrics:
            table.add_column(m, justify="right")
        for name, values in self.systems.items():
            table.add_row(name, *[_fmt(values.get(m)) for m in metrics])
        return table

    def print(self) -> None:
        Console().print(self.table())


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)
