"""The finance workspace (odd17/web/finance.py) through HTTP: the figures and the ledger
check, a payment recorded from its form and shown, bad input refused in French beside its
field, CSRF, the other roles refused, a bank statement with a bad line (the others recorded)
and the exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from models import EntryKind, Tranche
from odd17.db import unit_of_work
from odd17.services import ledger
from odd17.services.finance import LedgerQuery, ledger_batch, ledger_csv_row, ledger_page
from rules.labels import objective_label
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee
from tests.webutil import (
    STAFF,
    Clock,
    add_people,
    client,
    form_token,
    open_session,
    uow_at,
    with_cookie,
)

# approved 20 days ago: the first tranche is due, payments may be dated since then
NOW = dt.datetime.combine(dt.date.today() - dt.timedelta(days=20), dt.time(10), dt.UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def approved(engine: Engine, clock: Clock, count: int = 2,
             refs: list[str] | None = None) -> list[str]:
    """``refs`` (default: ``count`` new applications in committee) approved for 100 000 €
    (NOW), and the portal's people added."""
    refs = in_committee(engine, count) if refs is None else refs
    with unit_of_work(engine) as s:
        for ref in refs:
            ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal("100000"),
                           plan=DEFAULT_PLAN)
    with uow_at(engine, clock) as uow:
        add_people(uow)
    return refs


def browser(engine: Engine, clock: Clock, role: str = "finance") -> TestClient:
    return with_cookie(client(engine, clock), open_session(engine, clock, STAFF[role])[0])


def pay_form(b: TestClient, ref: str, number: int = 1, **fields: str) -> object:
    token = form_token(b.get("/finances/tranches").text)
    data = {"csrf_token": token, "paid_on": dt.date.today().isoformat(),
            "payment_reference": "VIR-WEB-1", **fields}
    return b.post(f"/finances/tranches/{ref}/{number}", data=data)


def paid(engine: Engine, ref_number: int = 1) -> list[tuple[str | None, Decimal | None]]:
    with unit_of_work(engine) as s:
        return [(t.payment_reference, t.paid_amount)
                for t in s.scalars(select(Tranche).where(Tranche.number == ref_number)
                                   .order_by(Tranche.id))]


def test_the_figures_and_the_ledger_check(engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock)
    with browser(engine, clock) as b:
        answer = b.get("/finances")
    assert answer.status_code == 200
    text = answer.text
    assert "200\u202f000,00 €" in text or "200 000,00 €" in text  # committed
    assert "Tous les invariants du grand livre sont vérifiés." in text
    assert "<svg" in text and "<script>" not in text and "style=" not in text
    assert "2 tranche(s) à verser" in text
    assert f'<th scope="row">{objective_label("experimentation")}</th>' in text
    with browser(engine, clock) as b:
        tranches = b.get("/finances/tranches").text
    for ref in refs:
        assert f"/finances/tranches/{ref}/1" in tranches


def test_a_payment_is_recorded_then_shown_and_a_retry_records_nothing(
        engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock)
    with browser(engine, clock) as b:
        answer = pay_form(b, refs[0], amount="20 000,50")
        assert answer.status_code == 303  # type: ignore[attr-defined]
        shown = b.get(answer.headers["location"]).text  # type: ignore[attr-defined]
        assert "Versement enregistré." in shown
        # partly paid: still due for the rest, what was paid shown
        row = re.search(rf"<th scope=\"row\">{refs[0]}</th>.*?</tr>", shown, re.S)
        assert row and re.search(r"20.000,50 €", row.group(0))
        again = pay_form(b, refs[0], amount="20 000,50")
        assert "fait=deja" in again.headers["location"]  # type: ignore[attr-defined]
    assert (("VIR-WEB-1", Decimal("20000.50")) in paid(engine))


