"""Human output of every read command on hostile data, in every lifecycle status (issue 9).

One database per module, built through the CLI and the services: an application in each of
the eleven statuses, with rich markup, HTML, bidirectional overrides and maximal lengths in
every free-text field. Every read command must exit 0, print no traceback, and show the
hostile strings literally (never as styles, links or emoji), with French status labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from odd17.cli import app
from odd17.settings import reset_caches
from rules.labels import STATUS_LABELS
from rules.money import eur
from tests.conftest import fresh_database_url
from tests.factories import jsonl, numbered, runner

ODD17 = str(Path(sys.executable).parent / "odd17")
MARKUP = ("[red]x[/red] [/] [link=http://x]clic[/link] <script>alert(1)</script> "
          "\u202e\u200f :smile:")
# What a reader must see, literally, wherever a hostile string is printed.
SHOWN = ["[red]x[/red]", "[/]", "[link=http://x]clic[/link]", "<script>alert(1)</script>",
         ":smile:", "<U+202E>", "<U+200F>"]
REVIEWER_NAME = "Relecteur [bold]gras[/bold] [/] \x1b[31mrouge"
STATUSES = ["submitted", "eligible", "ineligible", "in_review", "committee", "approved",
            "active", "closed", "rejected", "withdrawn", "cancelled"]
GRADES = ["pertinence=4", "alliance=4", "impact=4", "innovation=4", "modele=4"]


def hostile(i: int, **changes: Any) -> dict[str, Any]:
    doc = numbered(i, **changes)
    doc["title"] = (f"{MARKUP} n°{i} " + "é" * 200)[:200]  # the longest title allowed
    doc["summary"] = ((MARKUP + " ") * 60)[:3900] + " " + "z" * 99  # the longest allowed
    doc["lead"] = {**doc["lead"], "name": (f"Asso {MARKUP} " + "o" * 200)[:200],
                   "contact_name": f"Contact {MARKUP}"}
    doc["partners"] = [{**p, "name": f"{p['name']} {MARKUP}"} for p in doc["partners"]]
    doc["cofunding"] = [{**c, "funder": f"{c['funder']} {MARKUP}"} for c in doc["cofunding"]]
    doc["documents"] = [*doc["documents"], f"annexe {MARKUP}"]
    return doc


def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    reset_caches()
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def run(*args: str, env: dict[str, str], columns: int = 1000) -> subprocess.CompletedProcess:
    """The console script, as a user runs it, on a terminal ``columns`` wide."""
    return subprocess.run([ODD17, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env, "COLUMNS": str(columns)})


@pytest.fixture(scope="module")
def world(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The database (env) and the reference of the application in each status."""
    tmp = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        for url in fresh_database_url(template_url, tmp):
            mp.setenv("ODD17_DATABASE_URL", url)
            env = {"ODD17_DATABASE_URL": url}
            yield {"env": env, "refs": build(env, tmp), "dir": tmp}
    reset_caches()


def ok(*args: str, env: dict[str, str]) -> str:
    code, out, err = cli(*args, env=env)
    assert code == 0, (args, out, err)
    return out


