"""The intake's emails built without a second validation (``payloads.*.built``) equal, value
for value and in the same key order (the outbox row's JSON), what their typed models give,
and the models accept them: hostile text included."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifications import payloads
from notifications.outbox import message
from rules.document import ApplicationDocument
from tests.factories import application

NOW = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)
# printable text, markup and quotes included; the document model refuses control characters
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60)\
    .filter(lambda s: s.strip() != "")
REASONS = st.lists(st.tuples(st.sampled_from(["objectif", "pieces", "montant"]), TEXT),
                   max_size=4)


def document(title: str, name: str, contact: str | None) -> ApplicationDocument:
    lead = application()["lead"] | {"name": name}
    if contact is None:
        lead.pop("contact_name", None)
    else:
        lead["contact_name"] = contact
    return ApplicationDocument.model_validate(application(title=f"Projet {title}", lead=lead))


def received(reference: str, doc: ApplicationDocument) -> payloads.Built:
    return payloads.ApplicationReceived.built(reference, doc.title, doc.lead.name,
                                              doc.lead.contact_name, call="aap-2026", at=NOW)


def same(built: payloads.Built, model: payloads.Payload) -> None:
    assert built.event == model.event
    assert orjson.dumps(built.context()) == orjson.dumps(model.context())  # order too
    assert type(model).model_validate(built.context()).context() == built.context()


@settings(max_examples=60, deadline=None)
@given(title=TEXT, name=TEXT, contact=st.none() | TEXT, reasons=REASONS)
def test_built_payloads_equal_their_models(title: str, name: str, contact: str | None,
                                           reasons: list[tuple[str, str]]) -> None:
    doc = document(title, name, contact)
    stored: dict[str, Any] = doc.model_dump(mode="json", exclude_none=True)
    applicant = payloads.Applicant.of_document("ODD17-2026-0001", stored)
    same(received("ODD17-2026-0001", doc),
         payloads.ApplicationReceived.from_submission("ODD17-2026-0001", doc,
                                                      call="aap-2026", at=NOW))
    same(payloads.ApplicationEligible.built(applicant, []),
         payloads.ApplicationEligible.from_evaluation("ODD17-2026-0001", stored, []))
    if reasons:
        same(payloads.ApplicationIneligible.built(applicant, reasons),
             payloads.ApplicationIneligible.from_evaluation("ODD17-2026-0001", stored, reasons))


def test_built_payloads_refuse_what_their_models_refuse() -> None:
    doc = document("Titre", "Porteur", None)
    stored = doc.model_dump(mode="json", exclude_none=True)
    applicant = payloads.Applicant.of_document("ODD17-2026-0001", stored)
    with pytest.raises(ValueError, match="application_ineligible"):
        payloads.ApplicationIneligible.built(applicant, [])
    with pytest.raises(ValueError, match="application_received"):
        received("", doc)
    with pytest.raises(ValueError):
        payloads.ApplicationIneligible.from_evaluation("ODD17-2026-0001", stored, [])


def test_an_outbox_row_takes_a_built_payload_but_no_plain_dict() -> None:
    doc = document("Titre", "Porteur", "Claire")
    built = received("ODD17-2026-0001", doc)
    row = message(built, "a@example.org", key="k", now=NOW, reference="ODD17-2026-0001")
    assert row["event"] == "application_received" and row["context"] == built.context()
    with pytest.raises(TypeError):
        message(built.context(), "a@example.org", key="k", now=NOW)  # type: ignore[arg-type]
