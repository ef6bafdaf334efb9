"""Settings: every ODD17_* variable with a bad value stops the command with one French line
naming it and what it accepts (exit 2, no traceback), from the environment or a .env file; a
database password is never shown, in messages or in logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url
from typer.testing import CliRunner

from odd17.cli import app
from odd17.db import dispose_engines
from odd17.settings import Settings, check_address, check_cron, reset_caches
from tests.conftest import ON_POSTGRES

ODD17 = str(Path(sys.executable).parent / "odd17")
PREFIX = Settings.model_config["env_prefix"]

# field -> (invalid value, other variables it needs, words of what is allowed). A new field of
# Settings without a case here fails test_every_setting_refuses_a_bad_value.
CASES: dict[str, tuple[str, dict[str, str], str]] = {
    "database_url": ("mysql://u:s3cret@127.0.0.1/x", {}, "postgresql://"),
    "fund_config": ("/nonexistent/fund.toml", {}, "fichier TOML existant"),
    "language": ("de", {}, "fr ou en"),
    "actor": ("x" * 201, {}, "200 caractères"),
    "timezone": ("Mars/Olympus", {}, "fuseau horaire IANA"),
    "batch_size": ("0", {}, "nombre entier supérieur ou égal à 1"),
    "submit_worker": ("deux", {}, "true ou false"),
    "mail_transport": ("pigeon", {}, "eml ou smtp"),
    "mail_dir": ("{file}", {}, "pas un fichier"),
    "mail_from": ("Fonds <pas une adresse>", {}, "adresse e-mail"),
    "finance_email": ("finance", {}, "adresse e-mail"),
    "templates_dir": ("/nonexistent", {}, "un dossier existant"),
    "mail_max_attempts": ("-1", {}, "nombre entier supérieur ou égal à 1"),
    "mail_backoff_seconds": ("bientôt", {}, "un nombre supérieur ou égal à 0"),
    "mail_expiry_days": ("0", {}, "nombre strictement positif"),
    "smtp_host": ("mail example org", {}, "nom d'hôte"),
    "smtp_port": ("abc", {}, "nombre entier entre 1 et 65535"),
    "smtp_user": ("jean\ndupont", {}, "sur une ligne"),
    "smtp_password": ("s3cret", {}, "avec ODD17_SMTP_USER"),
    "smtp_starttls": ("oui-non", {}, "true ou false"),
    "smtp_ssl": ("true", {"ODD17_SMTP_STARTTLS": "true"}, "pas les deux"),
    "serve_eligibility_minutes": ("0", {}, "nombre strictement positif"),
    "serve_review_minutes": ("-5", {}, "nombre strictement positif"),
    "serve_outbox_seconds": ("nan", {}, "nombre strictement positif"),
    "serve_nightly_cron": ("chaque nuit", {}, "expression cron"),
    "public_url": ("javascript:alert(1)", {}, "http:// ou https://"),
    "upload_dir": ("{file}", {}, "pas un fichier"),
    "upload_max_bytes": ("0", {}, "nombre entier entre 1 et 1073741824"),
    "session_lifetime_hours": ("0", {}, "nombre strictement positif"),
    "sign_in_max_per_address": ("0", {}, "nombre entier supérieur ou égal à 1"),
    "sign_in_max_per_client": ("beaucoup", {}, "nombre entier supérieur ou égal à 1"),
    "sign_in_window_minutes": ("-1", {}, "nombre strictement positif"),
    "totp_required_for_staff": ("peut-être", {}, "true ou false"),
    "secret_key": ("s3cret", {}, "au moins 32 caractères"),
}
# The cases, run through the installed console script (the others through CliRunner).
THROUGH_SCRIPT = {"smtp_port", "mail_transport", "language", "batch_size", "mail_max_attempts",
                  "fund_config", "database_url", "templates_dir"}


def variable(field: str) -> str:
    return PREFIX + field.upper()


def case_env(field: str, tmp_path: Path) -> dict[str, str]:
    if field not in CASES:
        pytest.fail(f"no invalid value for {variable(field)} in CASES: add one")
    value, others, _ = CASES[field]
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    return {variable(field): value.format(file=a_file), **others}


def clean_environ() -> dict[str, str]:
    """The test process's environment without any ODD17_* variable (the PostgreSQL pass sets
    ODD17_DATABASE_URL)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}


