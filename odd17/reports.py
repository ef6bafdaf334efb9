"""The finance report as a self-contained HTML page: inline CSS and SVG charts, no script and
no network, so it can be mailed or archived as one file."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from models import DomainError
from rules.money import date_fr, eur

SERIES = [("Disponible", "#3b82c4", "available"), ("Engagé", "#e0a030", "committed"),
          ("Versé", "#3aa57a", "disbursed")]
WIDTH, HEIGHT, PAD = 720, 240, 72


def _env() -> Environment:
    env = Environment(loader=PackageLoader("odd17", "data/templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.globals["eur"] = lambda value: eur(Decimal(value))
    return env


def _short(amount: Decimal) -> str:
    return f"{amount / 1000:,.0f} k€".replace(",", "\u202f")


def history_svg(history: list[dict[str, str]]) -> str:
    """Stacked areas (disponible, engagé, versé) per day with ledger activity."""
    if not history:
        return '<p class="muted">Aucune écriture.</p>'
    points = history if len(history) > 1 else history * 2
    top = max(Decimal(p["envelope"]) for p in points) or Decimal(1)
    step = (WIDTH - 2 * PAD) / (len(points) - 1)

    def y(value: Decimal) -> float:
        return HEIGHT - PAD + 0 - float(value / top) * (HEIGHT - 2 * PAD)

    shapes = []
    lower = [Decimal(0)] * len(points)
    for _, colour, key in reversed(SERIES):  # versé at the bottom, disponible on top
        upper = [lo + Decimal(p[key]) for lo, p in zip(lower, points, strict=True)]
        top_edge = [f"{PAD + i * step:.1f},{y(v):.1f}" for i, v in enumerate(upper)]
        bottom_edge = [f"{PAD + i * step:.1f},{y(v):.1f}" for i, v in enumerate(lower)]
        shapes.append(f'<polygon fill="{colour}" fill-opacity="0.85" points="'
                      f'{" ".join(top_edge + bottom_edge[::-1])}"/>')
        lower = upper
    labels = [f'<text x="{PAD}" y="{HEIGHT - PAD + 16}">{escape(points[0]["day"])}</text>',
              f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 16}" text-anchor="end">'
              f'{escape(points[-1]["day"])}</text>',
              f'<text x="{PAD - 6}" y="{PAD + 4}" text-anchor="end">{_short(top)}</text>',
              f'<text x="{PAD - 6}" y="{HEIGHT - PAD}" text-anchor="end">0</text>']
    return (f'<svg role="img" aria-label="Utilisation de l\'enveloppe dans le temps" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%">{"".join(shapes + labels)}</svg>')


def objective_svg(rows: list[dict[str, Any]]) -> str:
    """Horizontal bars: disbursed then still committed, per primary objective."""
    if not rows:
        return ""
    top = max(Decimal(r["committed"]) + Decimal(r["disbursed"]) for r in rows) or Decimal(1)
    bar, gap, left = 22, 10, 140
    height = len(rows) * (bar + gap) + gap
    parts = []
    for i, row in enumerate(rows):
        y0 = gap + i * (bar + gap)
        disbursed, committed = Decimal(row["disbursed"]), Decimal(row["committed"])
        w_d = float(disbursed / top) * (WIDTH - left - 120)
        w_c = float(committed / top) * (WIDTH - left - 120)
        parts.append(f'<text x="{left - 8}" y="{y0 + 15}" text-anchor="end">'
                     f'{escape(row["key"] or "—")}</text>')
        parts.append(f'<rect x="{left}" y="{y0}" width="{w_d:.1f}" height="{bar}" '
                     f'fill="#3aa57a"/>')
        parts.append(f'<rect x="{left + w_d:.1f}" y="{y0}" width="{w_c:.1f}" height="{bar}" '
                     f'fill="#e0a030"/>')
        parts.append(f'<text x="{left + w_d + w_c + 6:.1f}" y="{y0 + 15}">'
                     f'{escape(eur(disbursed + committed))}</text>')
    return (f'<svg role="img" aria-label="Montants par objectif" viewBox="0 0 {WIDTH} '
            f'{height}" width="100%">{"".join(parts)}</svg>')


def render_html(report: dict[str, Any], *, fund_name: str, now: dt.datetime) -> str:
    threshold = f"{Decimal(report['alert_threshold']) * 100:.0f} %"
    return _env().get_template("finance.html.j2").render(
        report=report, fund_name=fund_name, as_of=date_fr(now.date()), threshold=threshold,
        generated=now.strftime("%Y-%m-%d %H:%M UTC"),
        series=[(name, colour) for name, colour, _ in SERIES],
        history_svg=history_svg(report["history"]),
        objective_svg=objective_svg(report["by_objective"]),
    )


def write_html(report: dict[str, Any], path: Path, *, fund_name: str, now: dt.datetime) -> None:
    html = render_html(report, fund_name=fund_name, now=now)
    try:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(html, "utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise DomainError(f"{path} : écriture impossible ({exc.strerror})") from exc
