"""One typed payload per email event, and its builder from the domain objects.

A service builds the payload (``payloads.TranchePaid.from_payment(app, …)``) and queues it with
``notifications.outbox.message``: a missing or ill-typed value fails there, before the commit,
instead of when the dispatcher renders the message. What is stored in the outbox row is the
payload's JSON form (``context()``), with the keys the templates use (the intake's two
emails per document skip the second validation: ``Built``, made from the validated document);
rows queued before these models existed have the same keys, so the dispatcher renders them
alike.

``PAYLOADS`` maps each event to its model; ``notifications/events.py`` holds a sample of each
(``odd17 outbox preview`` and the template tests render them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from models import Application, Reviewer
from models.ledger import Grant, NewGrant, Tranche
from models.review import Decision
from rules.document import ApplicationDocument
from rules.money import as_str

# Amounts travel as strings with two decimals ("120000.00"), as they always have in the outbox.
Amount = Annotated[Decimal, PlainSerializer(as_str, return_type=str, when_used="json")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class Payload(_Model):
    """The values one email's templates use (``fund_name`` is added at rendering)."""

    event: ClassVar[str]
    # fields that give access (a sign-in link): the dispatcher blanks them in the stored row
    # once the message is sent or failed, so that reading the database does not open sessions
    secrets: ClassVar[tuple[str, ...]] = ()

    def context(self) -> dict[str, Any]:
        """The JSON stored in the outbox row."""
        return self.model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class Built:
    """A payload's stored form made straight from values a model has already validated (the
    intake's two emails per document, from its prepared values): what the model's
    ``context()`` gives, without validating the same values a second time (~4 µs an email,
    ~8 µs a document). Made only by the ``built`` methods below; ``tests/test_payloads.py``
    checks that each equals its model's form and that the model accepts it."""

    event: str
    values: dict[str, Any]

    def context(self) -> dict[str, Any]:
        return self.values


class Applicant(Payload):
    """The fields every email to an applicant starts with."""

    reference: str = Field(min_length=1)
    title: str
    lead_name: str
    contact_name: str | None = None

    @staticmethod
    def of(app: Application) -> dict[str, Any]:
        return Applicant.of_document(app.reference, app.document) | {"title": app.title}

    @staticmethod
    def of_document(reference: str, document: Mapping[str, Any]) -> dict[str, Any]:
        lead = document["lead"]
        return Applicant.fields(reference, document["title"], lead["name"],
                                lead.get("contact_name"))

    @staticmethod
    def fields(reference: str, title: str, lead_name: str,
               contact_name: str | None) -> dict[str, Any]:
        """These fields as an email's context holds them (the one place that spells them)."""
        return {"reference": reference, "title": title, "lead_name": lead_name,
                "contact_name": contact_name}


class ApplicationReceived(Applicant):
    event = "application_received"
    submitted_at: dt.date
    call: str

    @classmethod
    def from_submission(cls, reference: str, document: ApplicationDocument, *, call: str,
                        at: dt.datetime) -> ApplicationReceived:
        return cls(reference=reference, title=document.title, lead_name=document.lead.name,
                   contact_name=document.lead.contact_name, submitted_at=at.date(), call=call)

    @classmethod
    def built(cls, reference: str, title: str, lead_name: str, contact_name: str | None, *,
              call: str, at: dt.datetime) -> Built:
        """``from_submission(…).context()``, from a validated document's values (intake's
        prepared documents)."""
        if not reference:
            raise ValueError("application_received: a reference is required")
        return Built(cls.event, {**Applicant.fields(reference, title, lead_name, contact_name),
                                 "submitted_at": at.date().isoformat(), "call": call})


class Reason(_Model):
    rule: str
    reason: str


class _Evaluated(Applicant):
    reasons: list[Reason]
    needs_reasons: ClassVar[bool] = False  # built(): the model's min_length, checked alike

    @classmethod
    def from_evaluation(cls, reference: str, document: Mapping[str, Any],
                        failing: Iterable[tuple[str, str]]) -> _Evaluated:
        """``failing``: (rule, reason) of the rules not passed. The reasons are given as dicts:
        validated in the payload's one pass rather than one model at a time (intake builds one
        payload per application)."""
        return cls.model_validate({**cls.of_document(reference, document), "reasons": [
            {"rule": rule, "reason": reason} for rule, reason in failing]})

    @classmethod
    def built(cls, applicant: Mapping[str, Any], failing: Iterable[tuple[str, str]]) -> Built:
        """``from_evaluation(…).context()``, from ``applicant`` (what
        :meth:`Applicant.of_document` gives) and the reasons of a rule set (strings)."""
        reasons = [{"rule": rule, "reason": reason} for rule, reason in failing]
        if not applicant.get("reference") or (cls.needs_reasons and not reasons):
            raise ValueError(f"{cls.event}: a reference and the failing rules are required")
        return Built(cls.event, {**applicant, "reasons": reasons})


