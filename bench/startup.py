"""Start-up time of the CLI: ``odd17 --help`` and ``odd17 list`` on a small base.

Each command is a fresh process (what a user waits for), timed from spawn to exit; rounds are
interleaved with three baselines, ``python -c pass`` (the interpreter), ``python -c "import
typer"`` (the floor of any Typer CLI) and the imports of the stack a database command needs
(SQLAlchemy's ORM, pydantic-settings, Typer, rich: ``STACK``), and each figure is the median.

    python bench/startup.py [--rounds 11] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figure, json_option, median, time_figure, write_json

ODD17 = Path(sys.executable).with_name("odd17")
HELP_GOAL, LIST_GOAL = 0.3, 0.5
# What any command that reads the database imports, whatever it does: the ORM, the settings,
# the CLI and its tables (the floor of ``odd17 list`` in this stack, odd17's code aside)
STACK = "import sqlalchemy.orm, pydantic_settings, typer, rich.table"


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    return seconds


def small_base(work: Path) -> dict[str, str]:
    """An initialised SQLite base holding the fund and its call, no applications.

    The processes may write their bytecode: an installed odd17 has it (pip compiles a wheel
    at install; Python writes it on a first run), and the warm-up runs write it here. With
    PYTHONDONTWRITEBYTECODE (set in some sandboxes and containers), every run would compile
    odd17's own modules again: 30 to 50 ms of ``odd17 list`` that no user pays."""
    env = {**os.environ, "ODD17_DATABASE_URL": f"sqlite:///{work / 'odd17.db'}"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([str(ODD17), "init"], env=env, check=True, capture_output=True)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description="odd17: CLI start-up time")
    parser.add_argument("--rounds", type=int, default=11)
    json_option(parser)
    args = parser.parse_args()
    env = small_base(Path(tempfile.mkdtemp(prefix="odd17-bench-startup-")))
    runs: dict[str, list[float]] = {"pass": [], "typer": [], "stack": [], "help": [],
                                    "list": []}
    argv = {"pass": [sys.executable, "-c", "pass"],
            "typer": [sys.executable, "-c", "import typer"],
            "stack": [sys.executable, "-c", STACK],
            "help": [str(ODD17), "--help"], "list": [str(ODD17), "list"]}
    for name in runs:  # one warm-up each: fills the OS file cache and writes the bytecode
        timed(argv[name], env)
    for _ in range(args.rounds):
        for name, times in runs.items():
            times.append(timed(argv[name], env))
    m = {name: median(times) for name, times in runs.items()}
    print(f"python -c pass        {m['pass'] * 1000:7.1f} ms")
    print(f"python -c import typer{m['typer'] * 1000:7.1f} ms")
    print(f"the stack's imports   {m['stack'] * 1000:7.1f} ms  ({STACK})")
    figures: list[Figure] = []
    for name, label, goal in (("help", "odd17 --help", HELP_GOAL),
                              ("list", "odd17 list, small base", LIST_GOAL)):
        for base, base_label in (("typer", 'python -c "import typer"'),
                                 ("pass", "python -c pass")):
            figures.append(time_figure(
                f"startup_{name}_vs_{base}", f"{label} (vs {base_label})", m[name], m[base],
                base_label, f"≤ {goal * 1000:.0f} ms" if base == "typer" else "",
                m[name] <= goal if base == "typer" else None, unit="ms"))
            print(f"{label:24}{m[name] * 1000:7.1f} ms, {m[name] / m[base]:5.2f} × "
                  f"{base_label}")
    figures.append(time_figure(
        "startup_list_vs_stack", "odd17 list, small base (vs the stack's imports)", m["list"],
        m["stack"], f'python -c "{STACK}"', "", None, unit="ms"))
    print(f"odd17 list, small base  {m['list'] * 1000:7.1f} ms, "
          f"{(m['list'] - m['stack']) * 1000:+.0f} ms over the stack's imports")
    write_json(args.json, "startup", figures, rounds=args.rounds,
               medians_ms={k: round(v * 1000, 1) for k, v in m.items()})


if __name__ == "__main__":
    main()
