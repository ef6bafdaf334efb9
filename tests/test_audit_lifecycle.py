"""`finance --check` also reads the lifecycle: a grant on an application that is not approved,
active, closed (or cancelled with its grant released), and a history leaving a status twice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine, insert, text

from models import Application, Status, StatusChange
from odd17.db import unit_of_work
from odd17.services import audit, ledger
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee, uow_on

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
T = Decimal("0.10")


def check(engine: Engine) -> list[str]:
    with unit_of_work(engine) as s:
        return audit.check(uow_on(s))


def test_lost_decision_race_is_flagged(engine: Engine) -> None:
    """What issue 10's race left: approved (grant committed), then overwritten as rejected."""
    a, b = in_committee(engine, 2, requested="10000.00")
    with unit_of_work(engine) as s:
        for ref in (a, b):
            ledger.approve(as_uow(s, now=NOW, actor="t"), ref, Decimal("10000.00"),
                           plan=DEFAULT_PLAN)
    with unit_of_work(engine) as s:
        ledger.end_grant(as_uow(s, now=NOW, actor="t"), b, cancel=True, reason="porteur dissous")
    assert check(engine) == []  # a cancelled application whose grant was released is fine
    with unit_of_work(engine) as s:
        s.execute(text("UPDATE applications SET status = 'rejected' WHERE reference = :r"),
                  {"r": a})
        app_id = s.execute(text("SELECT id FROM applications WHERE reference = :r"),
                           {"r": a}).scalar()
        s.execute(insert(StatusChange.__table__).values(
            application_id=app_id, from_status=Status.committee, to_status=Status.rejected,
            actor="t", reason="refus concurrent", at=NOW))
    breaches = check(engine)
    assert any(a in x and "subvention" in x and "rejected" in x for x in breaches), breaches
    assert any(a in x and "quitte 2 fois le statut « committee »" in x for x in breaches)
    assert not any(b in x for x in breaches)


def test_history_not_ending_on_the_status_is_flagged(engine: Engine) -> None:
    [a] = in_committee(engine, 1)
    with unit_of_work(engine) as s:
        s.execute(text("UPDATE applications SET status = 'in_review' WHERE reference = :r"),
                  {"r": a})
    assert check(engine) == [f"{a} : statut « in_review » mais l'historique finit sur "
                             "« committee »"]


def test_reevaluation_back_and_forth_is_not_a_breach(engine: Engine) -> None:
    [a] = in_committee(engine, 1)
    with unit_of_work(engine) as s:
        app = s.query(Application).filter_by(reference=a).one()
        rows = [(Status.eligible, Status.ineligible), (Status.ineligible, Status.eligible)] * 2
        for src, dst in rows:
            s.execute(insert(StatusChange.__table__).values(
                application_id=app.id, from_status=src, to_status=dst, actor="t",
                reason="réévaluation", at=NOW))
        # and one real repeat, which also keeps the history ending on the current status
        s.execute(insert(StatusChange.__table__).values(
            application_id=app.id, from_status=Status.in_review, to_status=Status.committee,
            actor="t", reason="x", at=NOW))
    assert check(engine) == [f"{a} : l'historique quitte 2 fois le statut « in_review »"]