class ApplicationEligible(_Evaluated):
    event = "application_eligible"
    reasons: list[Reason] = Field(default_factory=list)  # none: every rule passed


class ApplicationIneligible(_Evaluated):
    event = "application_ineligible"
    reasons: list[Reason] = Field(min_length=1)
    needs_reasons = True


class ReviewAssigned(Payload):
    event = "review_assigned"
    reference: str = Field(min_length=1)
    title: str
    reviewer_name: str
    reviewer_email: str
    region: str
    requested_amount: Amount

    @classmethod
    def from_assignment(cls, app: Application, reviewer: Reviewer) -> ReviewAssigned:
        return cls(reference=app.reference, title=app.title, reviewer_name=reviewer.name,
                   reviewer_email=reviewer.email, region=app.region,
                   requested_amount=app.requested_amount)


class TrancheDue(_Model):
    number: int
    label: str
    amount: Amount
    due_on: dt.date


class DecisionApproved(Applicant):
    event = "decision_approved"
    amount: Amount
    tranches: list[TrancheDue] = Field(min_length=1)

    @classmethod
    def from_grant(cls, app: Application, grant: Grant | NewGrant) -> DecisionApproved:
        return cls(**cls.of(app), amount=grant.awarded, tranches=[
            TrancheDue(number=t.number, label=t.label, amount=t.amount, due_on=t.due_on)
            for t in grant.tranches])


class DecisionRejected(Applicant):
    event = "decision_rejected"
    motif: str = Field(min_length=1)

    @classmethod
    def from_decision(cls, app: Application, decision: Decision) -> DecisionRejected:
        # a refusal without its motif (None) fails validation here, before the commit
        return cls.model_validate({**cls.of(app), "motif": decision.motif})


class TranchePaid(Applicant):
    event = "tranche_paid"
    tranche: int
    label: str
    amount: Amount
    paid_on: dt.date
    payment_reference: str
    remaining: Amount

    @classmethod
    def from_payment(cls, app: Application, grant: Grant, tranche: Tranche, *, amount: Decimal,
                     paid_on: dt.date, payment_reference: str) -> TranchePaid:
        return cls(**cls.of(app), tranche=tranche.number, label=tranche.label, amount=amount,
                   paid_on=paid_on, payment_reference=payment_reference,
                   remaining=grant.outstanding)


class EnvelopeAlert(Payload):
    event = "envelope_alert"
    envelope: Amount
    committed: Amount
    disbursed: Amount
    available: Amount
    threshold: str  # "10 %"
    at: dt.date

    @classmethod
    def from_balances(cls, *, envelope: Decimal, committed: Decimal, disbursed: Decimal,
                      threshold: Decimal, at: dt.datetime) -> EnvelopeAlert:
        """``threshold``: the alert threshold as a fraction of the envelope (0.10)."""
        return cls(envelope=envelope, committed=committed, disbursed=disbursed,
                   available=envelope - committed - disbursed,
                   threshold=f"{threshold * 100:.0f} %", at=at.date())


class InvitationCoapplicant(Payload):
    """The lead of a draft invites a partner of the alliance to edit it with them."""

    event = "invitation_coapplicant"
    inviter: str
    invitee: str
    title: str
    call: str
    link: str


class SignInLink(Payload):
    """A single-use sign-in link to the web portal (``odd17/services/signin.py``)."""

    event = "connexion"
    secrets = ("link",)
    link: str
    minutes: int = Field(gt=0)
    email: str


PAYLOADS: dict[str, type[Payload]] = {model.event: model for model in (
    ApplicationReceived, ApplicationIneligible, ApplicationEligible, ReviewAssigned,
    DecisionApproved, DecisionRejected, TranchePaid, EnvelopeAlert, InvitationCoapplicant,
    SignInLink)}
SCRUBBED = "(retiré après l'envoi)"


def scrubbed(event: str, context: dict[str, Any]) -> dict[str, Any] | None:
    """The stored context with its secret fields blanked; None for an event without any."""
    model = PAYLOADS.get(event)
    if model is None or not model.secrets:
        return None
    return context | {name: SCRUBBED for name in model.secrets if name in context}
