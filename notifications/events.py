"""The events that send an email (one per payload model of ``notifications/payloads.py``) and a
sample payload for each: ``odd17 outbox preview`` renders it when no application is named, and
the tests render every template with it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from notifications.payloads import (
    PAYLOADS,
    ApplicationEligible,
    ApplicationIneligible,
    ApplicationReceived,
    DecisionApproved,
    DecisionRejected,
    EnvelopeAlert,
    InvitationCoapplicant,
    Payload,
    Reason,
    ReviewAssigned,
    SignInLink,
    TrancheDue,
    TranchePaid,
)

EVENTS: tuple[str, ...] = tuple(PAYLOADS)

_APPLICANT: dict[str, Any] = {
    "reference": "ODD17-2026-0007", "title": "Alliance pour l'emploi des jeunes",
    "lead_name": "Association Passerelles Mantoises", "contact_name": "Claire Martin"}

_SAMPLES: tuple[Payload, ...] = (
    ApplicationReceived(**_APPLICANT, submitted_at=dt.date(2026, 11, 22), call="aap-2026"),
    ApplicationIneligible(**_APPLICANT, reasons=[
        Reason(rule="montant", reason="Montant demandé (250 000,00 €) supérieur au plafond de "
                                      "200 000,00 €."),
        Reason(rule="pieces", reason="Pièces obligatoires manquantes : rib.")]),
    ApplicationEligible(**_APPLICANT),
    ReviewAssigned(reference="ODD17-2026-0007", title=_APPLICANT["title"],
                   reviewer_name="Anne Dupuis", reviewer_email="anne@example.org",
                   region="Île-de-France", requested_amount=Decimal("120000.00")),
    DecisionApproved(**_APPLICANT, amount=Decimal("120000.00"), tranches=[
        TrancheDue(number=1, label="signature de la convention", amount=Decimal("60000.00"),
                   due_on=dt.date(2027, 3, 1)),
        TrancheDue(number=2, label="rapport intermédiaire", amount=Decimal("36000.00"),
                   due_on=dt.date(2028, 3, 1)),
        TrancheDue(number=3, label="rapport final", amount=Decimal("24000.00"),
                   due_on=dt.date(2029, 3, 1))]),
    DecisionRejected(**_APPLICANT, motif="Le budget prévisionnel n'est pas étayé."),
    TranchePaid(**_APPLICANT, tranche=1, label="signature de la convention",
                amount=Decimal("60000.00"), paid_on=dt.date(2027, 3, 5),
                payment_reference="VIR-2027-0042", remaining=Decimal("60000.00")),
    EnvelopeAlert(envelope=Decimal("2000000.00"), committed=Decimal("1450000.00"),
                  disbursed=Decimal("380000.00"), available=Decimal("170000.00"),
                  threshold="10 %", at=dt.date(2027, 6, 30)),
    InvitationCoapplicant(inviter="direction@passerelles.example.org",
                          invitee="contact@seine-aval.example.org", title=_APPLICANT["title"],
                          call="aap-2026", link="http://127.0.0.1:8017/brouillons/12"),
    SignInLink(link="https://portail.fonds-odd17.example.org/connexion/exemple-de-jeton",
               minutes=15, email="claire.martin@passerelles.example.org"),
)
SAMPLES: dict[str, Payload] = {sample.event: sample for sample in _SAMPLES}

# The samples' stored form (what an outbox row holds), by event.
EXAMPLES: dict[str, dict[str, Any]] = {event: s.context() for event, s in SAMPLES.items()}
