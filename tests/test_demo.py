"""`odd17 demo`: the whole cycle on the sample data, twice, through the real flows."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.orm import Session

from odd17 import demo
from odd17.db import dispose_engines, make_engine
from odd17.services.access import Role, roles_for
from odd17.settings import reset_caches
from tests.conftest import SHARED
from tests.webutil import Clock, client, sign_in


def test_sample_data_covers_what_the_demo_promises() -> None:
    lines = demo.sample_path().read_text().splitlines()
    docs = []
    for line in lines:
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    docs = [d for d in docs if isinstance(d, dict) and "lead" in d]
    assert len(lines) >= 30
    kinds = {o["kind"] for d in docs for o in [d["lead"], *d.get("partners", [])]}
    assert kinds >= {"association", "fondation", "entreprise", "collectivite", "etat",
                     "academique"}
    assert {o for d in docs for o in d.get("objectives", [])} >= {
        "dialogue", "ingenierie", "experimentation"}
    departments = {d["territory"]["department"] for d in docs if "territory" in d}
    assert departments >= {"971", "972", "973", "974", "976"}  # every overseas department


@pytest.mark.usefixtures("prefect_server")
def test_demo_runs_the_whole_cycle_twice(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in ("ODD17_DATABASE_URL", "ODD17_MAIL_DIR", "ODD17_MAIL_TRANSPORT"):
        monkeypatch.setenv(key, "")  # restored after the test (the demo sets its own)
    folder = tmp_path / "demo"
    for _ in range(2):
        buffer = io.StringIO()
        assert demo.run(folder, Console(file=buffer, width=250)) == 0
        text = buffer.getvalue()
        assert "40 documents : 34 dossiers, 1 doublon reconnu, 5 refusés au format ; " \
               "18 éligibles, 16 inéligibles" in text
        assert "conflit d'intérêts : sophie.marchand@dauphine.example.org écarté" in text
        assert "Invariants du grand livre : tous vérifiés" in text
        statuses = text.split("Dossiers par statut : ")[1].splitlines()[0]
        for status in ("en cours", "inéligible", "rejeté"):  # French labels, not identifiers
            assert status in statuses
    for name in ("odd17.db", "rapport-financier.html", "subventions-scdl.csv",
                 "subventions-360.json"):
        assert (folder / name).is_file(), name
    emails = list((folder / "emails").glob("*.eml"))
    assert len(emails) > 100  # the second run started over: no leftovers doubled
    assert len(emails) == int(text.split("Courriels : envoyé ")[1].split()[0])
    reference = SHARED / "reference" / "scdl-subventions-2.1.1" / "schema.json"
    if reference.exists():
        from frictionless import Resource, Schema, system

        with system.use_context(trusted=True):
            report = Resource(path=str(folder / "subventions-scdl.csv"),
                              schema=Schema.from_descriptor(str(reference))).validate()
        assert report.valid
    _the_browser_hint_names_accounts_that_sign_in(text, folder)  # after the count of emails
    dispose_engines()
    reset_caches()


def _the_browser_hint_names_accounts_that_sign_in(text: str, folder: Path) -> None:
    """The demo's last words: the portal's command on the demo's database and mail folder, an
    address per role, where the links arrive. Each address signs in for real: the link is
    asked on /connexion, `odd17 outbox send` writes it into the folder named, it opens a
    session with the role named."""
    hint = text.split("Dans le navigateur")[1]
    mails = (folder / "emails").resolve()
    url = f"sqlite:///{folder / 'odd17.db'}"
    env = f"ODD17_DATABASE_URL={url} ODD17_MAIL_TRANSPORT=eml ODD17_MAIL_DIR={mails}"
    assert f"{env} odd17 web" in hint and f"{env} odd17 outbox send" in hint
    assert f"un fichier .eml dans {mails}" in hint
    assert "http://127.0.0.1:8017/connexion" in hint
    labels = {label: role for role, label in demo.ROLE_LABELS.items()}
    named = {labels[m[0]]: m[1] for m in re.findall(
        rf"^ +({'|'.join(labels)}) +(\S+@\S+)$", hint, flags=re.MULTILINE)}
    assert set(named) == set(demo.ROLE_LABELS), hint
    assert len(set(named.values())) == len(named)  # a different person for each role
    for role in ("manager", "finance", "admin"):
        assert named[role] == demo.STAFF[role] and named[role].endswith("example.org")
    reset_caches()  # the demo's environment: its database and mail folder
    engine = make_engine(url)
    try:
        with engine.connect() as conn, Session(conn) as session:
            for role, address in named.items():
                assert Role(role) in roles_for(session, address, dt.date.today()), role
        clock = Clock()
        for address in named.values():
            browser = client(engine, clock)
            assert sign_in(browser, engine, mails, address).endswith("/mon-espace")
            assert address in browser.get("/mon-espace").text
    finally:
        engine.dispose()
