"""The command line: the §9 contract, exit codes, clear messages, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from odd17.cli import app
from odd17.settings import reset_caches
from tests.factories import application, jsonl, numbered

ODD17 = str(Path(sys.executable).parent / "odd17")


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    reset_caches()
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_done_when_examples_through_the_console_script(db_url: str, examples: Path) -> None:
    """`odd17 submit ../shared/examples/*.json --json`: one eligible, one ineligible with every
    failing rule named, one refused with each bad field named and nothing stored."""
    files = sorted(str(p) for p in examples.glob("*.json"))
    proc = subprocess.run([ODD17, "submit", *files, "--json"], capture_output=True, text=True,
                          env={**os.environ, "ODD17_DATABASE_URL": db_url}, timeout=120)
    assert proc.returncode == 1, proc.stderr  # one document was refused
    assert "Traceback" not in proc.stderr
    by_name = {Path(o["source"]).stem: o for o in json.loads(proc.stdout)}
    assert set(by_name["application-valid"]) == {"source", "reference", "status", "errors",
                                                 "duplicate", "failing"}
    assert by_name["application-valid"]["status"] == "eligible"
    assert by_name["application-ineligible"]["status"] == "ineligible"
    assert by_name["application-ineligible"]["failing"] == [
        "innovation", "alliance", "porteur", "montant", "cofinancement", "duree", "pieces"]
    refused = by_name["application-malformed"]
    assert refused["status"] == "refused" and refused["reference"] is None
    assert len(refused["errors"]) == 9
    code, out, _ = cli("show", by_name["application-ineligible"]["reference"], "--json")
    failing = [r["rule"] for r in json.loads(out)["eligibility"] if not r["passed"]]
    assert failing == ["innovation", "alliance", "porteur", "montant", "cofinancement",
                       "duree", "pieces"]
    code, out, _ = cli("list", "--json")
    assert code == 0 and len(json.loads(out)) == 2  # the malformed one was not stored


def test_show_and_list_json_shapes(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text(jsonl([numbered(1), numbered(2, documents=[])]))
    code, out, _ = cli("submit", str(path), "--json")
    assert code == 0
    refs = [o["reference"] for o in json.loads(out)]
    code, out, _ = cli("show", refs[0].lower(), "--json")
    detail = json.loads(out)
    assert detail["reference"] == refs[0] and detail["status"] == "eligible"
    assert detail["requested_amount"] == "120000.00" and detail["total_budget"] == "310000.00"
    assert all(set(r) == {"rule", "passed", "reason"} for r in detail["eligibility"])
    assert [(h["from"], h["to"]) for h in detail["history"]] == [(None, "submitted"),
                                                                 ("submitted", "eligible")]
    assert all(h["actor"] and h["at"] and h["reason"] for h in detail["history"])
    code, out, _ = cli("list", "--status", "ineligible", "--json")
    assert [row["reference"] for row in json.loads(out)] == [refs[1]]
    assert json.loads(out)[0]["requested_amount"] == "120000.00"
    code, out, _ = cli("list")
    assert code == 0 and "2 dossier(s)" in out


def test_resubmitting_creates_nothing(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(application()))
    first = json.loads(cli("submit", str(path), "--json")[1])
    second = json.loads(cli("submit", str(path), "--json")[1])
    assert second[0]["reference"] == first[0]["reference"] and second[0]["duplicate"]
    assert second[0]["status"] == "eligible"
    assert len(json.loads(cli("list", "--json")[1])) == 1


def test_init_is_idempotent(db_url: str) -> None:
    for _ in range(2):
        code, out, _ = cli("init")
        assert code == 0 and "Fonds ODD 17" in out and "2\u202f000\u202f000,00" in out


def test_fresh_database_is_initialised_on_first_use(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that writes creates the database; one that only reads refuses an absent one
    (a mistyped path): see tests/test_cli_inputs.py."""
    monkeypatch.setenv("ODD17_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    code, out, err = cli("reviewers", "add", "--name", "A", "--email", "a@example.org")
    assert code == 0 and "initialisation" in err
    code, out, err = cli("list", "--json")
    assert code == 0 and json.loads(out) == []


def test_policy_change_then_one_command_reevaluates(db_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(application(requested_amount="150000")))
    ref = json.loads(cli("submit", str(path), "--json")[1])[0]["reference"]
    default = (Path(__file__).parent.parent / "odd17/data/fund.toml").read_text()
    stricter = tmp_path / "fund.toml"
    stricter.write_text(default.replace('max_amount = "200000.00"', 'max_amount = "100000.00"'))
    monkeypatch.setenv("ODD17_FUND_CONFIG", str(stricter))
    code, out, _ = cli("evaluate", "--all", "--json")
    assert code == 0
    assert json.loads(out) == [{"reference": ref, "previous": "eligible",
                                "status": "ineligible", "failing": ["montant"]}]
    reason = next(r for r in json.loads(cli("show", ref, "--json")[1])["eligibility"]
              if r["rule"] == "montant")["reason"]
    assert "100\u202f000,00\xa0€" in reason


@pytest.mark.parametrize(("args", "message"), [
    (["show", "ODD17-2026-9999"], "aucun dossier de référence « ODD17-2026-9999 »"),
    (["list", "--status", "nope"], "Invalid value"),
])
def test_user_errors_are_messages_not_tracebacks(db_url: str, args: list[str],
                                                 message: str) -> None:
    code, out, err = cli(*args)
    assert code == 2
    assert message in err and "Traceback" not in err + out


def test_broken_fund_config_is_reported(db_url: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "fund.toml"
    bad.write_text("[fund]\nname = 'X'\nenvelope = 'beaucoup'\n")
    monkeypatch.setenv("ODD17_FUND_CONFIG", str(bad))
    code, _, err = cli("init")
    assert code == 2 and "configuration invalide" in err and "fund.envelope" in err


def test_unreachable_database_is_reported(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODD17_DATABASE_URL", f"sqlite:///{tmp_path}/missing/dir/x.db")
    code, _, err = cli("list")
    assert code == 2 and "base de données" in err and "Traceback" not in err


def test_english_messages(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"title": "Projet"}))
    code, out, _ = cli("submit", str(path), "--json", env={"ODD17_LANGUAGE": "en"})
    assert code == 1
    assert {"field": "summary", "message": "Field required"} in json.loads(out)[0]["errors"]


@pytest.mark.parametrize("error", [typer.BadParameter("--limit : 0"), typer.Exit(2),
                                   typer.Abort()])
def test_crash_guard_lets_usage_errors_and_exits_through(error: Exception) -> None:
    """Typer's own click (vendored) raises these: they keep their meaning and exit code,
    never reported as an unexpected crash (exit 3)."""
    from odd17.cli._common import crash_guard

    with pytest.raises(type(error)), crash_guard("test"):
        raise error