@pytest.mark.parametrize(("fields", "message"), [
    ({"amount": "12,345"}, "montant invalide « 12,345 »"),
    ({"amount": "-5"}, "montant invalide « -5 »"),
    ({"amount": "abc"}, "montant invalide « abc »"),
    ({"paid_on": "03/12/2026"}, "date de paiement invalide"),
    ({"payment_reference": "  "}, "la référence de paiement est obligatoire"),
    ({"amount": "999 999,00"}, "dépasse"),  # refused by the ledger, the page says why
])
def test_bad_input_is_refused_in_french_and_nothing_is_paid(
        fields: dict[str, str], message: str, engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock, 1)
    with browser(engine, clock) as b:
        answer = pay_form(b, refs[0], **fields)
    assert answer.status_code == 400  # type: ignore[attr-defined]
    text = answer.text  # type: ignore[attr-defined]
    assert message in text.replace("&#34;", '"').replace("&#39;", "'"), text
    assert 'aria-invalid="true"' in text or 'role="alert"' in text
    assert paid(engine) == [(None, None)]


def test_an_unknown_tranche_or_application_answers_404(engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock, 1)
    with browser(engine, clock) as b:
        assert pay_form(b, "ODD17-1999-9999").status_code == 404  # type: ignore[attr-defined]
        assert pay_form(b, refs[0], number=123).status_code == 404  # type: ignore[attr-defined]


def test_a_refusal_on_a_tranche_not_listed_is_still_said(engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock, 1)
    with browser(engine, clock) as b:
        answer = pay_form(b, refs[0], number=2)  # not due yet: not on the list
    assert answer.status_code == 400  # type: ignore[attr-defined]
    assert f"Versement refusé : {refs[0]}/2 : {refs[0]} : la tranche n°1 doit être versée " \
        "avant la tranche n°2" in answer.text  # type: ignore[attr-defined]
    assert paid(engine, 2) == [(None, None)]


@pytest.mark.parametrize("path", ["/finances/tranches/{ref}/1", "/finances/releve"])
def test_posts_without_the_csrf_token_are_refused(path: str, engine: Engine,
                                                   clock: Clock) -> None:
    refs = approved(engine, clock, 1)
    with browser(engine, clock) as b:
        for token in (None, "x" * 43):
            data = {"paid_on": dt.date.today().isoformat(), "payment_reference": "VIR-X"}
            if token:
                data["csrf_token"] = token
            answer = b.post(path.replace("{ref}", refs[0]), data=data)
            assert answer.status_code == 403 and "Formulaire expiré" in answer.text
    assert paid(engine) == [(None, None)]


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_other_staff_are_refused(role: str, engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock, 1)
    with browser(engine, clock, role) as b:
        for path in ("/finances", "/finances/tranches", "/finances/releve",
                     "/finances/exports/scdl.csv", "/finances/exports/360giving.json",
                     "/finances/grand-livre", "/finances/grand-livre.csv"):
            assert b.get(path).status_code == 403, path
        token = form_token(b.get("/mon-espace").text)
        answer = b.post(f"/finances/tranches/{refs[0]}/1",
                        data={"csrf_token": token, "paid_on": dt.date.today().isoformat(),
                              "payment_reference": "VIR-X"})
        assert answer.status_code == 403
        assert "Espace finances" not in b.get("/mon-espace").text
    assert paid(engine) == [(None, None)]