def build(env: dict[str, str], tmp: Path) -> dict[str, str]:
    import datetime as dt

    from models import Application, Status
    from odd17.db import get_engine, unit_of_work
    from odd17.services import intake

    for n in (1, 2):
        ok("reviewers", "add", "--name", f"{REVIEWER_NAME} {n}", "--email",
           f"rev{n}@example.org", env=env)
    for n in (1, 2, 3):
        ok("reviewers", "add", "--name", f"Membre {MARKUP} {n}", "--email",
           f"com{n}@example.org", "--committee", "--no-reviews", env=env)
    docs = [hostile(i) for i in range(9)]
    docs.append(hostile(9, requested_amount="250000.00", total_budget="900000.00"))
    (tmp / "depot.jsonl").write_text(jsonl(docs))
    code, out, err = cli("submit", str(tmp / "depot.jsonl"), "--json", env=env)
    assert code == 0, err
    refs = [o["reference"] for o in json.loads(out)]
    statuses = [o["status"] for o in json.loads(out)]
    assert statuses == ["eligible"] * 9 + ["ineligible"], out
    reset_caches()
    engine = get_engine()
    now = dt.datetime.now(dt.UTC)
    [pending] = intake.submit_documents(runner(engine, now=now),
                                        [intake.RawDocument("pending", hostile(10))])
    e = refs
    ok("review", "assign", *e[1:8], env=env)
    for ref in e[2:8]:
        for n in (1, 2):
            ok("review", "score", ref, *GRADES, "--reviewer", f"rev{n}@example.org",
               "--comment", f"Avis {MARKUP}", env=env)
    present = "com1@example.org,com2@example.org,com3@example.org"
    for ref in (e[3], e[4], e[5], e[7]):
        ok("committee", "decide", ref, "--present", present, "--approve", "--amount",
           "100 000,00 €", env=env)
    ok("committee", "decide", e[6], "--present", present, "--reject", "--motif",
       f"Refus {MARKUP}", env=env)
    for ref in (e[4], e[5]):
        ok("pay", ref, "--tranche", "1", "--reference", f"VIR-{ref}-[red]1[/red]", env=env)
    ok("grant", "close", e[5], "--motif", f"Clôture {MARKUP}", env=env)
    ok("grant", "cancel", e[7], "--motif", f"Annulation {MARKUP} \x1b[2J", env=env)
    with unit_of_work(engine) as session:  # no command withdraws yet (the web portal will)
        app_ = session.scalars(select(Application).where(Application.reference == e[8])).one()
        app_.transition_to(Status.withdrawn, actor="t", at=now, reason=f"Retrait {MARKUP}")
    ok("outbox", "send", env=env)  # rendered subjects (with titles) appear in outbox list
    by_status = {"submitted": pending.reference, "eligible": e[0], "ineligible": e[9],
                 "in_review": e[1], "committee": e[2], "approved": e[3], "active": e[4],
                 "closed": e[5], "rejected": e[6], "withdrawn": e[8], "cancelled": e[7]}
    listed = json.loads(ok("list", "--json", env=env))
    assert {r["reference"]: r["status"] for r in listed} == {
        ref: status for status, ref in by_status.items()}
    return by_status


def assert_literal(output: str) -> None:
    """The hostile strings are there as typed, and nothing was interpreted."""
    for shown in SHOWN:
        assert shown in output, (shown, output[:2000])
    assert "\u202e" not in output and "\u200f" not in output and "\x1b" not in output
    assert "Traceback" not in output and "😄" not in output


def test_every_status_listed_with_its_french_label(world: dict) -> None:
    proc = run("list", "--limit", "100", env=world["env"])
    assert proc.returncode == 0, proc.stderr
    assert_literal(proc.stdout)
    for status in STATUSES:
        assert STATUS_LABELS[status] in proc.stdout
    assert "1–11 sur 11 dossier(s)" in proc.stdout


def test_show_every_status(world: dict) -> None:
    for status, ref in world["refs"].items():
        proc = run("show", ref, env=world["env"])
        assert proc.returncode == 0, (status, proc.stderr)
        assert_literal(proc.stdout)
        assert f"statut : {STATUS_LABELS[status]}" in proc.stdout
        assert "date (Europe/Paris)" in proc.stdout
        assert "z" * 50 in proc.stdout  # the whole 4,000-character summary


def test_history_reasons_keep_control_characters_visible(world: dict) -> None:
    proc = run("show", world["refs"]["cancelled"], env=world["env"])
    assert "<U+001B>[2J" in proc.stdout and "\x1b" not in proc.stdout


@pytest.mark.parametrize("args", [
    ["reviewers", "list"], ["committee", "propose"], ["tranches", "--date", "2099-01-01"],
    ["outbox", "list"], ["finance"],
])
def test_read_commands_human(world: dict, args: list[str]) -> None:
    proc = run(*args, env=world["env"])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stdout
    if args[0] == "reviewers":
        assert "<U+001B>[31m" in proc.stdout and "[bold]gras[/bold]" in proc.stdout
    elif args[0] not in ("finance", "outbox"):  # the others print titles (subjects do not)
        assert_literal(proc.stdout)


def test_outbox_preview_of_a_stored_message(world: dict) -> None:
    proc = run("outbox", "preview", "review_assigned", world["refs"]["committee"],
               env=world["env"])
    assert proc.returncode == 0, proc.stderr
    assert "[red]x[/red]" in proc.stdout and "\u202e" not in proc.stdout


