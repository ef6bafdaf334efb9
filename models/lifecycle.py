"""The application lifecycle (README, « Lifecycle ») as one explicit transition table.

Every status change in odd17 goes through ``check_transition``; nothing else decides what may
follow what. The history row that records a change is made by one function,
``models.application.history_row`` (which calls ``check_transition``), for every path: one
application moved by ``Application.transition_to``, or thousands at once by intake and
eligibility, which insert those rows with ``write_history``."""

from __future__ import annotations

from enum import StrEnum

from models.errors import IllegalTransition
from rules.labels import status_label


class Status(StrEnum):
    submitted = "submitted"
    eligible = "eligible"
    ineligible = "ineligible"
    in_review = "in_review"
    committee = "committee"
    approved = "approved"
    rejected = "rejected"
    active = "active"
    closed = "closed"
    withdrawn = "withdrawn"
    cancelled = "cancelled"


S = Status

# (from, to) -> what the move means. The two re-evaluation moves between eligible and
# ineligible are not drawn in the README's lifecycle diagram: they exist so that re-running
# eligibility after a policy change can correct an earlier verdict, and only before review
# starts.
TRANSITIONS: dict[tuple[Status, Status], str] = {
    (S.submitted, S.eligible): "toutes les règles d'éligibilité sont satisfaites",
    (S.submitted, S.ineligible): "au moins une règle d'éligibilité n'est pas satisfaite",
    (S.eligible, S.ineligible): "réévaluation : une règle n'est plus satisfaite",
    (S.ineligible, S.eligible): "réévaluation : toutes les règles sont désormais satisfaites",
    (S.eligible, S.in_review): "évaluateurs désignés",
    (S.in_review, S.committee): "toutes les évaluations sont rendues",
    (S.committee, S.approved): "décision du comité : accord",
    (S.committee, S.rejected): "décision du comité : refus",
    (S.approved, S.active): "convention signée, premier versement",
    (S.active, S.closed): "projet clos",
    (S.eligible, S.withdrawn): "retrait du porteur",
    (S.in_review, S.withdrawn): "retrait du porteur",
    (S.committee, S.withdrawn): "retrait du porteur",
    (S.approved, S.cancelled): "subvention annulée",
    (S.active, S.cancelled): "subvention annulée",
}

INITIAL = Status.submitted
FINAL: frozenset[Status] = frozenset(
    s for s in Status if not any(src == s for src, _ in TRANSITIONS)
)


def allowed_from(status: Status) -> list[Status]:
    return [dst for src, dst in TRANSITIONS if src == status]


def check_transition(current: Status | str, target: Status | str, reference: str = "") -> str:
    """Return the default meaning of the move, or raise ``IllegalTransition`` naming what is
    allowed from the current status."""
    current, target = Status(current), Status(target)
    try:
        return TRANSITIONS[(current, target)]
    except KeyError:
        allowed = ", ".join(f"« {status_label(s)} »" for s in allowed_from(current)) \
            or "aucune (statut final)"
        who = f"{reference} : " if reference else ""
        raise IllegalTransition(
            f"{who}transition interdite de « {status_label(current)} » vers "
            f"« {status_label(target)} » (possibles depuis « {status_label(current)} » : "
            f"{allowed})"
        ) from None


DECIDED: frozenset[Status] = frozenset(
    {S.approved, S.rejected, S.active, S.closed, S.cancelled, S.withdrawn})


def lost_race(reference: str, expected: Status | str, found: Status | str | None) -> str:
    """The French message of a status change lost to another process: « déjà décidé » when
    the committee's decision was taken meanwhile, « statut changé entre-temps » otherwise."""
    now = f"« {found} »" if found else "introuvable"
    if Status(expected) == S.committee and found in DECIDED:
        return (f"déjà décidé : {reference} est passé au statut {now} entre-temps ; "
                "rien n'a été modifié")
    return (f"statut changé entre-temps : {reference} n'est plus « {expected} » mais {now} ; "
            "rien n'a été modifié")
