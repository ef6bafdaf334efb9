"""`odd17 demo` on the sample applications, twice, through the real flows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from odd17 import demo
from odd17.db import dispose_engines
from odd17.settings import reset_caches
from rules.eligibility import RULE_IDS

pytestmark = pytest.mark.usefixtures("prefect_server")


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


def test_demo_runs_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ODD17_DATABASE_URL", "sqlite:///unused.db")  # restored after the test
    for _ in range(2):
        buffer = io.StringIO()
        assert demo.run(tmp_path / "demo", Console(file=buffer, width=200)) == 0
        text = buffer.getvalue()
        assert "40 documents reçus : 34 dossiers enregistrés, 1 doublon(s) reconnu(s), " \
               "5 refusé(s)" in text
        assert "18 éligible(s), 16 inéligible(s)" in text
        for rule in RULE_IDS:  # every rule fails for at least one sample application
            assert rule in text.split("Dossiers inéligibles")[1]
    assert (tmp_path / "demo" / "odd17.db").exists()
    dispose_engines()
    reset_caches()
