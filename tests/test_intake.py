"""Intake against a real database: refusals name each bad field and store nothing; good
documents get gap-free references; re-submission is idempotent."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from models import Application, Call, Organisation, StatusChange
from odd17.db import unit_of_work
from odd17.services import intake
from tests.factories import DELETE, application, jsonl, numbered, runner

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def submit(engine: Engine, *docs: Any, now: dt.datetime = NOW,
           language: str = "fr") -> list[intake.Outcome]:
    raws = [intake.RawDocument(f"doc{i}", d) for i, d in enumerate(docs)]
    return intake.submit_documents(runner(engine, now=now, actor="test"), raws,
                                   language=language)


def counts(engine: Engine) -> tuple[int, int, int]:
    with unit_of_work(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Application)) or 0,
            session.scalar(select(func.count()).select_from(StatusChange)) or 0,
            session.scalar(select(func.count()).select_from(Organisation)) or 0,
        )


MALFORMED: list[tuple[str, Any, set[str]]] = [
    ("missing title", application(title=DELETE), {"title"}),
    ("title too short", application(title="Abc"), {"title"}),
    ("title too long", application(title="x" * 201), {"title"}),
    ("summary too long", application(summary="x" * 4001), {"summary"}),
    ("unknown field", application(colour="blue"), {"colour"}),
    ("unknown nested field", application(lead={**application()["lead"], "age": 3}),
     {"lead.age"}),
    ("lead without email", application(lead={"name": "A", "kind": "association"}),
     {"lead.email"}),
    ("lead email invalid", application(lead={**application()["lead"], "email": "pas-un-email"}),
     {"lead.email"}),
    ("unknown kind", application(lead={**application()["lead"], "kind": "cooperative"}),
     {"lead.kind"}),
    ("partner not an object", application(partners=["Mairie"]), {"partners[0]"}),
    ("partners not a list", application(partners={"name": "x"}), {"partners"}),
    ("unknown objective", application(objectives=["croissance"]), {"objectives[0]"}),
    ("repeated objective", application(objectives=["dialogue", "dialogue"]), {"objectives"}),
    ("unknown innovation", application(innovations=["disruption"]), {"innovations[0]"}),
    ("territory missing department", application(territory={"region": "Bretagne"}),
     {"territory.department"}),
    ("bad commune code", application(territory={"region": "Bretagne", "department": "29",
                                                "commune_insee": "2900"}),
     {"territory.commune_insee"}),
    ("region contradicting the department", application(territory={
        "region": "Bretagne", "department": "13"}), {"territory.region"}),
    ("region unknown", application(territory={"region": "Wallonie", "department": "59"}),
     {"territory.region"}),
    ("amount in words", application(requested_amount="douze mille"), {"requested_amount"}),
    ("three decimals", application(requested_amount="100.505"), {"requested_amount"}),
    ("negative amount", application(requested_amount="-5000"), {"requested_amount"}),
    ("zero amount", application(total_budget="0"), {"total_budget"}),
    ("boolean amount", application(requested_amount=True), {"requested_amount"}),
    ("exponent amount", application(requested_amount="1e5"), {"requested_amount"}),
    ("amount with comma", application(requested_amount="12000,50"), {"requested_amount"}),
    ("float with three decimals", application(requested_amount=10.125), {"requested_amount"}),
    ("cofunding amount", application(cofunding=[{"funder": "X", "kind": "etat",
                                                 "amount": "abc"}]), {"cofunding[0].amount"}),
    ("french date", application(start_date="01/03/2027"), {"start_date"}),
    ("impossible date", application(start_date="2027-02-30"), {"start_date"}),
    ("duration in words", application(duration_months="deux ans"), {"duration_months"}),
    ("duration as string", application(duration_months="24"), {"duration_months"}),
    ("duration as float", application(duration_months=24.5), {"duration_months"}),
    ("duration zero", application(duration_months=0), {"duration_months"}),
    ("documents not strings", application(documents=[1, 2]), {"documents[0]", "documents[1]"}),
    ("not an object", ["a", "list"], {"(document)"}),
    ("null document", None, {"(document)"}),
]


@pytest.mark.parametrize(("doc", "fields"), [(d, f) for _, d, f in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_malformed_document_is_refused_naming_each_field(
    engine: Engine, doc: Any, fields: set[str]
) -> None:
    [outcome] = submit(engine, doc)
    assert outcome.status == "refused" and outcome.reference is None
    assert {e["field"] for e in outcome.errors} == fields
    assert all(e["message"] for e in outcome.errors)
    assert counts(engine) == (0, 0, 0)


def test_example_malformed_names_every_field(engine: Engine, examples: Path) -> None:
    doc = json.loads((examples / "application-malformed.json").read_text())
    [outcome] = submit(engine, doc)
    assert {e["field"] for e in outcome.errors} == {
        "summary", "lead.email", "objectives[0]", "territory", "requested_amount",
        "total_budget", "start_date", "duration_months", "colour",
    }
    [english] = submit(engine, doc, language="en")
    assert {"field": "colour",
            "message": "unknown field (not part of the application format)"} in english.errors
    assert {"field": "summary", "message": "Field required"} in english.errors


def test_bad_documents_never_stop_the_batch(engine: Engine) -> None:
    outcomes = submit(engine, numbered(1), {"title": "x"}, numbered(2), "garbage", numbered(3))
    assert [o.status for o in outcomes] == ["submitted", "refused", "submitted", "refused",
                                            "submitted"]
    assert [o.reference for o in outcomes] == [
        "ODD17-2026-0001", None, "ODD17-2026-0002", None, "ODD17-2026-0003"
    ]
    assert counts(engine)[:2] == (3, 3)


def test_resubmission_is_idempotent_with_case_and_spaces_folded(engine: Engine) -> None:
    [first] = submit(engine, application())
    again = application(title="  ALLIANCE pour l'emploi   des jeunes du MANTOIS ")
    [second] = submit(engine, again)
    assert second.reference == first.reference and second.duplicate
    # same batch, twice: one application
    outcomes = submit(engine, numbered(7), numbered(7))
    assert outcomes[0].reference == outcomes[1].reference
    assert [o.duplicate for o in outcomes] == [False, True]
    assert counts(engine)[0] == 2


def test_same_title_from_another_lead_is_a_new_application(engine: Engine) -> None:
    doc = application()
    other = application(lead={**doc["lead"], "siret": None, "rna": "W123456789"})
    other["lead"] = {k: v for k, v in other["lead"].items() if v is not None}
    refs = [o.reference for o in submit(engine, doc, other)]
    assert refs == ["ODD17-2026-0001", "ODD17-2026-0002"]


def test_references_continue_across_batches_and_restart_each_year(engine: Engine) -> None:
    submit(engine, numbered(1), numbered(2))
    [third] = submit(engine, numbered(3))
    assert third.reference == "ODD17-2026-0003"
    [next_year] = submit(engine, numbered(4), now=dt.datetime(2027, 1, 2, tzinfo=dt.UTC))
    assert next_year.reference == "ODD17-2027-0001"


def test_closed_and_unknown_calls_are_refused(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        call = session.scalars(select(Call)).one()
        call_id, closes = call.id, call.closes_on
    after = dt.datetime.combine(closes + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    [late] = submit(engine, application(), now=after)
    assert late.status == "refused"
    assert late.errors == [{"field": "call",
                            "message": f"aucun appel à projets n'est ouvert : « {call_id} » "
                                       f"est clos depuis le {closes.isoformat()}"}]
    [named] = submit(engine, application(call=call_id), now=after)
    assert named.errors == [{"field": "call", "message": f"l'appel « {call_id} » est clos depuis "
                                                         f"le {closes.isoformat()}"}]
    [unknown] = submit(engine, application(call="aap-1999"))
    assert unknown.errors[0]["field"] == "call" and "aap-1999" in unknown.errors[0]["message"]
    [explicit] = submit(engine, application(call=call_id))
    assert explicit.reference == "ODD17-2026-0001"
    last_day = dt.datetime.combine(closes, dt.time(23), tzinfo=dt.UTC)
    [on_last_day] = submit(engine, numbered(9), now=last_day)
    assert on_last_day.status == "submitted"
    assert counts(engine)[0] == 2


def test_amounts_are_stored_exactly(engine: Engine) -> None:
    [outcome] = submit(engine, application(requested_amount=0.1 + 0.2,  # 0.30000000000000004
                                           total_budget="999999.99"))
    assert outcome.status == "refused"  # more than two decimals: never rounded silently
    [ok] = submit(engine, application(requested_amount=12345.7, total_budget="999999.99"))
    with unit_of_work(engine) as session:
        app = session.scalars(select(Application)).one()
        assert app.reference == ok.reference
        assert app.requested_amount == Decimal("12345.70")
        assert app.total_budget == Decimal("999999.99")
        assert app.document["requested_amount"] == "12345.70"


def test_lead_organisation_is_shared_between_applications(engine: Engine) -> None:
    submit(engine, application(), application(title="Un second projet du même porteur"))
    assert counts(engine) == (2, 2, 1)


def test_read_sources_files_folders_and_lines(tmp_path: Path) -> None:
    folder = tmp_path / "depot"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.json").write_text(json.dumps(numbered(1)))
    (folder / "sub" / "b.jsonl").write_text(jsonl([numbered(2), numbered(3)]) + "\n{oops\n")
    (folder / "notes.txt").write_text("ignored")
    (tmp_path / "latin1.json").write_bytes("{\"title\": \"é\"}".encode("latin-1"))
    (tmp_path / "empty").mkdir()
    raws = intake.read_sources([folder, tmp_path / "latin1.json", tmp_path / "nope.json",
                                tmp_path / "empty", folder / "notes.txt"])
    sources = [r.source.replace(str(tmp_path), "") for r in raws]
    assert sources == ["/depot/a.json", "/depot/sub/b.jsonl:1", "/depot/sub/b.jsonl:2",
                       "/depot/sub/b.jsonl:4", "/latin1.json", "/nope.json", "/empty",
                       "/depot/notes.txt"]
    errors = [r.error for r in raws]
    assert errors[:3] == [None, None, None]
    assert errors[3] is not None and errors[3].startswith("JSON illisible ligne 1")
    assert errors[4] == ("fichier non encodé en UTF-8 (octet 0xE9, colonne 12) : enregistrez le "
                         "fichier en UTF-8")
    assert errors[5:] == ["fichier introuvable",
                          "dossier sans fichier .json ni .jsonl",
                          "extension non prise en charge (attendu .json ou .jsonl)"]


@pytest.mark.parametrize("field", ["title", "summary"])
def test_control_characters_are_refused(engine: Engine, field: str) -> None:
    [outcome] = submit(engine, application(**{field: "Projet\x00 caché"}))
    assert outcome.errors == [{"field": field,
                               "message": "caractère de contrôle interdit (par exemple NUL)"}]
    [lead] = submit(engine, application(lead={**application()["lead"], "siret": "5260\x00"}))
    assert lead.errors[0]["field"] == "lead.siret"
    assert counts(engine) == (0, 0, 0)


def test_region_is_stored_under_its_official_name_derived_or_normalised(engine: Engine) -> None:
    outcomes = submit(
        engine,
        numbered(1, territory={"region": "ile de france", "department": "78"}),
        numbered(2, territory={"department": "2B"}),
        numbered(3, territory={"region": "AUVERGNE RHONE ALPES", "department": "69"}),
        numbered(4, territory={"region": "Bretagne", "department": "13"}),
    )
    assert [o.status for o in outcomes] == ["submitted"] * 3 + ["refused"]
    [error] = outcomes[3].errors
    assert error["field"] == "territory.region"
    assert "Bretagne" in error["message"] and "13" in error["message"]
    with unit_of_work(engine) as s:
        stored = [(a.region, a.document["territory"]["region"]) for a in
                  s.scalars(select(Application).order_by(Application.id))]
    assert stored == [("Île-de-France", "Île-de-France"), ("Corse", "Corse"),
                      ("Auvergne-Rhône-Alpes", "Auvergne-Rhône-Alpes")]
