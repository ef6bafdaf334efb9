"""Every email template against its typed payload (notifications/payloads.py), generated from
the registry: a new event without templates or sample, a template without payload, or a
template using a field its payload does not have fails here, before any message is queued."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from jinja2 import StrictUndefined, meta
from pydantic import ValidationError

from notifications import payloads
from notifications.events import EVENTS, EXAMPLES, SAMPLES
from notifications.outbox import message
from notifications.payloads import PAYLOADS, Payload
from notifications.render import environment, render

PARTS = ("subject", "txt", "html")
TEMPLATES = resources.files("notifications") / "templates"
CASES = [(event, part) for event in PAYLOADS for part in PARTS]


def template_names() -> list[str]:
    return sorted(p.name for p in TEMPLATES.iterdir()
                  if p.name.endswith(".j2") and not p.name.startswith("_"))


def test_each_payload_has_its_three_templates_and_a_sample() -> None:
    names = set(template_names())
    missing = [f"{e}.{p}.j2" for e, p in CASES if f"{e}.{p}.j2" not in names]
    assert not missing, f"payloads without template: {missing}"
    assert set(SAMPLES) == set(PAYLOADS) == set(EVENTS)
    for event, sample in SAMPLES.items():
        assert type(sample) is PAYLOADS[event]


def test_each_template_has_a_payload() -> None:
    orphans = [n for n in template_names()
               if n.rsplit(".", 2)[0] not in PAYLOADS or n.rsplit(".", 2)[1] not in PARTS]
    assert not orphans, f"templates without payload: {orphans}"


def variables(name: str, html: bool) -> set[str]:
    """The top-level names a template (and the layout it extends) reads."""
    env = environment(None, html)
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    found = meta.find_undeclared_variables(env.parse(source))
    for parent in meta.find_referenced_templates(env.parse(source)):
        if parent:
            found |= variables(parent, html)
    return found


@pytest.mark.parametrize(("event", "part"), CASES)
def test_a_template_reads_only_fields_of_its_payload(event: str, part: str) -> None:
    fields = set(PAYLOADS[event].model_fields) | {"fund_name", "portal_url"}
    unknown = variables(f"{event}.{part}.j2", part == "html") - fields
    assert not unknown, f"{event}.{part}.j2 uses {sorted(unknown)}, not in {PAYLOADS[event]}"


def bare(sample: Payload) -> Payload:
    """The sample with every optional field left out (``contact_name`` None...)."""
    optional = {name: None for name, field in type(sample).model_fields.items()
                if not field.is_required() and field.default is None}
    return type(sample).model_validate(sample.context() | optional)


@pytest.mark.parametrize("event", list(PAYLOADS))
@pytest.mark.parametrize("variant", ["sample", "bare"])
def test_every_template_renders_its_sample_strictly(event: str, variant: str) -> None:
    assert environment(None, False).undefined is StrictUndefined
    assert environment(None, True).undefined is StrictUndefined
    sample = SAMPLES[event] if variant == "sample" else bare(SAMPLES[event])
    # a list left empty would hide the fields its items are read for
    for name, value in sample:
        assert value != [] or event == "application_eligible", f"{event}.{name} is empty"
    rendered = render(event, sample.context(), fund_name="Fonds ODD 17")
    assert rendered.subject and rendered.text.strip() and "<p>" in rendered.html
    assert "Fonds ODD 17" in rendered.text + rendered.html


# Contexts as the services stored them before the payload models (outbox rows already in
# databases): each must still validate, and its stored form keep the same keys and values.
LEGACY: dict[str, dict[str, Any]] = {
    "application_received": {
        "reference": "ODD17-2026-0001", "title": "T", "lead_name": "L", "contact_name": None,
        "submitted_at": "2026-11-22", "call": "aap-2026"},
    "application_eligible": {"reference": "ODD17-2026-0001", "title": "T", "lead_name": "L",
                             "contact_name": "C", "reasons": []},
    "application_ineligible": {"reference": "ODD17-2026-0001", "title": "T", "lead_name": "L",
                               "contact_name": "C",
                               "reasons": [{"rule": "pieces", "reason": "Pièces manquantes."}]},
    "review_assigned": {"reference": "ODD17-2026-0001", "title": "T", "reviewer_name": "A",
                        "reviewer_email": "a@example.org", "region": "Bretagne",
                        "requested_amount": "120000.00"},
    "decision_approved": {"reference": "ODD17-2026-0001", "title": "T", "lead_name": "L",
                          "contact_name": "C", "amount": "120000.00", "tranches": [
                              {"number": 1, "label": "signature", "amount": "120000.00",
                               "due_on": "2027-03-01"}]},
    "decision_rejected": {"reference": "ODD17-2026-0001", "title": "T", "lead_name": "L",
                          "contact_name": None, "motif": "Budget non étayé."},
    "tranche_paid": {"reference": "ODD17-2026-0001", "title": "T", "lead_name": "L",
                     "contact_name": "C", "tranche": 1, "label": "signature",
                     "amount": "60000.00", "paid_on": "2027-03-05",
                     "payment_reference": "VIR-1", "remaining": "60000.00"},
    "envelope_alert": {"envelope": "2000000.00", "committed": "1450000.00",
                       "disbursed": "380000.00", "available": "170000.00",
                       "threshold": "10 %", "at": "2027-06-30"},
    "invitation_coapplicant": {"inviter": "a@example.org", "invitee": "b@example.org",
                               "title": "T", "call": "aap-2026",
                               "link": "http://127.0.0.1:8017/brouillons/1"},
    "connexion": {"link": "http://127.0.0.1:8017/connexion/x", "minutes": 15,
                  "email": "a@example.org"},
}


@pytest.mark.parametrize("event", list(PAYLOADS))
def test_rows_stored_before_the_models_keep_their_shape(event: str) -> None:
    assert PAYLOADS[event].model_validate(LEGACY[event]).context() == LEGACY[event]
    assert set(EXAMPLES[event]) == set(LEGACY[event])


def test_an_invalid_payload_fails_when_built() -> None:
    with pytest.raises(ValidationError, match="motif"):
        payloads.DecisionRejected.model_validate({"reference": "R", "title": "T",
                                                  "lead_name": "L", "motif": None})
    with pytest.raises(ValidationError, match="reasons"):  # ineligible without a reason
        payloads.ApplicationIneligible(reference="R", title="T", lead_name="L", reasons=[])
    with pytest.raises(ValidationError, match="amount"):
        payloads.TranchePaid(**LEGACY["tranche_paid"] | {"amount": "beaucoup"})
    with pytest.raises(ValidationError, match="extra"):  # a key no template knows
        payloads.EnvelopeAlert.model_validate(LEGACY["envelope_alert"] | {"note": "x"})
    with pytest.raises(TypeError, match="payloads"):  # an untyped dict is not queued
        message(LEGACY["envelope_alert"], "f@example.org", key="k",  # type: ignore[arg-type]
                now=dt.datetime.now(dt.UTC))


def test_amounts_are_stored_with_two_decimals() -> None:
    alert = payloads.EnvelopeAlert.from_balances(
        envelope=Decimal("1000"), committed=Decimal("850.5"), disbursed=Decimal("0"),
        threshold=Decimal("0.2"), at=dt.datetime(2027, 1, 2, 23, 0, tzinfo=dt.UTC))
    assert alert.context() == {"envelope": "1000.00", "committed": "850.50",
                               "disbursed": "0.00", "available": "149.50",
                               "threshold": "20 %", "at": "2027-01-02"}


APPLICANT_EVENTS = ["application_received", "application_eligible", "application_ineligible",
                    "decision_approved", "decision_rejected", "tranche_paid"]


@pytest.mark.parametrize("event", APPLICANT_EVENTS)
def test_emails_to_applicants_link_to_their_application_page(event: str) -> None:
    """Issue 13: the emails link to the application's page on the portal (ODD17_PUBLIC_URL),
    and say nothing of a portal when none is configured."""
    sample = SAMPLES[event].context()
    page = f"https://portail.example.org/dossiers/{sample['reference']}"
    linked = render(event, sample, fund_name="F", portal_url="https://portail.example.org")
    assert page in linked.text
    assert f'href="{page}"' in linked.html
    plain = render(event, sample, fund_name="F")
    assert "portail" not in plain.text and "/dossiers/" not in plain.html
