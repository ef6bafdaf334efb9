"""The finance report as a self-contained HTML page: inline CSS and SVG charts, no script and
no network, so it can be mailed or archived as one file.

Each chart is an ``<svg role="img">`` with a title and a description, followed by a table of
the same figures (screen readers, printing, phones). Every user string is escaped: Jinja
autoescaping in the template, ``html.escape`` in the SVG built here, and invisible controls
(bidirectional marks) shown as ``<U+XXXX>`` first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, Decimal
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from jinja2 import Environment, PackageLoader, select_autoescape

from models import DomainError
from odd17.settings import get_settings
from rules.labels import objective_label
from rules.money import date_fr, eur
from rules.text import show_controls, sort_key

LOCALE = "fr_FR"
# Stacking order, bottom to top: versé, engagé, disponible (their sum is the envelope).
SERIES = [("Versé", "#2f8f6a", "disbursed"), ("Engagé", "#d4901c", "committed"),
          ("Disponible", "#3b82c4", "available")]
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 96, 20, 16, 44  # plot margins inside the viewBox
TEMPLATE = "finance.html.j2"


def _env() -> Environment:
    env = Environment(loader=PackageLoader("odd17", "data/templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.globals["eur"] = lambda value: eur(Decimal(value))
    env.filters["shown"] = lambda value: show_controls(str(value)) if value else "—"
    env.globals["objective_label"] = objective_label
    env.globals["region_label"] = _region
    env.filters["day"] = lambda value: date_fr(dt.date.fromisoformat(value))
    return env


def autoescaped() -> bool:
    """Whether the finance template is rendered with autoescaping (it must be)."""
    env = _env()
    return bool(env.autoescape(TEMPLATE) if callable(env.autoescape) else env.autoescape)


def euros(amount: Decimal) -> str:
    """``1 500 000 €``: whole euros the French way, for axes."""
    return format_currency(amount, "EUR", format="#,##0\u00a0¤", currency_digits=False,
                           locale=LOCALE)


def _text(value: str) -> str:
    return escape(show_controls(value))


def _nice_step(top: Decimal, ticks: int = 4) -> Decimal:
    """A round step (1, 2 or 5 × 10ⁿ euros) giving about ``ticks`` intervals up to ``top``."""
    raw = top / ticks
    power = Decimal(10) ** (len(str(int(raw))) - 1)
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _y_axis(top: Decimal) -> tuple[Decimal, list[Decimal]]:
    step = _nice_step(top if top > 0 else Decimal(1))
    count = int((top / step).to_integral_value(ROUND_CEILING)) or 1
    return step * count, [step * i for i in range(count + 1)]


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def date_ticks(start: dt.date, end: dt.date, most: int = 8) -> list[tuple[dt.date, str]]:
    """Ticks between ``start`` and ``end``: days (``3 nov.``) over a short span, else the
    first of a month every 1, 2, 3, 6, 12 or 24 months (``nov. 2026``, or ``2027``)."""
    span = (end - start).days
    if span <= 60:
        step = next(s for s in (1, 2, 7, 14, 30) if span / s <= most)
        days = [start + dt.timedelta(days=i) for i in range(0, span + 1, step)]
        return [(d, format_date(d, "d MMM", locale=LOCALE)) for d in days]
    months = (end.year - start.year) * 12 + end.month - start.month
    step = next(s for s in (1, 2, 3, 6, 12, 24, 60) if months / s <= most)
    tick = _add_months(start, 0 if start.day == 1 else 1)
    while (tick.month - 1) % min(step, 12):  # quarters, halves and years start in January
        tick = _add_months(tick, 1)
    ticks = []
    while tick <= end:
        label = str(tick.year) if step >= 12 else format_date(tick, "MMM y", locale=LOCALE)
        ticks.append((tick, label))
        tick = _add_months(tick, step)
    return ticks


def _svg(ident: str, title: str, desc: str, height: int, body: list[str]) -> str:
    return (f'<svg role="img" aria-labelledby="{ident}-t {ident}-d" viewBox="0 0 {WIDTH} '
            f'{height}" width="100%" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{ident}-t">{escape(title)}</title>'
            f'<desc id="{ident}-d">{escape(desc)}</desc>{"".join(body)}</svg>')


def _figures(point: dict[str, str]) -> str:
    return ", ".join(f"{name.lower()} {eur(Decimal(point[key]))}" for name, _, key in SERIES)


def history_svg(history: list[dict[str, str]], *, as_of: dt.date | None = None) -> str:
    """Stacked areas (versé, engagé, disponible) over time, x proportional to dates.

    Balances are those at the end of each day with ledger activity and hold until the next
    one, hence steps; the last ones hold until ``as_of`` (the report's date). One day of data
    is shown as a single bar with its figures: there is no trend to draw."""
    if not history:
        return '<p class="muted">Aucune écriture.</p>'
    if len(history) == 1:
        return single_day_svg(history[0])
    days = [dt.date.fromisoformat(p["day"]) for p in history]
    end = max(days[-1] + dt.timedelta(days=1), as_of or days[-1])
    span = (end - days[0]).days
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top, y_ticks = _y_axis(max(Decimal(p["envelope"]) for p in history))

    def x(day: dt.date) -> float:
        return LEFT + (day - days[0]).days / span * plot_w

    def y(value: Decimal) -> float:
        return TOP + plot_h - float(value / top) * plot_h

    body = [f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'class="grid"/><text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f'{escape(euros(v))}</text>' for v in y_ticks]
    lower = [Decimal(0)] * len(history)
    xs = [x(d) for d in days] + [x(end)]
    for name, colour, key in SERIES:
        upper = [lo + Decimal(p[key]) for lo, p in zip(lower, history, strict=True)]
        body.append(f'<polygon class="area" data-series="{key}" fill="{colour}" '
                    f'points="{_steps(xs, upper, lower, y)}"><title>{name}</title></polygon>')
        lower = upper
    for day, point, used in zip(days, history, _used(history), strict=True):
        body.append(f'<circle class="pt" data-day="{day.isoformat()}" cx="{x(day):.2f}" '
                    f'cy="{y(used):.1f}" r="2.5"><title>{escape(date_fr(day))} : '
                    f'{escape(_figures(point))}</title></circle>')
    base = TOP + plot_h
    for day, label in date_ticks(days[0], end):
        body.append(f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{base}" y2="{base + 5}" '
                    f'class="axis"/><text x="{x(day):.1f}" y="{base + 18}" '
                    f'text-anchor="middle">{escape(label)}</text>')
    body.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" '
                f'class="axis"/>')
    desc = (f"Du {date_fr(days[0])} au {date_fr(end)}, {len(days)} jours avec écritures. "
            f"Au {date_fr(days[-1])} : {_figures(history[-1])} ; enveloppe "
            f"{eur(Decimal(history[-1]['envelope']))}.")
    return _svg("hist", "Utilisation de l'enveloppe dans le temps", desc, HEIGHT, body)


def _used(history: list[dict[str, str]]) -> list[Decimal]:
    return [Decimal(p["committed"]) + Decimal(p["disbursed"]) for p in history]


def _steps(xs: list[float], upper: list[Decimal], lower: list[Decimal],
           y: Callable[[Decimal], float]) -> str:
    """A step-after band: each value holds from its x to the next one."""
    def edge(values: list[Decimal]) -> list[str]:
        out = []
        for i, value in enumerate(values):
            out += [f"{xs[i]:.2f},{y(value):.1f}", f"{xs[i + 1]:.2f},{y(value):.1f}"]
        return out

    return " ".join(edge(upper) + edge(lower)[::-1])


def single_day_svg(point: dict[str, str]) -> str:
    """One day of data: one bar of the envelope split in versé, engagé, disponible, with the
    figures written out."""
    envelope = Decimal(point["envelope"]) or Decimal(1)
    day = dt.date.fromisoformat(point["day"])
    width, left, bar_y, bar_h = WIDTH - 2 * 16, 16, 30, 36
    body = [f'<text x="{left}" y="18" class="strong">Au {escape(date_fr(day))} (une seule '
            f'journée d\'écritures) : enveloppe {escape(eur(Decimal(point["envelope"])))}'
            f'</text>']
    offset = float(left)
    for i, (name, colour, key) in enumerate(SERIES):
        value = Decimal(point[key])
        share = float(value / envelope) * width
        body.append(f'<rect class="bar" data-series="{key}" x="{offset:.1f}" y="{bar_y}" '
                    f'width="{share:.1f}" height="{bar_h}" fill="{colour}"><title>{name} : '
                    f'{escape(eur(value))}</title></rect>')
        offset += share
        ty = bar_y + bar_h + 22 + i * 20
        body.append(f'<rect x="{left}" y="{ty - 10}" width="12" height="12" '
                    f'fill="{colour}"/><text x="{left + 18}" y="{ty}">{name} : '
                    f'{escape(eur(value))} ({_percent(value, envelope)})</text>')
    desc = f"Au {date_fr(day)} : {_figures(point)} ; enveloppe {eur(Decimal(point['envelope']))}."
    return _svg("hist", "Utilisation de l'enveloppe (une seule journée d'écritures)", desc,
                bar_y + bar_h + 22 + len(SERIES) * 20, body)


def _percent(value: Decimal, whole: Decimal) -> str:
    return f"{value / whole * 100:.1f}\u00a0%".replace(".", ",")


def split_svg(rows: list[dict[str, Any]], *, ident: str, title: str,
              label: Callable[[str | None], str]) -> str:
    """Horizontal bars per key: versé, then what is still engagé."""
    if not rows:
        return ""
    names = [show_controls(label(r["key"])) for r in rows]
    names = [n if len(n) <= 32 else n[:31] + "…" for n in names]
    left = min(260, 16 + 7 * max(len(n) for n in names))
    top = max(Decimal(r["committed"]) + Decimal(r["disbursed"]) for r in rows) or Decimal(1)
    bar, gap, room = 22, 10, WIDTH - left - 130
    parts = []
    for i, (row, name) in enumerate(zip(rows, names, strict=True)):
        y0 = gap + i * (bar + gap)
        disbursed, committed = Decimal(row["disbursed"]), Decimal(row["committed"])
        w_d, w_c = float(disbursed / top) * room, float(committed / top) * room
        parts.append(f'<g class="row" data-key="{escape(show_controls(row["key"] or ""))}">'
                     f'<text x="{left - 8}" y="{y0 + 15}" text-anchor="end">{escape(name)}'
                     f'</text><rect x="{left}" y="{y0}" width="{w_d:.1f}" height="{bar}" '
                     f'fill="{SERIES[0][1]}"><title>versé {escape(eur(disbursed))}</title>'
                     f'</rect><rect x="{left + w_d:.1f}" y="{y0}" width="{w_c:.1f}" '
                     f'height="{bar}" fill="{SERIES[1][1]}"><title>engagé '
                     f'{escape(eur(committed))}</title></rect>'
                     f'<text x="{left + w_d + w_c + 6:.1f}" y="{y0 + 15}">'
                     f'{escape(eur(disbursed + committed))}</text></g>')
    desc = "; ".join(f"{n} : versé {eur(Decimal(r['disbursed']))}, engagé "
                     f"{eur(Decimal(r['committed']))}" for n, r in zip(names, rows, strict=True))
    return _svg(ident, title, desc, len(rows) * (bar + gap) + gap, parts)


def _region(key: str | None) -> str:
    return key or "—"


def _due_rows(report: Mapping[str, Any], as_of: dt.date) -> list[dict[str, Any]]:
    return [{**row, "late_days": (as_of - dt.date.fromisoformat(row["due_on"])).days}
            for row in report.get("tranches_due", [])]


def render_html(report: Mapping[str, Any], *, fund_name: str, now: dt.datetime,
                timezone: str | None = None) -> str:
    """The page; dates and times shown in ``timezone`` (default: ODD17_TIMEZONE)."""
    timezone = timezone or get_settings().timezone
    report = {**report, "by_region": sorted(report["by_region"],
                                            key=lambda r: sort_key(r["key"]))}
    local = now.astimezone(ZoneInfo(timezone))
    as_of = dt.date.fromisoformat(report["as_of"]) if "as_of" in report else local.date()
    due = _due_rows(report, as_of)
    threshold = f"{Decimal(report['alert_threshold']) * 100:.0f} %"
    return _env().get_template(TEMPLATE).render(
        report=report, fund_name=fund_name, as_of=date_fr(as_of), threshold=threshold,
        generated=format_datetime(local, "d MMMM y 'à' HH:mm", locale=LOCALE)
        + f" ({timezone})",
        series=[(name, colour) for name, colour, _ in SERIES],
        history_svg=history_svg(report["history"], as_of=as_of),
        objective_svg=split_svg(report["by_objective"], ident="obj",
                                title="Engagé et versé par objectif principal",
                                label=objective_label),
        region_svg=split_svg(report["by_region"], ident="reg",
                             title="Engagé et versé par région", label=_region),
        due=due, has_due="tranches_due" in report,
        due_total=sum((Decimal(r["left"]) for r in due), Decimal("0.00")),
        partial=any(r["left"] != r["amount"] for r in due),
    )


def write_html(report: Mapping[str, Any], path: Path, *, fund_name: str, now: dt.datetime,
               timezone: str | None = None) -> None:
    html = render_html(report, fund_name=fund_name, now=now, timezone=timezone)
    try:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(html, "utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise DomainError(f"{path} : écriture impossible ({exc.strerror})") from exc