def test_a_statement_with_a_bad_line_records_the_others(engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock)
    today = dt.date.today().isoformat()
    lines = [{"reference": refs[0], "tranche": 1, "payment_reference": "REL-1", "date": today},
             {"reference": refs[1], "tranche": 1, "payment_reference": "REL-2",
              "date": "pas une date"},
             {"reference": "ODD17-1999-9999", "tranche": 1, "payment_reference": "REL-3",
              "date": today},
             {"reference": refs[1], "tranche": 1, "payment_reference": "REL-4", "date": today,
              "amount": "10000.00"}]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    with browser(engine, clock) as b:
        token = form_token(b.get("/finances/releve").text)
        answer = b.post("/finances/releve", data={"csrf_token": token},
                        files={"statement": ("releve.jsonl", body.encode(), "text/plain")})
        assert answer.status_code == 200, answer.text
        text = answer.text
        assert "2 versement(s) enregistré(s), 0 déjà enregistré(s), 2 ligne(s) refusée(s)" \
            in text
        assert "releve.jsonl" in text and "/tmp" not in text
        assert text.count("refusée :") == 2 and text.count("acceptée") == 2
        assert "ODD17-1999-9999" in text
        # the same statement again: nothing new
        again = b.post("/finances/releve", data={"csrf_token": token},
                       files={"statement": ("releve.jsonl", body.encode(), "text/plain")})
        assert "0 versement(s) enregistré(s), 2 déjà enregistré(s)" in again.text
    assert sorted(p for p, _ in paid(engine)) == ["REL-1", "REL-4"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("releve.pdf", b"%PDF", "format non pris en charge"),
    ("../rel\x00eve.exe", b"x", "format non pris en charge"),
    (None, b"", "choisissez le fichier du relevé"),
])
def test_a_statement_that_cannot_be_read_is_refused(name: str | None, content: bytes,
                                                    message: str, engine: Engine,
                                                    clock: Clock) -> None:
    approved(engine, clock, 1)
    with browser(engine, clock) as b:
        token = form_token(b.get("/finances/releve").text)
        files = {"statement": (name, content, "application/octet-stream")} if name else None
        answer = b.post("/finances/releve", data={"csrf_token": token}, files=files)
    assert answer.status_code == 400 and message in answer.text


@pytest.mark.parametrize("name", ["releve.csv", "../../etc/RELEVÉ\x00 <b>.CSV"])
def test_a_csv_statement_is_read_like_the_flow_reads_it(name: str, engine: Engine,
                                                         clock: Clock) -> None:
    refs = approved(engine, clock, 1)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["reference", "tranche", "payment_reference", "date", "amount"])
    writer.writerow([refs[0], "1", "CSV-1", dt.date.today().isoformat(), ""])
    with browser(engine, clock) as b:
        token = form_token(b.get("/finances/releve").text)
        answer = b.post("/finances/releve", data={"csrf_token": token},
                        files={"statement": (name, out.getvalue().encode(), "text/csv")})
    assert "1 versement(s) enregistré(s)" in answer.text
    assert "<b>" not in answer.text and "/tmp" not in answer.text
    assert paid(engine) == [("CSV-1", Decimal("50000.00"))]


def test_the_exports_download(engine: Engine, clock: Clock) -> None:
    refs = approved(engine, clock)
    with browser(engine, clock) as b:
        scdl = b.get("/finances/exports/scdl.csv")
        giving = b.get("/finances/exports/360giving.json")
    assert scdl.status_code == 200, scdl.text
    assert scdl.headers["content-disposition"] == 'attachment; filename="scdl.csv"'
    rows = list(csv.DictReader(io.StringIO(scdl.text)))
    assert len(rows) == len(refs)
    assert giving.status_code == 200
    assert giving.headers["content-disposition"] == 'attachment; filename="360giving.json"'
    assert len(giving.json()["grants"]) == len(refs)


def test_exports_with_nothing_to_publish_say_why(engine: Engine, clock: Clock) -> None:
    with uow_at(engine, clock) as uow:
        add_people(uow)
    with browser(engine, clock) as b:
        answer = b.get("/finances/exports/360giving.json")
    assert answer.status_code == 409 and "aucune subvention attribuée" in answer.text


# --- the ledger page (/finances/grand-livre) -------------------------------------------------

HOSTILE = '<script>alert(1)</script> & =HYPERLINK("x")'


