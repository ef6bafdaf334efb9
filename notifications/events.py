"""The events that send an email, and an example context for each (used by `odd17 outbox
preview` when no application is named, and by the tests)."""

from __future__ import annotations

from typing import Any

EVENTS = (
    "application_received", "application_ineligible", "application_eligible",
    "review_assigned", "decision_approved", "decision_rejected", "tranche_paid",
    "envelope_alert", "invitation_coapplicant", "connexion",
)

_APPLICANT = {"reference": "ODD17-2026-0007", "title": "Alliance pour l'emploi des jeunes",
              "lead_name": "Association Passerelles Mantoises", "contact_name": "Claire Martin"}

EXAMPLES: dict[str, dict[str, Any]] = {
    "application_received": {**_APPLICANT, "submitted_at": "2026-11-22", "call": "aap-2026"},
    "application_ineligible": {**_APPLICANT, "reasons": [
        {"rule": "montant", "reason": "Montant demandé (250 000,00 €) supérieur au plafond de "
                                      "200 000,00 €."},
        {"rule": "pieces", "reason": "Pièces obligatoires manquantes : rib."}]},
    "application_eligible": dict(_APPLICANT),
    "review_assigned": {"reference": "ODD17-2026-0007", "title": _APPLICANT["title"],
                        "reviewer_name": "Anne Dupuis", "reviewer_email": "anne@example.org",
                        "region": "Île-de-France", "requested_amount": "120000.00"},
    "decision_approved": {**_APPLICANT, "amount": "120000.00", "tranches": [
        {"number": 1, "label": "signature de la convention", "amount": "60000.00",
         "due_on": "2027-03-01"},
        {"number": 2, "label": "rapport intermédiaire", "amount": "36000.00",
         "due_on": "2028-03-01"},
        {"number": 3, "label": "rapport final", "amount": "24000.00",
         "due_on": "2029-03-01"}]},
    "decision_rejected": {**_APPLICANT, "motif": "Le budget prévisionnel n'est pas étayé."},
    "tranche_paid": {**_APPLICANT, "tranche": 1, "label": "signature de la convention",
                     "amount": "60000.00", "paid_on": "2027-03-05",
                     "payment_reference": "VIR-2027-0042", "remaining": "60000.00"},
    "envelope_alert": {"envelope": "2000000.00", "committed": "1450000.00",
                       "disbursed": "380000.00", "available": "170000.00", "threshold": "10 %",
                       "at": "2027-06-30"},
    "invitation_coapplicant": {"inviter": "direction@passerelles.example.org",
                               "invitee": "contact@seine-aval.example.org",
                               "title": _APPLICANT["title"], "call": "aap-2026",
                               "link": "http://127.0.0.1:8017/brouillons/12"},
    "connexion": {"link": "https://portail.fonds-odd17.example.org/connexion/exemple-de-jeton",
                  "minutes": 15, "email": "claire.martin@passerelles.example.org"},
}