@pytest.mark.parametrize("args", [
    ["list"], ["show", "approved"], ["finance"], ["tranches", "--date", "2099-01-01"],
    ["outbox", "list"], ["committee", "propose"], ["reviewers", "list"],
])
def test_read_commands_json(world: dict, args: list[str]) -> None:
    if args[0] == "show":
        args = ["show", world["refs"][args[1]]]
    code, out, err = cli(*args, "--json", env=world["env"])
    assert code == 0, err
    text = json.dumps(json.loads(out), ensure_ascii=False)
    if args[0] not in ("finance", "reviewers", "outbox"):
        assert MARKUP in text  # JSON carries the text as it was given


def test_exports_keep_titles_literal(world: dict) -> None:
    tmp: Path = world["dir"]
    for kind, name in (("scdl", "s.csv"), ("360giving", "g.json")):
        code, out, err = cli("export", kind, str(tmp / name), "--json", env=world["env"])
        assert code == 0, err
        assert json.loads(out) == {"format": kind, "file": str(tmp / name), "grants": 3}
        proc = run("export", kind, str(tmp / name), env=world["env"])
        assert proc.returncode == 0 and "3 subvention(s)" in proc.stdout
    assert "[red]x[/red]" in (tmp / "s.csv").read_text("utf-8")


def test_list_at_80_columns_never_breaks_a_reference_or_an_amount(world: dict) -> None:
    proc = run("list", env=world["env"], columns=80)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for ref in world["refs"].values():
        assert ref in proc.stdout
    assert proc.stdout.count(eur(Decimal("120000"))) == 10
    assert proc.stdout.count(eur(Decimal("250000"))) == 1


def test_list_pages_in_sql_and_json_stays_complete(world: dict) -> None:
    env = world["env"]
    everything = json.loads(ok("list", "--json", env=env))
    assert len(everything) == 11  # --json: the whole list unless paging is asked for
    page = json.loads(ok("list", "--json", "--limit", "4", "--page", "2", env=env))
    assert page == everything[4:8]
    out = ok("list", "--limit", "4", "--page", "3", env=env)
    assert "9–11 sur 11 dossier(s) (page 3/3)" in out
    out = ok("list", "--limit", "4", env=env)
    assert "1–4 sur 11 dossier(s) (page 1/3) ; suite : --page 2" in out
    out = ok("list", "--status", "committee", env=env)
    assert "1–1 sur 1 dossier(s)" in out


def test_other_tables_at_80_columns_keep_amounts_whole(world: dict) -> None:
    propose = run("committee", "propose", env=world["env"], columns=80)
    tranches = run("tranches", "--date", "2099-01-01", env=world["env"], columns=80)
    for proc in (propose, tranches):
        assert proc.returncode == 0, proc.stderr
        assert all(len(line) <= 80 for line in proc.stdout.splitlines())
    assert world["refs"]["committee"] in propose.stdout
    assert eur(Decimal("120000")) in propose.stdout
    assert world["refs"]["approved"] in tranches.stdout
    assert eur(Decimal("30000")) in tranches.stdout and eur(Decimal("20000")) in tranches.stdout


def test_narrow_terminal_folds_addresses_and_says_when_nothing_is_due(world: dict) -> None:
    """At 100 columns addresses are folded whole (never cut with an ellipsis), statuses of
    messages are in French, and an empty list says so instead of drawing an empty table."""
    env = world["env"]
    reviewers = run("reviewers", "list", env=env, columns=100).stdout
    assert "…" not in reviewers
    outbox = run("outbox", "list", env=env, columns=100)
    assert outbox.returncode == 0 and "…" not in outbox.stdout
    assert "Dans la file : envoyé" in outbox.stdout or "en attente" in outbox.stdout
    assert " sent " not in outbox.stdout and " pending " not in outbox.stdout
    none_failed = run("outbox", "list", "--status", "failed", env=env, columns=100).stdout
    assert "Aucun message ne correspond." in none_failed and "┏" not in none_failed
    nothing_due = run("tranches", "--date", "2000-01-01", env=env, columns=100).stdout
    assert nothing_due.strip() == "Aucune tranche échue à verser."