def ledger_entries(engine: Engine, clock: Clock) -> list[str]:
    """The initial top-up (today), two commitments 20 days ago (one in Île-de-France on
    experimentation, one in Brittany on dialogue, with a hostile title), one payment today."""
    refs = in_committee(engine, 1) + in_committee(
        engine, 1, start=1, title=HOSTILE, objectives=["dialogue"],
        territory={"region": "Bretagne", "department": "35", "commune_insee": "35238"})
    approved(engine, clock, refs=refs)
    with uow_at(engine, clock) as uow:
        ledger.pay(uow, refs[0], 1, "VIR-GL-1", paid_on=dt.date.today())
    return refs


def shown(text: str) -> tuple[int, list[str]]:
    """The count announced and the entry numbers listed, in order."""
    count = re.search(r'<h2 id="resultats">(\d+) écritures?</h2>', text)
    assert count, text
    return int(count.group(1)), re.findall(r'<th scope="row">(\d+)</th>', text)


def test_the_ledger_lists_every_entry_newest_first(engine: Engine, clock: Clock) -> None:
    refs = ledger_entries(engine, clock)
    with browser(engine, clock) as b:
        answer = b.get("/finances/grand-livre")
        assert '/finances/grand-livre">Grand livre</a>' in b.get("/finances").text  # the nav
    assert answer.status_code == 200
    text = answer.text
    # newest first by date: the initial top-up (today) before the commitments (20 days ago)
    assert shown(text) == (4, ["4", "1", "3", "2"])
    payment = re.search(r'<th scope="row">4</th>.*?</tr>', text, re.S)
    assert payment
    row = payment.group(0)
    for expected in ("versement", refs[0], r"50.000,00 €", r"150.000,00 €",  # committed after
                     r"50.000,00 €", "VIR-GL-1", "test"):
        assert re.search(expected, row), (expected, row)
    assert "engagement" in text and "abondement" in text


def test_hostile_text_is_escaped_in_the_page_and_neutralised_in_the_csv(
        engine: Engine, clock: Clock) -> None:
    ledger_entries(engine, clock)
    with browser(engine, clock) as b:
        text = b.get("/finances/grand-livre", params={"search": "<script>"}).text
        download = b.get("/finances/grand-livre.csv", params={"search": "<script>"})
    assert shown(text)[0] == 1
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in text
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[1][4].startswith("<script>alert(1)</script>")
    # a cell a spreadsheet would take for a formula is quoted
    cells = ledger_csv_row({"number": 1, "at": "", "kind": "topup", "kind_label": "",
                            "reference": "=1+1", "title": "-2", "amount": "1.00",
                            "committed": "0.00", "disbursed": "0.00", "available": "0.00",
                            "payment_reference": "@x", "actor": "+y", "note": "ok"})
    assert cells[3:5] == ["'=1+1", "'-2"] and cells[9:] == ["'@x", "'+y", "ok"]


@pytest.mark.parametrize(("params", "numbers"), [
    ({"kind": "disburse"}, ["4"]),
    ({"kind": "commit"}, ["3", "2"]),
    ({"kind": "correction"}, []),
    ({"search": "VIR-GL-1"}, ["4"]),          # the payment reference, exactly
    ({"search": "VIR-GL"}, []),
    ({"search": "3"}, ["3"]),                 # an entry's number (no reference holds « 3 »)
    ({"search": "alliance pour"}, ["4", "2"]),  # the title, case aside
    ({"search": "%"}, []),                    # searched literally
    ({"objective": "dialogue"}, ["3"]),
    ({"objective": "experimentation"}, ["4", "2"]),
    ({"region": "Bretagne"}, ["3"]),
    ({"region": "Île-de-France", "kind": "commit"}, ["2"]),
    ({"start": "{today}"}, ["4", "1"]),
    ({"end": "{past}"}, ["3", "2"]),
    ({"start": "{past}", "end": "{past}"}, ["3", "2"]),
    ({"start": "{past_fr}", "end": "{past_fr}"}, ["3", "2"]),  # the French way too
])
def test_each_filter(params: dict[str, str], numbers: list[str], engine: Engine,
                     clock: Clock) -> None:
    refs = ledger_entries(engine, clock)
    past = NOW.date()
    days = {"{today}": clock.now.astimezone(ZoneInfo("Europe/Paris")).date().isoformat(),
            "{past}": past.isoformat(), "{past_fr}": past.strftime("%d/%m/%Y")}
    params = {k: days.get(v, v) for k, v in params.items()}
    with browser(engine, clock) as b:
        answer = b.get("/finances/grand-livre", params=params)
        download = b.get("/finances/grand-livre.csv", params=params)
    assert answer.status_code == 200, answer.text
    assert shown(answer.text) == (len(numbers), numbers)
    assert [r[0] for r in csv.reader(io.StringIO(download.text))][1:] == numbers
    if "search" in params and params["search"] == "alliance pour":
        assert refs[1] not in answer.text.split("<tbody>")[1]


