"""Start-up: what ``odd17 --help`` imports, and the lazy ``models`` package keeping its
guarantee (any name taken from it maps every table). Each check runs in a fresh interpreter,
the only place where "was this module imported" means something."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "alembic", "pydantic_settings", "prefect", "odd17.services", "odd17.db")


def loaded_after(code: str) -> list[str]:
    """The heavy top-level packages loaded after running ``code`` in a fresh interpreter."""
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps(sorted({{h for m in sys.modules for h in {HEAVY!r} "
             "if m == h or m.startswith(h + '.')})))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    loaded: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["pay", "--help"],
                                  ["grant", "--help"], ["outbox", "list", "--help"]])
def test_help_imports_no_database_layer(argv: list[str]) -> None:
    code = ("from odd17.cli import app\n"
            f"try:\n    app({argv!r})\nexcept SystemExit as exc:\n    assert exc.code == 0\n")
    assert loaded_after(code) == []


def test_importing_the_cli_imports_no_database_layer() -> None:
    assert loaded_after("import odd17.cli") == []


def test_lifecycle_alone_is_light_and_the_same_status() -> None:
    assert loaded_after("import models.lifecycle") == []
    code = ("from models.lifecycle import Status as A\nfrom models import Status as B\n"
            "assert A is B\n")
    assert "sqlalchemy" in loaded_after(code)


def test_any_name_from_models_maps_every_table() -> None:
    """``from models import X`` loads every model module, as the eager package did."""
    proc = subprocess.run([sys.executable, "-c", (
        "from models import Status\nfrom models import Base\nimport models\n"
        "print(sorted(Base.metadata.tables))\n"
        "assert all(hasattr(models, n) for n in models.__all__)\n")],
        capture_output=True, text=True, check=True)
    from models import Base

    assert proc.stdout.strip() == str(sorted(Base.metadata.tables))
    assert len(Base.metadata.tables) >= 10


LIST_UNNEEDED = ("alembic", "prefect", "email_validator", "rules.document", "jinja2",
                 "odd17.config", "rules.eligibility",
                 "odd17.services.ledger", "odd17.services.scoring", "odd17.services.assignment",
                 "odd17.services.committee", "odd17.services.intake",
                 "sqlalchemy.dialects.postgresql", "click")


def test_list_on_an_initialised_base_loads_only_what_it_uses(tmp_path: Path) -> None:
    """``odd17 list`` (issue 12, ≤ 0.5 s): the schema check reads the stored revision without
    Alembic, the settings skip the checks of their defaults, the unit of work's fund
    configuration is read only when used, and the queries come without the write-side
    services."""
    env = {**os.environ, "ODD17_DATABASE_URL": f"sqlite:///{tmp_path / 'odd17.db'}"}
    subprocess.run([str(Path(sys.executable).with_name("odd17")), "init"], env=env, check=True,
                   capture_output=True)
    probe = ("import sys, json\nfrom odd17.cli import app\n"
             "try:\n    app(['list'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
             f"print(json.dumps(sorted({{h for m in sys.modules for h in {LIST_UNNEEDED!r} "
             "if m == h or m.startswith(h + '.')})))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, check=True)
    assert "0 dossier(s)" in proc.stdout
    assert json.loads(proc.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("argv", [["list"], ["list", "--json"], ["list", "--status", "submitted"],
                                  ["list", "--json", "--status", "submitted", "--limit", "5"]])
def test_list_configures_no_mapper_and_discovers_no_pydantic_plugin(
        tmp_path: Path, argv: list[str]) -> None:
    """``odd17 list`` reads columns with Core statements: the mappers of the 27 models are not
    configured (an ORM statement configures them all at its first query), and the console
    script skips pydantic's plugin discovery unless the user set its switch."""
    env = {**os.environ, "ODD17_DATABASE_URL": f"sqlite:///{tmp_path / 'odd17.db'}"}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    subprocess.run([str(Path(sys.executable).with_name("odd17")), "init"], env=env, check=True,
                   capture_output=True)
    probe = ("import os, sys\nfrom odd17.cli import main\n"
             f"sys.argv = ['odd17', *{argv!r}]\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
             "import models\nfrom pydantic.plugin import _loader\n"
             "print(models.Application.__mapper__.configured, _loader._plugins is None, "
             "os.environ['PYDANTIC_DISABLE_PLUGINS'])\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False True __all__"
    env["PYDANTIC_DISABLE_PLUGINS"] = ""  # the user's choice is kept: plugins are looked for
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False False "


def test_the_console_script_skips_the_last_collections_after_closing_the_database(
        tmp_path: Path) -> None:
    """``main`` freezes the heap at exit (the interpreter's final collections cost a quarter
    of ``odd17 list``) after closing the connections: the handler registered before ``main``
    runs after it and sees both; a write made by that process is there for the next one."""
    env = {**os.environ, "ODD17_DATABASE_URL": f"sqlite:///{tmp_path / 'odd17.db'}"}
    probe = ("import atexit, gc, sys\n"
             "def after():\n"
             "    from odd17.db import _ENGINES\n"
             "    print('frozen', gc.get_freeze_count() > 0, 'engines', len(_ENGINES))\n"
             "atexit.register(after)\n"
             "sys.argv = ['odd17', 'init']\n"
             "from odd17.cli import main\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "frozen True engines 0"
    listed = subprocess.run([str(Path(sys.executable).with_name("odd17")), "list", "--json"],
                            capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_a_context_reads_the_configured_fund_configuration_when_first_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from odd17.settings import load_fund_config, reset_caches
    from odd17.uow import Context

    given = load_fund_config(None)
    assert Context(actor="t", config=given).config is given
    text = Path(__file__).parents[1].joinpath("odd17/data/fund.toml").read_text("utf-8")
    custom = tmp_path / "fund.toml"
    custom.write_text(text.replace('name = "Fonds ODD 17"', 'name = "Fonds lu au besoin"', 1),
                      "utf-8")
    context = Context.from_settings("t")  # made before the setting changes: nothing read yet
    monkeypatch.setenv("ODD17_FUND_CONFIG", str(custom))
    reset_caches()
    try:
        assert context.config.fund.name == "Fonds lu au besoin"
        assert context.alert_threshold == given.disbursement.alert_threshold
    finally:
        monkeypatch.delenv("ODD17_FUND_CONFIG")
        reset_caches()
