"""The finance report (HTML and terminal) built from real ledgers written at given dates."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from odd17 import reports
from odd17.cli import app
from odd17.db import unit_of_work
from odd17.services import finance, ledger, queries
from odd17.settings import reset_caches
from rules.money import eur
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee, uow_on

T = Decimal("0.10")
D = Decimal
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script> [red]Rouge[/red] \u202eLTR"
NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def first_day(engine: Engine) -> dt.date:
    """The day `odd17 init` opened the envelope (the first ledger day)."""
    return dt.date.fromisoformat(report(engine)["history"][0]["day"])


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def approve(engine: Engine, ref: str, amount: str, day: dt.date) -> None:
    with unit_of_work(engine) as s:
        ledger.approve(as_uow(s, now=at(day), actor="comite"), ref, D(amount), plan=DEFAULT_PLAN)


def pay(engine: Engine, ref: str, n: int, day: dt.date) -> None:
    with unit_of_work(engine) as s:
        ledger.pay(as_uow(s, now=at(day), actor="dfi"), ref, n, f"VIR-{ref}-{n}", paid_on=day)


def topup(engine: Engine, amount: str, day: dt.date) -> None:
    with unit_of_work(engine) as s:
        ledger.topup(as_uow(s, now=at(day), actor="ca"), D(amount), reason="CA",
                     key=f"topup:{day}")


def report(engine: Engine, on: dt.date | None = None) -> dict[str, Any]:
    with unit_of_work(engine) as s:
        return finance.finance_report(uow_on(s), **({"on": on} if on else {}))


def svg_of(html: str, ident: str) -> ET.Element:
    match = re.search(rf'<svg role="img" aria-labelledby="{ident}-t.*?</svg>', html, re.S)
    assert match, f"no {ident} chart"
    return ET.fromstring(match.group())


def render(engine: Engine, on: dt.date) -> str:
    return reports.render_html(report(engine, on), fund_name="Fonds <ODD> 17", now=at(on))


def cli(*args: str) -> tuple[int, str]:
    reset_caches()
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"},
                                catch_exceptions=False)
    return result.exit_code, result.stdout


def two_years(engine: Engine) -> tuple[dt.date, list[str]]:
    """Approvals, payments and a top-up spread over two years, in two regions."""
    start = first_day(engine)
    idf = in_committee(engine, 2, requested="100000.00")
    bzh = in_committee(engine, 1, requested="80000.00", start=10,
                       territory={"region": "Bretagne", "department": "29"})
    approve(engine, idf[0], "100000.00", start + dt.timedelta(days=1))
    pay(engine, idf[0], 1, start + dt.timedelta(days=2))
    approve(engine, bzh[0], "80000.00", start + dt.timedelta(days=40))
    topup(engine, "500000.00", start + dt.timedelta(days=200))
    approve(engine, idf[1], "60000.00", start + dt.timedelta(days=400))
    pay(engine, bzh[0], 1, start + dt.timedelta(days=730))
    return start, idf + bzh


def test_time_axis_is_proportional_to_dates(engine: Engine) -> None:
    start, _ = two_years(engine)
    on = start + dt.timedelta(days=760)
    svg = svg_of(render(engine, on), "hist")
    points = {dt.date.fromisoformat(c.get("data-day", "")): float(c.get("cx", ""))
              for c in svg.iter(f"{SVG}circle")}
    offsets = [0, 1, 2, 40, 200, 400, 730]
    assert sorted(points) == [start + dt.timedelta(days=d) for d in offsets]
    x0 = points[start]
    per_day = (points[start + dt.timedelta(days=730)] - x0) / 730
    for day, x in points.items():
        assert x == pytest.approx(x0 + (day - start).days * per_day, abs=0.02), day
    # the band holds the last balances until the report's date
    areas = list(svg.iter(f"{SVG}polygon"))
    assert len(areas) == 3
    right = max(float(p.split(",")[0]) for a in areas for p in a.get("points", "").split())
    assert right == pytest.approx(x0 + 760 * per_day, abs=0.02)
    # French month ticks, each placed at its date
    ticks = [(t.text or "", float(t.get("x", ""))) for t in svg.iter(f"{SVG}text")
             if t.get("text-anchor") == "middle"]
    months = {"janv.": 1, "févr.": 2, "mars": 3, "avr.": 4, "mai": 5, "juin": 6,
              "juil.": 7, "août": 8, "sept.": 9, "oct.": 10, "nov.": 11, "déc.": 12}
    assert len(ticks) >= 4
    for label, x in ticks:
        name, year = label.split(" ")
        day = dt.date(int(year), months[name], 1)
        assert x == pytest.approx(x0 + (day - start).days * per_day, abs=0.1), label
    # y axis in euros, the French way
    assert any(re.fullmatch(r"\d{1,3}(\u202f\d{3})+\u00a0€", t.text or "")
               for t in svg.iter(f"{SVG}text"))


def test_one_day_of_data_is_a_bar_with_its_figures(engine: Engine) -> None:
    day = first_day(engine)
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "100000.00", day)
    pay(engine, ref, 1, day)
    r = report(engine, day)
    assert len(r["history"]) == 1
    svg = svg_of(render(engine, day), "hist")
    assert list(svg.iter(f"{SVG}polygon")) == []
    bars = {b.get("data-series"): float(b.get("width", "")) for b in svg.iter(f"{SVG}rect")
            if b.get("data-series")}
    assert bars["disbursed"] == pytest.approx(bars["committed"])  # 50 000 each
    assert bars["available"] == pytest.approx(bars["committed"] * 38)
    text = " ".join(svg.itertext())
    for amount in ("50000.00", "1900000.00", "2000000.00"):
        assert eur(D(amount)) in text


def test_no_data_but_the_opening_is_one_day_too(engine: Engine) -> None:
    day = first_day(engine)
    svg = svg_of(render(engine, day), "hist")
    assert list(svg.iter(f"{SVG}polygon")) == []
    assert eur(D("2000000.00")) in " ".join(svg.itertext())


def test_regions_view_lists_every_region_with_its_figures(engine: Engine) -> None:
    start, _ = two_years(engine)
    html = render(engine, start + dt.timedelta(days=760))
    svg = svg_of(html, "reg")
    rows = {g.get("data-key"): " ".join(g.itertext()) for g in svg.iter(f"{SVG}g")}
    assert set(rows) == {"Bretagne", "Île-de-France"}
    assert eur(D("80000.00")) in rows["Bretagne"]
    assert eur(D("160000.00")) in rows["Île-de-France"]
    table = html.split("Par région</h2>")[1].split("</table>")[0]
    for region, committed, disbursed in (("Bretagne", "40000.00", "40000.00"),
                                         ("Île-de-France", "110000.00", "50000.00")):
        row = table.split(f'<th scope="row">{region}</th>')[1].split("</tr>")[0]
        assert [eur(D(committed)), eur(D(disbursed))] == re.findall(r'class="num">([^<]*€)',
                                                                    row)
    code, out = cli("finance")
    assert code == 0
    assert re.search(r"Bretagne\s*│\s*40\u202f000,00\xa0€\s*│\s*40\u202f000,00\xa0€", out)


def test_tranches_due_in_html_and_json(engine: Engine) -> None:
    start, refs = two_years(engine)
    on = start + dt.timedelta(days=760)
    expected = []
    with unit_of_work(engine) as s:
        for ref in refs:
            detail = queries.application_detail(uow_on(s), ref)["grant"]
            expected += [(t["due_on"], ref, t["number"], t["amount"]) for t in detail["tranches"]
                         if t["paid_on"] is None and t["due_on"] <= on.isoformat()]
    due = report(engine, on)["tranches_due"]
    assert [(r["due_on"], r["reference"], r["tranche"], r["amount"]) for r in due] == sorted(
        expected)
    assert (refs[1], "30000.00") in [(r["reference"], r["left"]) for r in due]
    assert {r["beneficiary"] for r in due} == {"Association Passerelles Mantoises"}
    section = render(engine, on).split("Tranches échues à verser</h2>")[1]
    rows = section.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    assert len(rows) == len(due)
    for row, r in zip(rows, due, strict=True):
        late = (on - dt.date.fromisoformat(r["due_on"])).days
        assert r["reference"] in row and "Association Passerelles Mantoises" in row
        assert f"n°{r['tranche']}" in row and eur(D(r["amount"])) in row
        assert f"({late} j)" in row
    total = sum(D(r["left"]) for r in due)
    assert f"Total à verser</td>\n    <td class=\"num\">{eur(total)}" in section
    code, raw = cli("finance", "--json")
    assert code == 0
    assert {"envelope", "committed", "disbursed", "available", "currency", "grants", "alert",
            "alert_threshold", "by_objective", "by_region", "history", "as_of",
            "tranches_due"} == set(json.loads(raw))


def test_terminal_lists_tranches_due_today(engine: Engine) -> None:
    day = first_day(engine)
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "100000.00", day - dt.timedelta(days=3))
    code, out = cli("finance")
    assert code == 0
    assert re.search(rf"{ref}\s*│\s*Association Passerelles Mantoises\s*│\s*n°1", out)
    assert "Total à verser : 50\u202f000,00\xa0€" in out


def hostile(engine: Engine) -> str:
    [ref] = in_committee(engine, 1, title=HOSTILE,
                         lead={"name": HOSTILE, "kind": "association",
                               "siret": "52601815590833", "email": "a@b.example.org"},
                         territory={"department": "78"})  # the region is derived now
    approve(engine, ref, "100000.00", first_day(engine) - dt.timedelta(days=1))
    return ref


def test_hostile_text_is_escaped_in_html(engine: Engine) -> None:
    hostile(engine)
    html = render(engine, first_day(engine))
    assert reports.autoescaped()
    assert "<script" not in html
    assert "\u202e" not in html
    assert html.count("&lt;script&gt;") >= 2  # beneficiary and title
    assert "&lt;U+202E&gt;LTR" in html
    assert "Fonds &lt;ODD&gt; 17" in html
    ET.fromstring(re.search(r'<svg role="img" aria-labelledby="reg-t.*?</svg>', html,
                            re.S).group())  # type: ignore[union-attr]


def test_hostile_text_is_shown_as_is_in_the_terminal(engine: Engine) -> None:
    hostile(engine)
    code, out = cli("finance")
    assert code == 0
    assert "\u202e" not in out
    assert "[red]Rouge[/red]" in out  # the beneficiary's name, markup not applied
    assert "<U+202E>LTR" in out


def test_objectives_in_french_in_html_and_terminal(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)  # primary objective: experimentation
    approve(engine, ref, "100000.00", first_day(engine))
    html = render(engine, first_day(engine))
    assert "Expérimentation" in html and ">experimentation<" not in html
    code, out = cli("finance")
    assert code == 0
    assert "Expérimentation" in out and "experimentation" not in out


def test_regions_in_french_reading_order() -> None:
    from rules.text import sort_key

    names = ["Provence-Alpes-Côte d'Azur", "Île-de-France", "Hauts-de-France", "La Réunion",
             "écosse"]
    assert sorted(names, key=sort_key) == ["écosse", "Hauts-de-France", "Île-de-France",
                                           "La Réunion", "Provence-Alpes-Côte d'Azur"]


@pytest.mark.parametrize(("end", "labels"), [
    (dt.date(2026, 12, 5), ["23 nov.", "25 nov.", "27 nov.", "29 nov.", "1 déc.", "3 déc.",
                            "5 déc."]),
    (dt.date(2027, 3, 5), ["déc. 2026", "janv. 2027", "févr. 2027", "mars 2027"]),
    (dt.date(2028, 12, 22), ["janv. 2027", "juil. 2027", "janv. 2028", "juil. 2028"]),
    (dt.date(2031, 3, 1), ["2027", "2028", "2029", "2030", "2031"]),
])
def test_date_ticks_in_french_at_round_dates(end: dt.date, labels: list[str]) -> None:
    ticks = reports.date_ticks(dt.date(2026, 11, 23), end)
    assert [label for _, label in ticks] == labels
    if not labels[0][0].isdigit() or labels[0].isdigit():  # months and years: on the 1st
        assert all(day.day == 1 for day, _ in ticks)
    if labels[0] == "2027":
        assert all(day.month == 1 for day, _ in ticks)


def test_partly_paid_tranche_shows_what_is_left(engine: Engine) -> None:
    """The page shows « reste à payer » from the service's ``left`` (the ledger's
    partial payments), and totals what is left rather than the tranche amounts."""
    day = first_day(engine)
    refs = in_committee(engine, 2)
    for ref in refs:
        approve(engine, ref, "100000.00", day)
    r = report(engine, day)
    html = reports.render_html(r, fund_name="F", now=at(day))
    assert "reste à payer" not in html
    r["tranches_due"][0]["left"] = "20000.00"
    html = reports.render_html(r, fund_name="F", now=at(day))
    section = html.split("Tranches échues à verser</h2>")[1]
    assert "reste à payer" in section and eur(D("20000.00")) in section
    assert f'<td class="num">{eur(D("70000.00"))}</td>' in section
