"""French labels of the identifiers users see (objectives, innovations, statuses).

One place, so that emails, the terminal, the HTML report and the web say the same words. The
fund configuration keeps the long descriptions; these are the short names shown in lists."""

from __future__ import annotations

OBJECTIVE_LABELS: dict[str, str] = {
    "dialogue": "Dialogue",
    "ingenierie": "Ingénierie",
    "experimentation": "Expérimentation",
}

INNOVATION_LABELS: dict[str, str] = {
    "solutions": "Solutions",
    "co_construction": "Co-construction",
    "modele_hybride": "Modèle hybride",
}

STATUS_LABELS: dict[str, str] = {
    "submitted": "déposé",
    "eligible": "éligible",
    "ineligible": "inéligible",
    "in_review": "en instruction",
    "committee": "en comité",
    "approved": "approuvé",
    "active": "en cours",
    "closed": "clôturé",
    "rejected": "rejeté",
    "withdrawn": "retiré",
    "cancelled": "annulé",
    "refused": "refusé",
}

# A committee decision's outcome (models.DecisionOutcome), as the pages tell it.
DECISION_LABELS: dict[str, str] = {
    "approve": "Accordé",
    "reject": "Refusé",
    "defer": "Reporté",
}

MESSAGE_STATUS_LABELS: dict[str, str] = {
    "pending": "en attente",
    "sending": "en cours d'envoi",
    "sent": "envoyé",
    "failed": "en échec",
}


def objective_label(identifier: str | None) -> str:
    """The French label of an objective; an unknown identifier is shown as it is."""
    if not identifier:
        return "—"
    return OBJECTIVE_LABELS.get(identifier, identifier)


def innovation_label(identifier: str) -> str:
    return INNOVATION_LABELS.get(identifier, identifier)


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def decision_label(outcome: str) -> str:
    return DECISION_LABELS.get(outcome, outcome)


def message_status_label(status: str) -> str:
    return MESSAGE_STATUS_LABELS.get(status, status)

# The kinds of ledger entries (models.ledger.EntryKind), as the finance pages name them.
ENTRY_KIND_LABELS: dict[str, str] = {
    "commit": "engagement",
    "disburse": "versement",
    "release": "libération",
    "topup": "abondement",
    "correction": "correction d'abondement",
}


def entry_kind_label(kind: str) -> str:
    return ENTRY_KIND_LABELS.get(kind, kind)
