"""The committee's decision as one use case (CLI ``committee decide``, and the web's): record
it, apply it, and when applying is refused, say why on the decision."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine

from models import DomainError
from odd17.db import unit_of_work
from odd17.services import ledger, review
from rules.tranches import TranchePlan


def decide(engine: Engine, reference: str, outcome: str, *, present: list[str],
           amount: Decimal | None, motif: str, plan: TranchePlan, alert_threshold: Decimal,
           actor: str, now: dt.datetime) -> ledger.Result | None:
    """Record the decision in one transaction, apply it in a second: the decision stays
    recorded when the envelope refuses the approval, with the refusal noted on it (a third
    transaction, the compensation) and the DomainError raised for the caller to show. Two
    transactions so that a killed applier leaves a pending decision the review flow applies
    (flows/review.py), never a half-applied one."""
    with unit_of_work(engine) as session:
        decision_id = review.record_decision(session, reference, outcome, present=present,
                                             amount=amount, motif=motif, actor=actor,
                                             now=now).id
    try:
        with unit_of_work(engine) as session:
            return review.apply_decision(session, decision_id, plan=plan,
                                         alert_threshold=alert_threshold, actor=actor, now=now)
    except DomainError as exc:
        with unit_of_work(engine) as session:
            review.mark_failed(session, decision_id, str(exc))
        raise