@pytest.mark.parametrize(("params", "field", "message"), [
    ({"start": "31/02/2027"}, "start", "date invalide « 31/02/2027 »"),
    ({"end": "demain"}, "end", "date invalide « demain »"),
    ({"start": "2027-03-02", "end": "2027-03-01"}, "end", "la date de fin précède la date"),
    ({"kind": "vol", "search": "VIR-GL-1"}, "kind", "nature inconnue « vol »"),
    ({"objective": "<b>x</b>"}, "objective", "objectif inconnu « &lt;b&gt;x&lt;/b&gt; »"),
    ({"search": "x" * 101}, "search", "au plus 100 caractères"),
    ({"page": "-1"}, "page", "numéro de page invalide « -1 »"),
])
def test_a_bad_filter_is_named_beside_its_field_and_everything_is_shown(
        params: dict[str, str], field: str, message: str, engine: Engine,
        clock: Clock) -> None:
    ledger_entries(engine, clock)
    with browser(engine, clock) as b:
        answer = b.get("/finances/grand-livre", params=params)
        download = b.get("/finances/grand-livre.csv", params=params)
    assert answer.status_code == 400
    text = answer.text
    assert message in text, text
    assert "La liste montre toutes les écritures." in text
    if field != "page":
        assert re.search(rf'id="gl-{field}"[^>]*aria-invalid="true"', text)
        assert f'<p class="error" id="gl-{field}-e">' in text
    assert shown(text) == (4, ["4", "1", "3", "2"])
    assert download.status_code == 400 and "Filtre invalide" in download.text


def test_the_ledger_is_paged_by_fifty(engine: Engine, clock: Clock) -> None:
    ledger_entries(engine, clock)
    with uow_at(engine, clock) as uow:
        for n in range(60):
            ledger.record_topup(uow, Decimal("10"), reason=f"décision n°{n}")
    with browser(engine, clock) as b:
        first = b.get("/finances/grand-livre", params={"kind": "topup"}).text
        second = b.get("/finances/grand-livre", params={"kind": "topup", "page": "2"}).text
        beyond = b.get("/finances/grand-livre", params={"kind": "topup", "page": "9"}).text
        everything = b.get("/finances/grand-livre.csv").text
    count, numbers = shown(first)
    assert count == 61 and numbers == [str(n) for n in range(64, 14, -1)]
    assert 'aria-current="page" aria-label="Page 1, page actuelle">1</a>' in first
    assert 'href="?kind=topup&amp;page=2"' in first  # the links keep the filters
    assert shown(second) == (61, [str(n) for n in range(14, 4, -1)] + ["1"])
    assert 'aria-current="page" aria-label="Page 2, page actuelle">2</a>' in second
    assert shown(beyond)[1] == shown(second)[1]  # past the last page: the last
    assert len(list(csv.reader(io.StringIO(everything)))) == 1 + 64


