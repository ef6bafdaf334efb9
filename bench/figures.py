"""The shape every benchmark gives its figures in, for ``bench/run.py`` and ``--json``.

A figure is one line of the table: what was measured (``value`` in ``unit``), the baseline
measured in the same run (``baseline``, same unit), their cost ratio (``ratio``: how many times
the baseline's time the figure's time is; 1.0 = as fast as the baseline), the goal in words,
and whether it is met (``None`` for a line given for information, without a goal)."""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    name: str
    label: str
    value: float
    unit: str
    baseline: float | None
    baseline_label: str
    ratio: float | None
    goal: str
    met: bool | None


def rate_figure(name: str, label: str, count: int, seconds: float, base_seconds: float | None,
                unit: str, baseline_label: str, goal: str, met: bool | None) -> Figure:
    """A throughput (``count`` per second) against a baseline timed on the same work."""
    return Figure(name, label, round(count / seconds, 1), unit,
                  None if base_seconds is None else round(count / base_seconds, 1),
                  baseline_label,
                  None if base_seconds is None else round(seconds / base_seconds, 3),
                  goal, met)


def time_figure(name: str, label: str, seconds: float, base_seconds: float | None,
                baseline_label: str, goal: str, met: bool | None, unit: str = "s") -> Figure:
    """A duration against a baseline duration; ``unit`` "ms" shows both in milliseconds."""
    scale = 1000.0 if unit == "ms" else 1.0
    return Figure(name, label, round(seconds * scale, 4), unit,
                  None if base_seconds is None else round(base_seconds * scale, 4),
                  baseline_label,
                  None if base_seconds is None else round(seconds / base_seconds, 3),
                  goal, met)


def median(values: list[float]) -> float:
    return statistics.median(values)


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="FICHIER",
                        help="also write the figures as JSON to this file (for bench/run.py)")


def write_json(path: Path | None, benchmark: str, figures: list[Figure],
               **context: Any) -> None:
    if path is None:
        return
    path.write_text(json.dumps({"benchmark": benchmark, "context": context,
                                "figures": [asdict(f) for f in figures]},
                               ensure_ascii=False, indent=2) + "\n", "utf-8")