def assert_one_french_line(field: str, code: int, out: str, err: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"Erreur : {variable(field)} : valeur invalide"), err
    assert "(attendu : " in lines[0] and CASES[field][2] in lines[0], err
    assert "s3cret" not in out + err


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_refuses_a_bad_value(field: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    env = case_env(field, tmp_path)
    monkeypatch.chdir(tmp_path)
    if field in THROUGH_SCRIPT:
        command = "finance" if field == "fund_config" else "list"  # as in the issue
        proc = subprocess.run([ODD17, command], capture_output=True, text=True, timeout=120,
                              env={**clean_environ(), **env})
        assert_one_french_line(field, proc.returncode, proc.stdout, proc.stderr)
        return
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    reset_caches()
    result = CliRunner().invoke(app, ["list"], env=env, catch_exceptions=False)
    assert_one_french_line(field, result.exit_code, result.stdout, result.stderr)


def dotenv_line(key: str, value: str) -> str:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{key}="{quoted}"\n'


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_a_bad_value_in_the_dotenv_file_is_reported_the_same(
        field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = case_env(field, tmp_path)
    (tmp_path / ".env").write_text("".join(dotenv_line(k, v) for k, v in env.items()))
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    reset_caches()
    result = CliRunner().invoke(app, ["list"], catch_exceptions=False)
    assert_one_french_line(field, result.exit_code, result.stdout, result.stderr)


def test_dotenv_through_the_console_script(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ODD17_SMTP_PORT=abc\n")
    proc = subprocess.run([ODD17, "outbox", "list"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=clean_environ())
    assert_one_french_line("smtp_port", proc.returncode, proc.stdout, proc.stderr)


def test_help_works_whatever_the_settings(tmp_path: Path) -> None:
    env = {**clean_environ(), "ODD17_SMTP_PORT": "abc"}
    proc = subprocess.run([ODD17, "outbox", "send", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "Usage" in proc.stdout and not proc.stderr


@pytest.mark.parametrize("url", ["postgres://u@h/x", "postgresql+psycopg://u@h:5433/x",
                                 "sqlite:///odd17.db", "sqlite+pysqlite:///:memory:"])
def test_supported_database_urls_are_accepted(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODD17_DATABASE_URL", url)
    assert make_url(Settings().database_url).get_backend_name() in ("postgresql", "sqlite")


@pytest.mark.parametrize("url", ["mysql://u@h/x", "postgresql+psycopg2://u@h/x",
                                 "oracle+cx_oracle://u:s3cret@h/x", "pas une url",
                                 "postgresql://u:s3cret@h:port/x", "sqlite+aiosqlite:///x.db"])
def test_unsupported_database_urls_are_one_line(url: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    reset_caches()
    result = CliRunner().invoke(app, ["init"], env={"ODD17_DATABASE_URL": url},
                                catch_exceptions=False)
    assert result.exit_code == 2 and "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("Erreur : ODD17_DATABASE_URL : valeur invalide")
    assert len(result.stderr.splitlines()) == 1 and "s3cret" not in result.stderr


# --- the database password is never shown -------------------------------------------------

PASSWORD = "s3cret-Pw"
UNREACHABLE = f"postgresql://odd17:{PASSWORD}@127.0.0.1:1/odd17"


@pytest.mark.parametrize("args", [["init"], ["list"], ["finance"], ["topup", "10", "--motif",
                                  "x"], ["outbox", "send"], ["serve", "--api-url",
                                  "http://127.0.0.1:1/api"]])
def test_an_unreachable_database_is_named_without_its_password(args: list[str],
                                                               tmp_path: Path) -> None:
    proc = subprocess.run([ODD17, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**clean_environ(), "ODD17_DATABASE_URL": UNREACHABLE})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert "odd17:***@127.0.0.1:1/odd17" in proc.stderr  # named, password hidden
    assert PASSWORD not in proc.stdout + proc.stderr


def test_no_password_in_log_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """Everything logged at any level while commands fail on the database (SQLAlchemy, pool,
    psycopg, alembic loggers)."""
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    for args in (["init"], ["list"], ["finance", "--check"]):
        reset_caches()
        result = CliRunner().invoke(app, args, env={"ODD17_DATABASE_URL": UNREACHABLE},
                                    catch_exceptions=False)
        assert result.exit_code == 2
        assert PASSWORD not in result.stdout + result.stderr
    dispose_engines()
    reset_caches()
    assert PASSWORD not in caplog.text


@pytest.mark.skipif(not ON_POSTGRES, reason="a password needs a PostgreSQL URL")
def test_no_password_in_the_output_of_working_commands(db_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The test server accepts any password (trust): commands work with one in the URL, and
    neither their output nor anything logged (SQLAlchemy's pool, psycopg, alembic, at DEBUG)
    shows it."""
    url = make_url(db_url).set(password=PASSWORD).render_as_string(hide_password=False)
    proc = subprocess.run([ODD17, "init"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**clean_environ(), "ODD17_DATABASE_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert ":***@" in proc.stdout and PASSWORD not in proc.stdout + proc.stderr
    monkeypatch.setenv("ODD17_DATABASE_URL", url)
    dispose_engines()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # SQLAlchemy sets its own to WARN
    for args in (["init"], ["list"], ["finance", "--check"], ["outbox", "send"]):
        reset_caches()
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    dispose_engines()
    reset_caches()
    assert {r.name.split(".")[1] for r in caplog.records
            if r.name.startswith("sqlalchemy.")} >= {"engine", "pool"}  # they did log
    assert PASSWORD not in caplog.text


def test_no_password_in_flow_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  prefect_server: None) -> None:
    """A flow failing on the database logs its retries and its failure (Prefect's loggers do
    not propagate to the root logger: a handler is put on them): no password there."""
    from flows.eligibility import eligibility_flow

    records: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: records.append(handler.format(record))  # type: ignore[method-assign]
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("", "prefect")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ODD17_DATABASE_URL", UNREACHABLE)
    reset_caches()
    try:
        state = eligibility_flow(return_state=True)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        dispose_engines()
        reset_caches()
    assert state.is_failed()
    text = "\n".join(records)
    assert "Retry 1/3" in text and "127.0.0.1" in text  # the failure was logged
    assert PASSWORD not in text


def test_sqlite_syncs_every_commit(tmp_path: Path) -> None:
    """synchronous=FULL (2) in WAL mode: a power loss keeps the last commits of the ledger."""
    from sqlalchemy import text

    from odd17.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
    engine.dispose()


def test_the_defaults_pass_the_checks_they_skip() -> None:
    """Settings does not check its default addresses and cron (start-up time): they must pass."""
    fields = Settings.model_fields
    for name in ("mail_from", "finance_email"):
        assert check_address(str(fields[name].default)) == fields[name].default
    assert check_cron(str(fields["serve_nightly_cron"].default))