def test_the_csv_batches_read_every_entry_once_in_the_page_order(engine: Engine,
                                                                  clock: Clock) -> None:
    """The download's keyset on (date, number): entries sharing a date (a batch of top-ups
    in one unit of work) are neither lost nor repeated at a batch's edge."""
    ledger_entries(engine, clock)
    with uow_at(engine, clock) as uow:
        for n in range(20):
            ledger.record_topup(uow, Decimal("10"), reason=f"décision n°{n}")
    with uow_at(engine, clock) as uow:
        expected = [r["number"] for r in ledger_page(uow, LedgerQuery(), per_page=100)["rows"]]
        # 11 a batch: the second ends on the initial top-up (n°1, today), before the two
        # commitments (n°2 and 3, 20 days ago): a keyset on the number alone would stop there
        for query, size, count in ((LedgerQuery(), 11, 24),
                                   (LedgerQuery(kind=EntryKind.topup), 7, 21)):
            read: list[int] = []
            before = None
            while batch := ledger_batch(uow, query, before=before, size=size):
                read += [r["number"] for r in batch]
                before = (dt.datetime.fromisoformat(batch[-1]["at"]), batch[-1]["number"])
            assert len(read) == count and read == [n for n in expected if n in read]
    assert expected[21:] == [1, 3, 2]


def test_the_figures_page_has_the_history_by_date_and_regions_in_french_order(
        engine: Engine, clock: Clock) -> None:
    """As the HTML report: the history's table (not only its chart), and « Île-de-France »
    before « Normandie » (a plain string sort puts « Î » after every ASCII letter)."""
    refs = in_committee(engine, 1) + in_committee(
        engine, 1, start=1,
        territory={"region": "Normandie", "department": "14", "commune_insee": "14118"})
    approved(engine, clock, refs=refs)
    with browser(engine, clock) as b:
        home = b.get("/finances").text
        ledger_page_text = b.get("/finances/grand-livre").text
    assert "<caption>Soldes de l'enveloppe en fin de journée</caption>" in home
    assert f'<th scope="row">{NOW.date().strftime("%d/%m/%Y")}</th>' in home
    regions = home.split("<h2>Par région</h2>")[1]
    assert regions.index("Île-de-France") < regions.index("Normandie")
    choices = ledger_page_text.split('id="gl-region"')[1]
    assert choices.index("Île-de-France") < choices.index("Normandie")


@pytest.mark.parametrize("listed", [1000, 1])
def test_a_search_matching_many_grants_filters_alike(listed: int, engine: Engine,
                                                     clock: Clock,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``GRANTS_LISTED`` grants the search goes through a subquery: the same entries."""
    from odd17.services import finance

    ledger_entries(engine, clock)
    monkeypatch.setattr(finance, "GRANTS_LISTED", listed)
    with browser(engine, clock) as b:
        answer = b.get("/finances/grand-livre", params={"search": "odd17-"})
    assert shown(answer.text) == (3, ["4", "3", "2"])


@given(pages=st.integers(1, 10**6), data=st.data())
def test_page_links_name_the_first_the_last_and_the_neighbours(pages: int,
                                                              data: st.DataObject) -> None:
    from odd17.web.finance import page_links

    current = data.draw(st.integers(1, pages))
    links = page_links(current, pages)
    numbers = [n for n in links if n is not None]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1 and numbers[-1] == pages
    assert set(range(max(1, current - 2), min(pages, current + 2) + 1)) <= set(numbers)
    assert len(links) <= 9  # a phone's width, whatever the ledger's size
    for i, number in enumerate(links):  # « … » exactly over a gap, never at an end
        if number is None:
            before, after = links[i - 1], links[i + 1]
            assert i > 0 and before is not None and after is not None and after > before + 1
        elif i and links[i - 1] is not None:
            assert number == links[i - 1] + 1  # type: ignore[operator]
