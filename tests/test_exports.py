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
from tests.factories import as_uow, in_committee, uow_on

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
            ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal("60000.50"),
                           plan=DEFAULT_PLAN)
        ledger.end_grant(as_uow(s, now=NOW, actor="c"), refs[1], cancel=True, reason="abandon")
        ledger.pay(as_uow(s, now=NOW, actor="f"), refs[2], 1, "VIR-1", paid_on=NOW.date())
    return [refs[0], refs[2], rna_only]


def test_scdl_validates_against_the_official_schema(engine: Engine, grants: list[str],
                                                    reference: Path, tmp_path: Path) -> None:
    from frictionless import Resource, Schema, system

    path = tmp_path / "subventions.csv"
    with unit_of_work(engine) as s:
        assert exports.write_scdl(uow_on(s, now=NOW), path) == 3
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
        assert exports.write_360giving(uow_on(s, now=NOW), path) == 3
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
        exports.write_360giving(uow_on(s, now=NOW), tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def _set_lead(engine: Engine, reference: str, **lead: str | None) -> None:
    """Alter a stored document, as one stored under an earlier rule set could be."""
    from sqlalchemy import select

    from models import Application

    with unit_of_work(engine) as s:
        app = s.scalars(select(Application).where(Application.reference == reference)).one()
        merged = {**app.document["lead"], **lead}
        app.document = {**app.document, "lead": {k: v for k, v in merged.items() if v}}


@pytest.mark.parametrize(("lead", "named"), [
    ({"rna": "W2A1234567"}, "W2A1234567"),                       # letters: not SCDL's pattern
    ({"siret": "52601815590834"}, "52601815590834"),             # bad SIRET checksum
    ({"siret": "1234"}, "1234"),                                 # not 14 digits
    ({"rna": None}, "ni idBeneficiaire"),                        # no identifier at all
])
def test_scdl_refuses_an_invalid_row_naming_the_grant_and_writes_nothing(
        engine: Engine, grants: list[str], tmp_path: Path, lead: dict[str, str | None],
        named: str) -> None:
    from models import DomainError

    bad = grants[2]  # the RNA-only lead
    _set_lead(engine, bad, **lead)
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "subventions.csv"
    path.write_text("previous export\n", encoding="utf-8")
    with pytest.raises(DomainError) as caught, unit_of_work(engine) as s:
        exports.write_scdl(uow_on(s, now=NOW), path)
    message = str(caught.value)
    assert bad in message and named in message and "aucun fichier écrit" in message
    assert grants[0] not in message  # the valid grants are not blamed
    assert path.read_text(encoding="utf-8") == "previous export\n"  # untouched
    assert [p.name for p in folder.iterdir()] == ["subventions.csv"]  # no temp file left


def test_scdl_refuses_a_bad_funder_siret(engine: Engine, grants: list[str],
                                         tmp_path: Path) -> None:
    from sqlalchemy import update

    from models import DomainError, Fund

    with unit_of_work(engine) as s:
        s.execute(update(Fund).values(siret="82467580500018"))
    with pytest.raises(DomainError, match="idAttribuant") as caught, unit_of_work(engine) as s:
        exports.write_scdl(uow_on(s, now=NOW), tmp_path / "x.csv")
    assert all(ref in str(caught.value) for ref in grants)
    assert not (tmp_path / "x.csv").exists()


GOOD_ROW = {
    "nomAttribuant": "Fonds ODD 17", "idAttribuant": "82467580500017",
    "dateConvention": "2026-12-02", "referenceDecision": "ODD17-2026-0001",
    "nomBeneficiaire": "Association", "idBeneficiaire": "", "rnaBeneficiaire": "W751234567",
    "objet": "Projet", "montant": "60000.50", "nature": "aide en numéraire",
    "conditionsVersement": "échelonné", "datesPeriodeVersement": "2026-12-02/2028-12-02",
    "idRAE": "", "notificationUE": "non", "pourcentageSubvention": "1.00", "dispositifAide": "",
}


@pytest.mark.parametrize(("column", "value"), [
    ("idAttribuant", "82467580500018"), ("idAttribuant", ""), ("idBeneficiaire", "5260181559083"),
    ("rnaBeneficiaire", "W75123456"), ("rnaBeneficiaire", "W75123456A"),
    ("dateConvention", "02/12/2026"), ("dateConvention", "2026-02-30"),
    ("datesPeriodeVersement", "2026-12-02/2028-13-02"), ("datesPeriodeVersement", "bientôt"),
    ("montant", "60000,50"), ("montant", "0"), ("montant", "-5"), ("nature", "chèque"),
    ("objet", "x" * 257), ("nomBeneficiaire", " "), ("notificationUE", "false"),
    ("pourcentageSubvention", "100"), ("idRAE", "123456"),
])
def test_scdl_row_checks_catch_each_kind_of_error(column: str, value: str) -> None:
    assert exports.scdl_problems(GOOD_ROW) == []
    problems = exports.scdl_problems({**GOOD_ROW, column: value})
    assert problems and any(column in p for p in problems)


def test_scdl_row_needs_a_siret_or_an_rna() -> None:
    assert exports.scdl_problems({**GOOD_ROW, "rnaBeneficiaire": "",
                                  "idBeneficiaire": "52601815590833"}) == []
    assert exports.scdl_problems({**GOOD_ROW, "rnaBeneficiaire": ""}) != []
