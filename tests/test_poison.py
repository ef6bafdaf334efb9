"""Poison records: a file mixing well-formed records with mutated ones (deep nesting, huge
integers and strings, titles whose case folding grows, bytes that are not UTF-8, line
separators inside strings, NUL, lone surrogates, BOM, CRLF). Every record is judged alone:
each good one is stored, each bad one gets its own refusal, and nothing raises. Run on SQLite
and on PostgreSQL (ODD17_DATABASE_URL)."""

from __future__ import annotations

import codecs
import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from models import Application, Reviewer
from odd17.db import unit_of_work
from odd17.services import intake, ledger, payments, reviewers, sources
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee, numbered, runner, runner_for
from tests.review_support import uow
from tests.test_cli import cli

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
_serial = itertools.count(1)
POISON_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                           suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow])


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False)


def _splice(doc: dict[str, Any], raw: str) -> str:
    """The document's JSON with one more member written as raw text."""
    return _dumps(doc)[:-1] + ", " + raw + "}"


# Each builder returns (line bytes, whether the record is well formed).
def _good(kind: str) -> tuple[bytes, bool]:
    n = next(_serial)
    doc = numbered(10_000 + n, title=f"Projet numéro {n} de l'alliance")
    if kind == "folding":  # 200 chars folding to 600: past varchar(600) with the lead prefix
        doc["title"] = ("ß", "ﬃ", "ΐ")[n % 3] * 195 + f"{n:05d}"
    elif kind == "separators":  # not line breaks in JSON Lines
        doc["title"] = f"Projet\u2028numéro\u2029{n}\u0085suite"
        doc["summary"] = "ligne\u2028ligne\u2029ligne\u0085fin"
    elif kind == "bom":
        return codecs.BOM_UTF8 + _dumps(doc).encode(), True
    elif kind == "crlf":
        return _dumps(doc).encode() + b"\r", True
    return _dumps(doc).encode(), True


def _bad(kind: str, size: int) -> tuple[bytes, bool]:
    doc = numbered(10_000 + next(_serial))
    text: str
    if kind == "deep":
        text = _splice(doc, '"x": ' + "[" * size + "]" * size)
    elif kind == "deep_unclosed":
        text = "{" * size
    elif kind == "bigint":
        text = _splice(doc, '"duration_months": ' + "9" * size)
    elif kind == "huge_string":  # past the summary's 4,000 characters whatever the size drawn
        text = _dumps({**doc, "summary": "x" * (4_000 + size)})
    elif kind == "latin1":
        return _dumps(doc).encode().replace(b"Alliance", b"Alli\xe9nce"), False
    elif kind == "nul_escaped":
        text = _dumps({**doc, "summary": "avant\u0000après"})
    elif kind == "nul_raw":
        return _dumps(doc).encode().replace(b"Alliance", b"Alli\x00nce"), False
    elif kind == "surrogate":
        text = _dumps(doc).replace("Alliance", "Alli\\ud800nce")
    elif kind == "cut":
        text = _dumps(doc)[: size % 200 + 1]
    elif kind == "grows":  # upper-cased to SSSSSSSSSS: past varchar(5)
        text = _dumps({**doc, "territory": {"region": "Bretagne", "department": "ßßßßß"}})
    else:  # "not_object"
        text = json.dumps([doc])
    return text.encode(), False


GOOD = st.sampled_from(["plain", "folding", "separators", "bom", "crlf"]).map(_good)
BAD = st.builds(_bad, st.sampled_from(["deep", "deep_unclosed", "bigint", "huge_string",
                                       "latin1", "nul_escaped", "nul_raw", "surrogate", "cut",
                                       "grows", "not_object"]),
                st.sampled_from([33, 5_000, 200_000]))
LINES = st.lists(st.one_of(GOOD, BAD), min_size=1, max_size=8)


def _applications(engine: Engine) -> int:
    with unit_of_work(engine) as session:
        return session.scalar(select(func.count()).select_from(Application)) or 0


@POISON_SETTINGS
@given(lines=LINES)
def test_poison_documents_in_a_jsonl_file(engine: Engine, tmp_path: Path,
                                          lines: list[tuple[bytes, bool]]) -> None:
    path = tmp_path / "depot.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in lines) + b"\n")
    before = _applications(engine)
    raws = intake.read_sources([path])
    outcomes = intake.submit_documents(runner(engine, now=NOW, actor="poison"), raws)
    assert [o.source for o in outcomes] == [f"{path}:{i}" for i in range(1, len(lines) + 1)]
    for outcome, (_, good) in zip(outcomes, lines, strict=True):
        if good:
            assert outcome.status != "refused" and outcome.reference, outcome.errors
            assert not outcome.duplicate
        else:
            assert outcome.status == "refused" and outcome.reference is None
            assert len(outcome.errors) >= 1 and all(e["message"] for e in outcome.errors)
    assert _applications(engine) - before == sum(good for _, good in lines)


