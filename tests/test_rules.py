"""Every eligibility rule of the set at its boundaries (pure functions, no database)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from rules.document import ApplicationDocument
from rules.eligibility import (
    RULE_IDS,
    CallDates,
    EligibilityPolicy,
    Facts,
    evaluate,
    is_eligible,
)
from tests.factories import application, make_siret

POLICY = EligibilityPolicy()
CALL = CallDates("aap-2026", dt.date(2026, 11, 23), dt.date(2027, 11, 22))


def facts(doc: dict[str, object], call: CallDates = CALL) -> Facts:
    return Facts.of(ApplicationDocument.model_validate(doc), call)


def verdict(rule: str, **changes: object) -> tuple[bool, str]:
    doc = facts(application(**changes))
    result = {r.rule: r for r in evaluate(doc, POLICY)}[rule]
    return result.passed, result.reason


def test_valid_document_passes_every_rule_in_order() -> None:
    results = evaluate(facts(application()), POLICY)
    assert [r.rule for r in results] == list(RULE_IDS) == [
        "objectif", "innovation", "alliance", "porteur", "identifiant", "montant",
        "cofinancement", "duree", "calendrier", "territoire", "pieces",
    ]
    assert is_eligible(results)
    assert all(r.reason for r in results)


def test_every_failing_rule_is_listed_not_just_the_first() -> None:
    doc = application(objectives=[], innovations=[], duration_months=48, documents=[])
    results = evaluate(facts(doc), POLICY)
    assert [r.rule for r in results if not r.passed] == ["objectif", "innovation", "duree",
                                                          "pieces"]


@pytest.mark.parametrize(("objectives", "ok"), [([], False), (["dialogue"], True),
                                                 (["ingenierie", "experimentation"], True)])
def test_objectif(objectives: list[str], ok: bool) -> None:
    assert verdict("objectif", objectives=objectives)[0] is ok


@pytest.mark.parametrize(("innovations", "ok"), [([], False), (["solutions"], True)])
def test_innovation(innovations: list[str], ok: bool) -> None:
    assert verdict("innovation", innovations=innovations)[0] is ok


LEAD = application()["lead"]


@pytest.mark.parametrize(
    ("lead_kind", "partner_kinds", "ok"),
    [
        ("association", [], False),                        # no partner
        ("association", ["fondation"], False),             # one monde only (associatif)
        ("association", ["association", "fondation"], False),
        ("association", ["entreprise"], True),             # two mondes: the minimum
        ("collectivite", ["etat"], True),
        ("academique", ["academique", "collectivite"], True),
    ],
)
def test_alliance(lead_kind: str, partner_kinds: list[str], ok: bool) -> None:
    partners = [{"name": f"P{i}", "kind": k} for i, k in enumerate(partner_kinds)]
    passed, reason = verdict("alliance", lead={**LEAD, "kind": lead_kind}, partners=partners)
    assert passed is ok
    assert ("mondes" in reason) or ("partenaire" in reason)


@pytest.mark.parametrize("kind", ["association", "fondation", "collectivite", "etat",
                                  "academique", "entreprise"])
def test_porteur(kind: str) -> None:
    passed, reason = verdict("porteur", lead={**LEAD, "kind": kind})
    assert passed is (kind != "entreprise")
    assert kind in reason


@pytest.mark.parametrize(
    ("lead", "ok"),
    [
        ({"kind": "association", "siret": "52601815590833"}, True),
        ({"kind": "association", "siret": "52601815590834"}, False),       # bad checksum
        ({"kind": "association", "siret": None, "rna": "W783001234"}, True),
        # W then 9 digits, the official format (SCDL's rnaBeneficiaire): no letters
        ({"kind": "fondation", "siret": None, "rna": "W78300123A"}, False),
        ({"kind": "association", "siret": None, "rna": "W2A1234567"}, False),
        ({"kind": "association", "siret": None, "rna": "w783001234"}, True),  # upper-cased
        ({"kind": "association", "siret": None, "rna": "W7830012345"}, False),  # 10 digits
        ({"kind": "association", "siret": None, "rna": "W78300123"}, False),  # 8 characters
        ({"kind": "association", "siret": None, "rna": "X783001234"}, False),
        ({"kind": "collectivite", "siret": None, "rna": "W783001234"}, False),  # RNA: assoc only
        ({"kind": "etat", "siret": None, "rna": None}, False),
        # every identifier given must be valid: the open-data export publishes both
        ({"kind": "association", "siret": "52601815590834", "rna": "W783001234"}, False),
        ({"kind": "association", "siret": "52601815590833", "rna": "W2A1234567"}, False),
        ({"kind": "association", "siret": "52601815590833", "rna": "W783001234"}, True),
        ({"kind": "academique", "siret": "1234"}, False),
    ],
)
def test_identifiant_lead(lead: dict[str, object], ok: bool) -> None:
    doc_lead = {**LEAD, "rna": None, **lead}
    doc_lead = {k: v for k, v in doc_lead.items() if v is not None}
    assert verdict("identifiant", lead=doc_lead)[0] is ok


def test_identifiant_names_every_bad_identifier() -> None:
    lead = {**LEAD, "siret": "52601815590834", "rna": "W2A1234567"}
    passed, reason = verdict("identifiant", lead=lead)
    assert not passed
    assert "52601815590834" in reason and "W2A1234567" in reason


def test_identifiant_checks_every_partner_siret_given() -> None:
    partners = [
        {"name": "Sans SIRET", "kind": "entreprise"},
        {"name": "Bon SIRET", "kind": "collectivite", "siret": make_siret(42)},
    ]
    assert verdict("identifiant", partners=partners)[0] is True
    partners.append({"name": "Mauvais SIRET", "kind": "etat", "siret": "11111111111112"})
    passed, reason = verdict("identifiant", partners=partners)
    assert not passed
    assert "Mauvais SIRET" in reason and "11111111111112" in reason


@pytest.mark.parametrize(
    ("amount", "ok"),
    [("4999.99", False), ("5000.00", True), ("5000.01", True), ("199999.99", True),
     ("200000.00", True), ("200000.01", False)],
)
def test_montant_bounds(amount: str, ok: bool) -> None:
    passed, reason = verdict("montant", requested_amount=amount, total_budget="1000000")
    assert passed is ok
    assert "€" in reason


def test_montant_reason_uses_french_money_format() -> None:
    _, reason = verdict("montant", requested_amount="250000", total_budget="1000000")
    assert "250\u202f000,00\xa0€" in reason and "200\u202f000,00\xa0€" in reason


@pytest.mark.parametrize(
    ("requested", "budget", "ok"),
    [("80000.00", "100000.00", True), ("80000.01", "100000.00", False),
     ("8000.00", "10000.00", True), ("100000.00", "100000.00", False)],
)
def test_cofinancement_boundary(requested: str, budget: str, ok: bool) -> None:
    assert verdict("cofinancement", requested_amount=requested, total_budget=budget)[0] is ok


@pytest.mark.parametrize(("months", "ok"), [(5, False), (6, True), (36, True), (37, False)])
def test_duree_bounds(months: int, ok: bool) -> None:
    assert verdict("duree", duration_months=months)[0] is ok


@pytest.mark.parametrize(
    ("start", "ok"),
    [("0001-01-01", False),
     ("2025-11-22", False), ("2025-11-23", True),   # 12 months before the call opens
     ("2027-03-01", True),
     ("2029-11-22", True), ("2029-11-23", False),   # 24 months after it closes
     ("9999-12-31", False)],
)
def test_calendrier_bounds_the_start_date_around_the_call(start: str, ok: bool) -> None:
    passed, reason = verdict("calendrier", start_date=start)
    assert passed is ok
    assert start in reason and ("aap-2026" in reason or ok)


def test_calendrier_window_comes_from_the_policy() -> None:
    doc = facts(application(start_date="2030-01-01"))
    assert {r.rule: r.passed for r in evaluate(doc, POLICY)}["calendrier"] is False
    wide = EligibilityPolicy(start_months_after_call=36)
    assert {r.rule: r.passed for r in evaluate(doc, wide)}["calendrier"] is True
    late_call = CallDates("aap-2028", dt.date(2028, 1, 1), dt.date(2028, 12, 31))
    assert {r.rule: r.passed for r in evaluate(facts(application(start_date="2030-01-01"),
                                                     late_call), POLICY)}["calendrier"]


@pytest.mark.parametrize(
    ("department", "ok"),
    [("01", True), ("19", True), ("20", False), ("21", True), ("95", True), ("96", False),
     ("00", False), ("2A", True), ("2b", True), ("2C", False), ("970", False), ("971", True),
     ("974", True), ("976", True), ("977", False), ("1", False), ("75", True)],
)
def test_territoire(department: str, ok: bool) -> None:
    territory = {"department": department}
    assert verdict("territoire", territory=territory)[0] is ok


@pytest.mark.parametrize(
    ("documents", "missing"),
    [(["statuts", "budget_previsionnel", "rib"], []),
     (["STATUTS", "budget_previsionnel", "rib", "autre"], []),
     (["statuts", "rib"], ["budget_previsionnel"]),
     ([], ["statuts", "budget_previsionnel", "rib"])],
)
def test_pieces(documents: list[str], missing: list[str]) -> None:
    passed, reason = verdict("pieces", documents=documents)
    assert passed is (not missing)
    for name in missing:
        assert name in reason


def test_thresholds_come_from_the_policy_not_the_code() -> None:
    doc = facts(application(requested_amount="250000", total_budget="1000000"))
    strict = {r.rule: r.passed for r in evaluate(doc, POLICY)}
    generous = EligibilityPolicy(max_amount=Decimal("300000"))
    relaxed = {r.rule: r.passed for r in evaluate(doc, generous)}
    assert strict["montant"] is False and relaxed["montant"] is True
    assert POLICY.digest() != generous.digest()


EMAILS = [
    ("direction@passerelles.example.org", True),
    ("Claire.Martin+odd17@Mairie-Rennes.FR", True),
    ("élodie@associations.fr", True),          # internationalised: the library decides
    ("contact@xn--associations-solidaires-9bc.fr", True),
    ("pas-un-email", False),
    ("a@b", False),
    ("a..b@example.org", False),
    ("a@example.test", False),                  # special-use domain, as email-validator says
    ("a@localhost", False),
    ("a b@example.org", False),
    ("", False),
]


@pytest.mark.parametrize(("email", "ok"), EMAILS)
def test_email_fast_path_agrees_with_email_validator(email: str, ok: bool) -> None:
    from email_validator import EmailNotValidError, validate_email
    from pydantic import ValidationError

    try:
        validate_email(email, check_deliverability=False)
        library = True
    except EmailNotValidError:
        library = False
    assert library is ok
    lead = {**LEAD, "email": email}
    try:
        ApplicationDocument.model_validate(application(lead=lead))
        ours = True
    except ValidationError:
        ours = False
    assert ours is ok


def test_facts_from_the_stored_form_equal_facts_from_the_model() -> None:
    raw = application(partners=[{"name": "P", "kind": "etat", "siret": "11111111111112"}])
    doc = ApplicationDocument.model_validate(raw)
    stored = json.loads(json.dumps(doc.model_dump(mode="json", exclude_none=True)))
    assert Facts.from_json(stored, CALL) == Facts.of(doc, CALL)
    assert Facts.of(doc, CALL).requested_amount == Decimal("120000.00")


# --- region derived from the department (INSEE COG 2024) ------------------------------------

LISTED = [f"{n:02d}" for n in range(1, 96) if n != 20] + ["2A", "2B"] + [
    str(n) for n in range(971, 977)]
SOME = {"01": "Auvergne-Rhône-Alpes", "13": "Provence-Alpes-Côte d'Azur", "29": "Bretagne",
        "2A": "Corse", "2B": "Corse", "44": "Pays de la Loire", "59": "Hauts-de-France",
        "67": "Grand Est", "75": "Île-de-France", "90": "Bourgogne-Franche-Comté",
        "95": "Île-de-France", "971": "Guadeloupe", "974": "La Réunion", "976": "Mayotte",
        "975": "Saint-Pierre-et-Miquelon"}


def territory(**fields: str) -> dict[str, str | None]:
    doc = ApplicationDocument.model_validate(application(territory=fields))
    return {"region": doc.territory.region, "department": doc.territory.department}


@pytest.mark.parametrize("department", LISTED)
def test_every_listed_department_derives_its_official_region(department: str) -> None:
    from rules.eligibility import DEPARTMENTS
    from rules.geography import REGIONS

    assert department in DEPARTMENTS
    region = territory(department=department)["region"]
    assert region in REGIONS
    assert region == SOME.get(department, region)
    # the official name given back is accepted as is, and a loose spelling of it too
    assert territory(department=department, region=region)["region"] == region
    loose = region.upper().replace("-", " ").replace("É", "E").replace("Î", "I")
    assert territory(department=department, region=loose)["region"] == region


def test_the_table_has_13_metropolitan_and_5_overseas_regions() -> None:
    from rules.geography import DEPARTMENTS_COG, REGIONS

    assert len(REGIONS) == 13 + 5 + 1  # and Saint-Pierre-et-Miquelon (975), a collectivity
    assert sorted(DEPARTMENTS_COG) == sorted(LISTED)


@pytest.mark.parametrize(
    ("given", "department", "official"),
    [("ile de france", "78", "Île-de-France"), ("ÎLE-DE-FRANCE", "75", "Île-de-France"),
     ("  Ile-de-France ", "93", "Île-de-France"), ("provence alpes cote d'azur", "13",
                                                     "Provence-Alpes-Côte d'Azur"),
     ("Provence-Alpes-Côte d’Azur", "06", "Provence-Alpes-Côte d'Azur"),
     ("reunion", "974", "La Réunion"), ("la réunion", "974", "La Réunion"),
     ("pays de la loire", "44", "Pays de la Loire"), ("auvergne rhone alpes", "69",
                                                      "Auvergne-Rhône-Alpes")],
)
def test_a_loosely_matched_region_is_stored_under_its_official_name(
        given: str, department: str, official: str) -> None:
    assert territory(department=department, region=given) == {"region": official,
                                                               "department": department}


@pytest.mark.parametrize(("given", "department"), [
    ("Bretagne", "13"), ("Île-de-France", "60"), ("Corse", "06"), ("Normandie", "2A"),
    ("Wallonie", "59"), ("Guadeloupe", "972"), ("Île de Fr", "75")])
def test_a_region_contradicting_the_department_is_refused_naming_both(
        given: str, department: str) -> None:
    from pydantic import ValidationError

    from rules.document import explain
    from rules.geography import DEPARTMENTS_COG

    with pytest.raises(ValidationError) as caught:
        territory(department=department, region=given)
    [error] = explain(caught.value)
    assert error["field"] == "territory.region"
    expected = DEPARTMENTS_COG[department]
    for part in (given, department, expected.name, expected.region):
        assert part in error["message"]


def test_off_the_list_department_keeps_the_region_and_fails_territoire() -> None:
    assert territory(department="99", region="Wallonie")["region"] == "Wallonie"
    assert territory(department="20", region="corse")["region"] == "Corse"
    assert territory(department="20")["region"] is None
    assert verdict("territoire", territory={"department": "20"})[0] is False
