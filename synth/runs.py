"""Where commands write when no `--out` is given: one convention for every command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

RUNS = Path("runs")


def default_out(command: str, name: str | None = None) -> Path:
    """`runs/<command>/<name>`: the name of what the command ran on (a coreset's or an
    experiment's), or, for a run that has none, the time it started."""
    return RUNS / command / (name or datetime.now().strftime("%Y%m%d-%H%M%S"))