@pytest.mark.parametrize("kind", ["deep", "bigint", "huge_string", "latin1", "nul_raw",
                                  "surrogate"])
def test_a_poison_json_file_is_refused_alone(engine: Engine, tmp_path: Path,
                                             kind: str) -> None:
    bad, _ = _bad(kind, 1_200_000 if kind == "huge_string" else 200_000)
    (tmp_path / "a.json").write_bytes(bad)
    (tmp_path / "b.json").write_bytes(codecs.BOM_UTF8 + _good("folding")[0])
    outcomes = intake.submit_documents(runner(engine, now=NOW, actor="poison"),
                                       intake.read_sources([tmp_path]))
    assert [o.status == "refused" for o in outcomes] == [True, False]
    assert outcomes[0].errors[0]["field"] == "(document)"


@pytest.mark.parametrize(("kind", "message"), [
    ("deep", "imbrication trop profonde (au plus 32 niveaux)"),
    ("bigint", "nombre trop long (au plus 100 caractères)"),
    ("huge_string", "enregistrement trop volumineux (1200054 octets ; au plus 1000000)"),
    ("latin1", "ligne non encodée en UTF-8 (octet 0xE9, colonne 15) : enregistrez le fichier "
               "en UTF-8"),
    ("surrogate", "caractère Unicode invalide (demi-paire de substitution \\uD800 à \\uDFFF "
                  "isolée)"),
])
def test_poison_messages_are_french_and_name_the_line(tmp_path: Path, kind: str,
                                                      message: str) -> None:
    path = tmp_path / "x.jsonl"
    bad = _bad(kind, 1_200_000 if kind == "huge_string" else 5_000)[0]
    path.write_bytes(b"\n" + bad)
    (record,) = sources.json_lines(path, path.read_bytes())
    assert record.source == f"{path}:2"
    assert record.error is not None
    if kind in ("huge_string", "latin1"):
        assert record.error.split(" (")[0] == message.split(" (")[0]
    else:
        assert record.error == message


def test_a_well_formed_document_with_digits_and_brackets_in_strings_is_not_bounded() -> None:
    doc = numbered(1, summary="[" * 500 + "9" * 500 + "{" * 100)
    assert sources.parse_json("x", _dumps(doc)).data == doc


