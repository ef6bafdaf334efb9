"""Odd inputs on the command line (issue 9): absent databases, unknown references, French
amounts, --json everywhere, help without type placeholders, times in the configured zone."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.numbers import format_currency, format_decimal
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from odd17.cli import app
from odd17.settings import reset_caches
from rules.money import MAX_AMOUNT, parse_amount
from tests.factories import eligible, in_committee, jsonl, numbered


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    reset_caches()
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# --- amounts ------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, value", [
    ("12,5", "12.50"), ("70 000", "70000.00"), ("70\u202f000", "70000.00"),
    ("70\u00a0000,50 €", "70000.50"), ("70 000,50 €", "70000.50"), ("1234.56", "1234.56"),
    ("1 234 567,8", "1234567.80"), ("120000 EUR", "120000.00"), (" 5 ", "5.00"),
])
def test_french_amounts_are_understood(typed: str, value: str) -> None:
    assert parse_amount(typed) == Decimal(value)


@pytest.mark.parametrize("typed", ["1.234", "1,234", "12,555", "7 0000", "70 00", "-5", "0",
                                   "0,00", "abc", "", "1e3", "12,5,0", "€", "1 000 000 000 000"])
def test_ambiguous_or_wrong_amounts_are_refused_in_french(typed: str) -> None:
    with pytest.raises(ValueError, match="montant invalide"):
        parse_amount(typed)


cents = st.integers(min_value=1, max_value=int(MAX_AMOUNT * 100)).map(
    lambda n: Decimal(n) / 100)


@given(cents)
def test_every_amount_babel_prints_in_french_parses_back(amount: Decimal) -> None:
    assert parse_amount(format_decimal(amount, format="#,##0.00", locale="fr_FR")) == amount
    assert parse_amount(format_currency(amount, "EUR", locale="fr_FR")) == amount
    assert parse_amount(str(amount)) == amount


def test_pay_amount_typed_the_french_way(engine, db_url: str) -> None:  # type: ignore[no-untyped-def]
    [ref] = in_committee(engine, 1)
    for n in (1, 2):
        assert cli("reviewers", "add", "--name", f"M{n}", "--email", f"m{n}@example.org",
                   "--committee", "--no-reviews")[0] == 0
    code, out, err = cli("committee", "decide", ref, "--present",
                         "m1@example.org,m2@example.org", "--approve", "--amount",
                         "90\u202f000,00\u00a0€", "--json")
    assert code == 0, err
    assert json.loads(out)["amount"] == "90000.00"
    code, out, err = cli("pay", ref, "--tranche", "1", "--reference", "V1", "--amount",
                         "12,555")
    assert code == 2 and "montant invalide « 12,555 »" in err and "Traceback" not in err


# --- absent databases ---------------------------------------------------------------------

READ_COMMANDS = [["list"], ["list", "--json"], ["show", "ODD17-2026-0001"], ["finance"],
                 ["tranches"], ["outbox", "list"], ["committee", "propose"],
                 ["reviewers", "list"], ["export", "scdl", "x.csv"],
                 ["export", "360giving", "x.json"]]


@pytest.mark.parametrize("args", READ_COMMANDS)
def test_read_commands_refuse_a_missing_sqlite_file(tmp_path: Path, args: list[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.db"
    code, _out, err = cli(*args, env={"ODD17_DATABASE_URL": f"sqlite:///{missing}"})
    assert code == 2 and not missing.exists()  # nothing created, no 2 M€ fund
    assert "odd17 init" in err and "ODD17_DATABASE_URL" in err and len(err.splitlines()) == 1


def test_read_commands_refuse_a_database_without_schema(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    for args in READ_COMMANDS[:3]:
        code, _, err = cli(*args, env={"ODD17_DATABASE_URL": f"sqlite:///{path}"})
        assert code == 2 and "n'a pas de schéma odd17" in err and "odd17 init" in err


def test_commands_that_write_still_initialise_on_first_use(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jsonl").write_text(jsonl([numbered(1)]))
    env = {"ODD17_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    code, _, err = cli("submit", "a.jsonl", env=env)
    assert code == 0, err
    assert cli("list", env=env)[0] == 0


# --- unknown and ineligible references ----------------------------------------------------

def test_unknown_references_exit_2_with_the_reason(engine, db_url: str) -> None:  # type: ignore[no-untyped-def]
    [ref] = eligible(engine, 1)
    for args in (["review", "assign", "ODD17-2026-9999"], ["evaluate", "odd17-2026-9999"],
                 ["review", "assign", ref, "ODD17-2026-9999"], ["show", "ODD17-2026-9999"]):
        code, out, err = cli(*args)
        assert code == 2, (args, out, err)
        assert "aucun dossier de référence « ODD17-2026-9999 »" in err
    code, out, _ = cli("show", ref, "--json")
    assert json.loads(out)["status"] == "eligible"  # the valid one was not assigned either


def test_assigning_an_application_not_eligible_says_why(engine, db_url: str) -> None:  # type: ignore[no-untyped-def]
    [ref] = in_committee(engine, 1)
    code, _out, err = cli("review", "assign", ref)
    assert code == 2
    assert f"{ref} est au statut « en comité »" in err
    assert "seuls les dossiers éligibles reçoivent des évaluateurs" in err
    code, _, err = cli("evaluate", ref)
    assert code == 2 and "en comité" in err


# --- --json everywhere, help, times -------------------------------------------------------

def test_init_export_and_reviewers_add_take_json(db_url: str, tmp_path: Path) -> None:
    code, out, err = cli("init", "--json")
    assert code == 0, err
    init = json.loads(out)
    assert set(init) == {"database", "schema", "fund", "envelope", "calls",
                         "configured_envelope_differs"}
    assert init["envelope"] == "2000000.00"
    code, out, _ = cli("reviewers", "add", "--name", "A", "--email", "A@Example.org", "--json")
    assert json.loads(out) == {"email": "a@example.org", "created": True}
    code, out, _ = cli("reviewers", "add", "--name", "B", "--email", "a@example.org", "--json")
    assert json.loads(out) == {"email": "a@example.org", "created": False}
    code, out, _ = cli("export", "scdl", str(tmp_path / "s.csv"), "--json")
    assert json.loads(out) == {"format": "scdl", "file": str(tmp_path / "s.csv"), "grants": 0}


def test_help_shows_flags_without_type_placeholders() -> None:
    for args in (["--help"], ["list", "--help"], ["committee", "decide", "--help"],
                 ["reviewers", "add", "--help"], ["init", "--help"]):
        code, out, _ = cli(*args)
        assert code == 0 and "<bool>" not in out and "--help" in out, out


def test_history_times_in_the_configured_zone(engine, db_url: str) -> None:  # type: ignore[no-untyped-def]
    [ref] = eligible(engine, 1)
    at = dt.datetime.fromisoformat(json.loads(cli("show", ref, "--json")[1])["history"][0]["at"])
    for zone in ("Europe/Paris", "America/Sao_Paulo"):
        code, out, _ = cli("show", ref, env={"ODD17_TIMEZONE": zone})
        local = at.replace(tzinfo=at.tzinfo or dt.UTC).astimezone(ZoneInfo(zone))
        assert f"date ({zone})" in out
        assert local.strftime("%Y-%m-%d %H:%M:%S") in out
    code, _, err = cli("show", ref, env={"ODD17_TIMEZONE": "Mars/Olympus"})
    assert code == 2 and "Mars/Olympus" in err


@given(st.lists(st.fixed_dictionaries({
    "reference": st.text(), "status": st.sampled_from(["eligible", "in_review"]),
    "title": st.text(), "region": st.none() | st.text(), "n": st.integers(),
}), max_size=5), st.integers(min_value=1, max_value=3))
def test_streamed_json_list_is_exactly_print_json(rows: list[dict], chunk: int) -> None:
    """`list --json` is streamed: the same bytes as the documented json.dumps(indent=2)."""
    import contextlib
    import io

    from odd17.cli._common import print_json, stream_json_list

    streamed, built = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(streamed):
        stream_json_list(iter(rows), chunk=chunk)
    with contextlib.redirect_stdout(built):
        print_json(rows)
    assert streamed.getvalue() == built.getvalue()


def test_every_status_has_a_french_label_and_a_style() -> None:
    from models import Status
    from odd17.display import STATUS_STYLE, status
    from rules.labels import STATUS_LABELS

    for value in [*Status, "refused"]:
        assert value in STATUS_LABELS and STATUS_STYLE.get(value), value
        assert status(value).plain == STATUS_LABELS[value]


def test_visible_escapes_controls_and_bidi_but_keeps_text() -> None:
    from odd17.display import safe, visible

    assert visible("a\x1b[31mb\u202ec\u200fd\x00e\x9bf") == \
        "a<U+001B>[31mb<U+202E>c<U+200F>d<U+0000>e<U+009B>f"
    assert visible("Île-de-France — n°1\tx\ny [/] :smile:") == \
        "Île-de-France — n°1\tx\ny [/] :smile:"
    assert safe("[red]x[/red]").spans == []  # no style read from the text


@pytest.mark.skipif(not os.environ.get("ODD17_DATABASE_URL", "").startswith("postgres"),
                    reason="PostgreSQL: a database that exists but has no odd17 schema")
def test_read_commands_refuse_a_postgres_database_without_schema() -> None:
    import uuid

    from sqlalchemy import text

    from tests.conftest import _admin, _pg_url

    name = f"odd17_empty_{uuid.uuid4().hex[:8]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        code, _, err = cli("list", env={"ODD17_DATABASE_URL": _pg_url(name)})
        assert code == 2 and "n'a pas de schéma odd17" in err and "odd17 init" in err
    finally:
        from odd17.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_amounts_in_wrapped_text_are_never_cut() -> None:
    """French amounts hold no-break spaces; a long reason wraps between words, not inside
    « 260 000,00 € »."""
    import io

    from rich.console import Console

    from odd17.display import SafeTable, safe
    from rules.money import eur

    amount = eur(Decimal("260000.00"))
    table = SafeTable("motif")
    table.add_row("Le montant demandé représente 96,2 % du budget total "
                  f"({amount}) ; il ne peut dépasser 80 %.")
    for width in range(20, 60):
        buffer = io.StringIO()
        Console(file=buffer, width=width, markup=False).print(table)
        assert amount in buffer.getvalue(), width
    assert safe(amount).plain == amount
