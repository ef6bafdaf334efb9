"""Every benchmark, one table: ``make bench`` (= ``python bench/run.py``).

Runs bench/intake.py, bench/ledger.py, bench/mail.py, bench/startup.py, bench/review.py and
bench/chaos.py when it exists, one after the other (each in a process of its own, with
``--json``), then prints one table (figure, baseline measured in the same run, ratio, goal,
met or not) and writes the same as JSON to bench/results.json. A benchmark that fails is a
line saying so; the others still run.

    python bench/run.py [--only intake,ledger] [--out FILE] [-- extra arguments are not passed]

Sizes: each script's defaults (intake 10,000 applications, ledger 1,000,000 entries, mail
1,000 messages, review 10,000 applications); ODD17_BENCH_PG_URL (a PostgreSQL admin URL)
adds the concurrent approvals."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["intake", "ledger", "mail", "startup", "review", "chaos"]


def run_one(name: str, work: Path, console: Console) -> dict[str, Any]:
    """Run bench/<name>.py --json; its figures, or why there are none."""
    script = HERE / f"{name}.py"
    if not script.exists():
        return {"benchmark": name, "skipped": f"{script.name} absent", "figures": []}
    if "--json" not in script.read_text("utf-8"):  # not (yet) able to give its figures
        return {"benchmark": name, "skipped": f"{script.name} has no --json option: run it "
                "alone", "figures": []}
    out = work / f"{name}.json"
    console.print(f"[dim]running {script.name}…[/]")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), "--json", str(out)],
                          capture_output=True, text=True, cwd=HERE.parent)
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"benchmark": name, "failed": f"exit {proc.returncode}: {tail[0]}",
                "seconds": seconds, "output": proc.stdout + proc.stderr, "figures": []}
    result: dict[str, Any] = json.loads(out.read_text("utf-8"))
    result.update(seconds=seconds, output=proc.stdout)
    return result


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".strip()


def table(results: list[dict[str, Any]]) -> Table:
    grid = Table(title="odd17 benchmarks")
    grid.add_column("figure")
    grid.add_column("measured", justify="right", no_wrap=True)
    grid.add_column("baseline, same run", justify="right", no_wrap=True)
    grid.add_column("the baseline is")
    grid.add_column("ratio", justify="right", no_wrap=True)
    grid.add_column("goal")
    grid.add_column("met", justify="center")
    for result in results:
        if not result["figures"]:
            why = result.get("skipped") or result.get("failed") or "no figures"
            grid.add_row(escape(result["benchmark"]), "", "", "", "", "", escape(why))
            continue
        for f in result["figures"]:
            met = "—" if f["met"] is None else ("[green]yes[/]" if f["met"] else "[red]no[/]")
            grid.add_row(escape(f["label"]), number(f["value"], f["unit"]),
                         number(f["baseline"], f["unit"]), escape(f["baseline_label"]),
                         "—" if f["ratio"] is None else f"{f['ratio']:.2f}",
                         escape(f["goal"] or "(information)"), met)
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description="odd17: every benchmark, one table")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHMARKS))
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    # Wide enough for one line per figure when written to a file or a pipe.
    console = Console() if sys.stdout.isatty() else Console(width=180)
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="odd17-bench-run-"))
    results = [run_one(name, work, console) for name in names]
    console.print(table(results))
    console.print(f"load average at the start {load[0]:.1f} on {os.cpu_count()} CPU(s): "
                  "figures from a shared machine are noisy; each is a median of interleaved "
                  "runs, against a baseline of the same run.")
    args.out.write_text(json.dumps({
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in load],
        "benchmarks": results}, ensure_ascii=False, indent=2) + "\n", "utf-8")
    console.print(f"written: {args.out}")
    if any("failed" in r for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