@pytest.mark.parametrize("run", [99, 100, 101, 102, 201, 202, 303])
@pytest.mark.parametrize("offset", [0, 1, 49, 99, 100, 101, 150, 201])
def test_the_long_number_probe_finds_every_run_the_scan_finds(run: int, offset: int) -> None:
    # _has_long_number probes every 101st character: a run of any length at any offset,
    # touching the start, the end or neither, is found iff the whole scan finds it.
    for head, tail in (("a" * offset, "x" * 50), ("a" * offset, ""), ("e" * offset, "]")):
        for digits in ("9" * run, "1e" * (run // 2) + "5" * (run % 2), "-+.E" * (run // 4)):
            text = head + digits + tail
            assert sources._has_long_number(text) == bool(sources._LONG_NUMBER.search(text))


@given(st.text(alphabet="0123456789.eE+-a\"[", max_size=700))
def test_the_long_number_probe_agrees_with_the_scan(text: str) -> None:
    assert sources._has_long_number(text) == bool(sources._LONG_NUMBER.search(text))


def test_dedup_key_folding_past_the_column_still_detects_duplicates(engine: Engine) -> None:
    doc = numbered(7)
    doc["title"] = "ﬃ" * 200  # numbered() appends its number to the title
    first, again = (intake.submit_documents(
        runner(engine, now=NOW), [intake.RawDocument("d", doc)])[0] for _ in range(2))
    assert first.status == "submitted" and again.duplicate
    assert again.reference == first.reference
    with unit_of_work(engine) as session:
        key = session.scalar(select(Application.dedup_key))
    assert key is not None and len(key) == intake.DEDUP_KEY_LENGTH
    assert intake.fit_key("short|key") == "short|key"


def test_values_that_grow_when_normalised_are_refused_per_document(engine: Engine) -> None:
    """``ß`` upper-cases to ``SS``: a 5-character department or a 20-character RNA would
    overflow varchar(5)/varchar(20) on PostgreSQL and fail the whole batch."""
    department = numbered(31)
    department["territory"] = {"region": "Bretagne", "department": "ßßßßß"}
    rna = numbered(32)
    rna["lead"] = {**rna["lead"], "rna": "ß" * 20}
    raws = [intake.RawDocument(str(i), d) for i, d in enumerate([department, numbered(33), rna])]
    outcomes = intake.submit_documents(runner(engine, now=NOW, actor="t"), raws)
    assert [o.status == "refused" for o in outcomes] == [True, False, True]
    assert outcomes[0].errors[0]["field"] == "territory.department"
    assert outcomes[2].errors[0]["field"] == "lead.rna"
    assert "trop long une fois normalisé" in outcomes[2].errors[0]["message"]


# --- reviewers import -----------------------------------------------------------------------

REVIEWER_BAD = st.sampled_from([
    '{"name": "A", "email": "a@x.org", "x": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"name": "A", "email": "a@x.org", "siren": ' + "9" * 5000 + "}",
    '{"name": "Nul\\u0000Nom", "email": "n@x.org"}',
    '{"name": "Demi\\ud800", "email": "d@x.org"}',
    '{"name": "Sans e-mail"}',
    '"pas un objet"',
])


@POISON_SETTINGS
@given(rows=st.lists(st.one_of(st.just(None), REVIEWER_BAD), min_size=1, max_size=6))
def test_poison_reviewers_in_a_json_list(engine: Engine, tmp_path: Path,
                                         rows: list[str | None]) -> None:
    items, good = [], []
    for row in rows:
        if row is None:
            n = next(_serial)
            items.append(json.dumps({"name": f"Évaluatrice {n}\u2028bis",
                                     "email": f"r{n}@eval.example.org"}, ensure_ascii=False))
            good.append(True)
        else:
            items.append(row)
            good.append(False)
    path = tmp_path / "evaluateurs.json"
    path.write_bytes(codecs.BOM_UTF8 + ("[\r\n" + ",\r\n".join(items) + "\r\n]").encode())
    read = reviewers.read_reviewers(path)
    assert [source.split(" ")[0] for source, _ in read] == [
        f"{path}[{i}]" for i in range(len(rows))]
    with uow(engine, now=NOW) as u:
        report = reviewers.import_reviewers(u, read)
    assert report.created == sum(good)
    assert [r["source"] for r in report.refused] == [
        source for (source, _), ok in zip(read, good, strict=True) if not ok]


def test_reviewers_csv_from_french_excel(engine: Engine, tmp_path: Path) -> None:
    """BOM, ';' delimiter, CRLF; a NUL in one name refuses that row only (PostgreSQL would
    refuse the whole import)."""
    path = tmp_path / "evaluateurs.csv"
    path.write_bytes(codecs.BOM_UTF8 + (
        "name;email;siren;interests;committee\r\n"
        "Anne Éval;anne@eval.example.org;;;oui\r\n"
        "Nul\x00Nom;nul@eval.example.org;;;\r\n"
        '"Bruno\u2028Éval";bruno@eval.example.org;;;non\r\n').encode())
    code, out, err = cli("reviewers", "import", str(path), "--json")
    assert code == 1, err
    report = json.loads(out)
    assert (report["created"], report["updated"]) == (2, 0)
    assert [r["source"] for r in report["refused"]] == [f"{path}:3"]
    assert "caractère de contrôle" in report["refused"][0]["errors"]
    with unit_of_work(engine) as session:
        assert session.scalar(select(func.count()).select_from(Reviewer)) == 2


def test_a_latin1_csv_is_refused_whole_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "evaluateurs.csv"
    path.write_bytes("name,email\nAndré,andre@x.org\n".encode("cp1252"))
    code, _, err = cli("reviewers", "import", str(path))
    assert code == 2
    assert "non encodé en UTF-8" in err and "CSV UTF-8" in err and "evaluateurs.csv" in err


def test_a_tab_separated_utf16_reviewers_file(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "evaluateurs.csv"
    path.write_bytes("name\temail\r\nAnne\tanne@eval.example.org\r\n".encode("utf-16"))
    read = reviewers.read_reviewers(path)
    assert read == [(f"{path}:2", {"name": "Anne", "email": "anne@eval.example.org"})]


# --- payment batches ------------------------------------------------------------------------

PAYMENT_BAD = st.sampled_from(["deep", "bigint", "nul", "latin1", "surrogate", "cut"])


def approved(engine: Engine, count: int) -> list[str]:
    """``count`` new approved applications (numbered after those of earlier examples)."""
    refs = in_committee(engine, count, start=next(_serial) * 100)
    with unit_of_work(engine) as s:
        for ref in refs:
            ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal("1000"), plan=DEFAULT_PLAN)
    return refs


def _payment_line(reference: str, kind: str | None) -> bytes:
    order = {"reference": reference, "tranche": 1, "payment_reference": f"VIR-{reference}",
             "date": "2026-12-01"}
    text = json.dumps(order)
    if kind == "deep":
        text = text[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    elif kind == "bigint":
        text = text.replace('"tranche": 1', '"tranche": ' + "1" * 5000)
    elif kind == "nul":
        text = text.replace("VIR-", "VIR\\u0000-")
    elif kind == "surrogate":
        text = text.replace("VIR-", "VIR\\udc80-")
    elif kind == "cut":
        text = text[:20]
    data = text.encode()
    return data.replace(b"VIR-", b"VIR\xe9-") if kind == "latin1" else data


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kinds=st.lists(st.one_of(st.none(), PAYMENT_BAD), min_size=4, max_size=4))
def test_poison_payments_in_a_batch(engine: Engine, tmp_path: Path,
                                    kinds: list[str | None]) -> None:
    references = approved(engine, len(kinds))
    path = tmp_path / "releve.jsonl"
    path.write_bytes(b"\r\n".join(_payment_line(r, k) for r, k in zip(references, kinds,
                                                                        strict=True)))
    tally = payments.record(runner_for(engine, now=NOW, actor="poison"),
                            payments.read_orders(path))
    assert tally.recorded == sum(k is None for k in kinds)
    assert [r["source"] for r in tally.refused] == [
        f"{path}:{i}" for i, k in enumerate(kinds, start=1) if k is not None]


def test_payment_csv_with_bom_semicolons_and_a_nul(engine: Engine, tmp_path: Path) -> None:
    a, b = approved(engine, 2)
    path = tmp_path / "releve.csv"
    path.write_bytes(codecs.BOM_UTF8 + (
        "reference;tranche;payment_reference;date;amount\r\n"
        f"{a};1;VIR\x00A;2026-12-01;\r\n"
        f"{b};1;VIR-B;2026-12-01;\r\n").encode())
    tally = payments.record(runner_for(engine, now=NOW, actor="poison"),
                            payments.read_orders(path))
    assert tally.recorded == 1
    assert [r["source"] for r in tally.refused] == [f"{path}:2"]


def test_a_latin1_payment_file_is_one_refusal_naming_what_to_do(engine: Engine,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "relevé.csv"
    path.write_bytes("reference,tranche,payment_reference,date\nODD17-2026-0001,1,VIR-É,"
                     "2026-12-01\n".encode("cp1252"))
    orders = payments.read_orders(path)
    assert len(orders) == 1 and orders[0][0] == str(path)
    assert isinstance(orders[0][1], str) and "CSV UTF-8" in orders[0][1]


# --- submit exit codes ----------------------------------------------------------------------

def test_submit_exit_codes(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = tmp_path / "bon.json", tmp_path / "mauvais.jsonl"
    good.write_text(_dumps(numbered(1)))
    bad.write_bytes(_good("plain")[0] + b"\n" + _bad("deep", 100_000)[0] + b"\n")
    assert cli("submit", str(good))[0] == 0
    code, _, err = cli("submit", str(bad))
    assert code == 1 and "Traceback" not in err
    code, _, err = cli("submit", str(tmp_path / "absent.json"))
    assert code == 2 and "introuvable" in err and "absent.json" in err

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise ZeroDivisionError("forced")

    # A crash cannot be caused for real once fixed: force one where submit stores documents.
    # (the CLI imports it from odd17.services.pipeline when submit runs)
    monkeypatch.setattr("odd17.services.pipeline.submit_and_evaluate", broken)
    code, _, err = cli("submit", str(good))
    assert code == 3 and "Traceback" not in err
    assert "Erreur inattendue" in err and "ZeroDivisionError" in err
    log = Path(err.split("détails dans ")[1].split(" ;")[0].split(". Signalez")[0].strip())
    assert "ZeroDivisionError: forced" in log.read_text()
    log.unlink()
