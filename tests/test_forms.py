"""The application form's fields to the document and back (issue 13)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from odd17.services import forms
from rules.money import MAX_AMOUNT, parse_amount
from tests.factories import application

amounts = st.decimals(min_value=Decimal("0.01"), max_value=MAX_AMOUNT, places=2,
                      allow_nan=False, allow_infinity=False)


@given(amounts)
def test_amounts_round_trip_the_french_way(amount: Decimal) -> None:
    shown = forms.format_amount(amount)
    assert "." not in shown and "," in shown
    assert parse_amount(shown) == amount
    assert parse_amount(shown + " €") == amount
    assert parse_amount(shown.replace("\u202f", " ")) == amount


@given(amounts, amounts, st.lists(amounts, max_size=4))
def test_a_form_round_trips_its_amounts(requested: Decimal, total: Decimal,
                                        cofunding: list[Decimal]) -> None:
    document = application(
        requested_amount=str(requested), total_budget=str(total),
        cofunding=[{"funder": f"F{i}", "kind": "etat", "amount": str(a)}
                   for i, a in enumerate(cofunding)])
    document.pop("documents")
    result = forms.parse_form(forms.document_to_form(document))
    assert result.errors == {}
    assert result.document == _canonical(document)


def _canonical(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the form gives it back: amounts with two decimals, no empty lists."""
    out = {k: v for k, v in document.items() if v != []}
    for name in forms.AMOUNT_FIELDS:
        out[name] = str(Decimal(out[name]).quantize(Decimal("0.01")))
    for row in out.get("cofunding", []):
        row["amount"] = str(Decimal(row["amount"]).quantize(Decimal("0.01")))
    return out


def valid_form() -> dict[str, str | list[str]]:
    document = application()
    document.pop("documents")
    return forms.document_to_form(document)


def test_a_complete_form_is_valid_and_the_french_amount_is_read() -> None:
    data = valid_form()
    assert data["requested_amount"] == "120\u202f000,00"
    data["requested_amount"] = "70 000,50 €"
    result, errors = forms.validate_form(data)
    assert errors == {}
    assert result.document["requested_amount"] == "70000.50"
    assert result.document["objectives"] == ["experimentation", "dialogue"]


def test_errors_come_back_on_the_form_fields_in_french() -> None:
    data = valid_form()
    data.update({"requested_amount": "1.234,5", "lead.email": "pas-une-adresse",
                 "partners[0].name": "", "partners[0].kind": "", "partners[0].siret": "",
                 "partners[4].name": "Sans type", "cofunding[3].funder": "Région",
                 "cofunding[3].kind": "collectivite", "cofunding[3].amount": "-5",
                 "duration_months": "deux ans", "objectives": ["dialogue", "autre"],
                 "csrf_token": "ignored", "lead.__class__": "ignored"})
    result, errors = forms.validate_form(data)
    # partners[0] left blank is dropped: partners[1] and [4] become the document's [0] and [1]
    assert [p.get("name") for p in result.document["partners"]] == [
        "Communauté urbaine GPS&O", "Sans type"]
    assert errors["requested_amount"] == [
        "montant invalide « 1.234,5 » : attendu des euros avec au plus deux décimales, "
        "par ex. 70 000,50 ou 70000.50"]
    assert errors["lead.email"] == ["adresse e-mail invalide"]
    assert errors["partners[4].kind"] == ["champ obligatoire manquant"]
    assert errors["cofunding[3].amount"][0].startswith("montant invalide « -5 »")
    assert errors["duration_months"][0].startswith("nombre de mois invalide")
    assert errors["objectives[1]"][0].startswith("valeur non autorisée ; valeurs possibles")
    assert "csrf_token" not in result.document and "__class__" not in result.document["lead"]
    assert len(errors) == 6


def test_a_partial_form_is_a_partial_document() -> None:
    result = forms.parse_form([("title", "  Mon projet "), ("territory.department", "2A"),
                               ("objectives", "dialogue"), ("objectives", "dialogue"),
                               ("partners[2].name", "<b>X</b>"), ("summary", "")])
    assert result.document == {"title": "Mon projet", "territory": {"department": "2A"},
                               "objectives": ["dialogue"], "partners": [{"name": "<b>X</b>"}]}
    assert result.form_name("partners[0].kind") == "partners[2].kind"
    assert result.form_name("title") == "title"


def test_departments_are_the_official_list() -> None:
    choices = dict(forms.department_choices())
    assert choices["78"] == "78 – Yvelines" and "2A" in choices and "20" not in choices
    assert len(choices) == 102 and "975" in choices  # 01-95 without 20, 2A, 2B, 971-976
