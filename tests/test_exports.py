"""Open-data exports validated against the official schemas in ../shared/reference."""

from __future__ import annotations

import csv
import datetime as dt
import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from stdnum.fr import siret

from odd17.db import unit_of_work
from odd17.services import exports, ledger
from odd17.settings import load_fund_config
from rules.tranches import DEFAULT_PLAN
from tests.conftest import SHARED
from tests.factories import in_committee

REFERENCE = SHARED / "reference"
NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
CONFIG = load_fund_config(None)


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is absent: the official schemas live in ../shared/reference")
    return REFERENCE


@pytest.fixture
def grants(engine: Engine) -> list[str]:
    """Four grants: a SIRET lead, an RNA-only lead, a cancelled one (not published), a paid
    one."""
    refs = in_committee(engine, 3)
    [rna_only] = in_committee(engine, 1, start=50, lead={
        "name": "Association RNA seule", "kind": "association", "rna": "W751234567",
        "email": "rna@example.org"})
    with unit_of_work(engine) as s:
        for ref in [*refs, rna_only]:
            ledger.approve(s, ref, Decimal("60000.50"), plan=DEFAULT_PLAN, actor="c", now=NOW,
                           alert_threshold=Decimal("0.1"))
        ledger.end_grant(s, refs[1], cancel=True, reason="abandon", actor="c", now=NOW,
                         alert_threshold=Decimal("0.1"))
        ledger.pay(s, refs[2], 1, "VIR-1", paid_on=NOW.date(), actor="f", now=NOW,
                   alert_threshold=Decimal("0.1"))
    return [refs[0], refs[2], rna_only]


def test_scdl_validates_against_the_official_schema(engine: Engine, grants: list[str],
                                                    reference: Path, tmp_path: Path) -> None:
    from frictionless import Resource, Schema, system

    path = tmp_path / "subventions.csv"
    with unit_of_work(engine) as s:
        assert exports.write_scdl(s, CONFIG, path) == 3
    with system.use_context(trusted=True):
        schema = Schema.from_descriptor(str(reference / "scdl-subventions-2.1.1/schema.json"))
        report = Resource(path=str(path), schema=schema).validate()
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["referenceDecision"] for r in rows] == grants
    # the schema's custom checks, which frictionless does not run by itself
    for row in rows:
        assert siret.is_valid(row["idAttribuant"])
        assert row["idBeneficiaire"] or row["rnaBeneficiaire"]
        if row["idBeneficiaire"]:
            assert siret.is_valid(row["idBeneficiaire"])
    assert rows[2]["idBeneficiaire"] == "" and rows[2]["rnaBeneficiaire"] == "W751234567"
    assert rows[0]["montant"] == "60000.50" and rows[0]["conditionsVersement"] == "échelonné"


def test_scdl_invalid_example_is_rejected_by_the_same_check(reference: Path) -> None:
    """The validation used above can fail: the schema's own invalid example does."""
    from frictionless import Resource, Schema, system

    with system.use_context(trusted=True):
        schema = Schema.from_descriptor(str(reference / "scdl-subventions-2.1.1/schema.json"))
        bad = reference / "scdl-subventions-2.1.1/exemple_invalide_erreurs_cellules.csv"
        assert not Resource(path=str(bad), schema=schema).validate().valid


def test_360giving_validates_against_the_official_schema(engine: Engine, grants: list[str],
                                                         reference: Path,
                                                         tmp_path: Path) -> None:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    folder = reference / "360giving-1.4.3"
    package_schema = json.loads((folder / "360-giving-package-schema.json").read_text())
    grant_schema = json.loads((folder / "360-giving-schema.json").read_text())
    registry = Registry().with_resources([
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
        for schema in (package_schema, grant_schema)
    ])
    path = tmp_path / "360.json"
    with unit_of_work(engine) as s:
        assert exports.write_360giving(s, CONFIG, path, now=NOW) == 3
    package = json.loads(path.read_text())
    validator = jsonschema.Draft202012Validator(
        package_schema, registry=registry, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(package)]
    assert errors == []
    assert validator.is_valid({"grants": [{"id": 1}]}) is False  # the check can fail
    first = package["grants"][0]
    assert first["id"] == f"360G-odd17-{grants[0]}"
    assert first["amountAwarded"] == 60000.5
    assert package["grants"][1]["amountDisbursed"] == 30000.25
    assert {c["code"] for c in first["classifications"]} == {"17.16", "17.17"}


def test_classification_titles_match_the_iati_codelist(reference: Path) -> None:
    root = ET.parse(reference / "iati-unsdg/UNSDG-Targets.xml").getroot()
    titles = {item.findtext("code"): item.find("name/narrative").text  # type: ignore[union-attr]
              for item in root.iter("codelist-item")}
    for classification in CONFIG.open_data.classifications:
        assert classification.vocabulary == "UNSDG-Targets"
        assert titles[classification.code] == classification.title


def test_360giving_with_no_grant_is_a_clear_error(engine: Engine, tmp_path: Path) -> None:
    from models import DomainError

    with pytest.raises(DomainError, match="aucune subvention"), unit_of_work(engine) as s:
        exports.write_360giving(s, CONFIG, tmp_path / "x.json", now=NOW)
    assert not (tmp_path / "x.json").exists()
