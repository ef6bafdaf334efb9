"""Valid application documents to derive test cases from."""

from __future__ import annotations

import copy
import json
from typing import Any

from stdnum import luhn

VALID: dict[str, Any] = {
    "title": "Alliance pour l'emploi des jeunes du Mantois",
    "summary": "Une association, une entreprise et une collectivité co-construisent un parcours.",
    "lead": {
        "name": "Association Passerelles Mantoises",
        "kind": "association",
        "siret": "52601815590833",
        "rna": "W783001234",
        "email": "direction@passerelles.example.org",
    },
    "partners": [
        {"name": "Logistique Seine Aval SAS", "kind": "entreprise", "siret": "01661318460910"},
        {"name": "Communauté urbaine GPS&O", "kind": "collectivite", "siret": "39099603108249"},
    ],
    "objectives": ["experimentation", "dialogue"],
    "innovations": ["co_construction"],
    "territory": {"region": "Île-de-France", "department": "78", "commune_insee": "78361"},
    "requested_amount": "120000.00",
    "total_budget": "310000.00",
    "cofunding": [{"funder": "GPS&O", "kind": "collectivite", "amount": "90000.00"}],
    "start_date": "2027-03-01",
    "duration_months": 24,
    "documents": ["statuts", "budget_previsionnel", "rib"],
}


def make_siret(n: int) -> str:
    """A valid SIRET (Luhn on SIREN and on SIRET) derived from ``n``."""
    siren = f"{n % 10**8:08d}"
    siren += luhn.calc_check_digit(siren)
    base = siren + f"{(n // 10**8) % 10**4:04d}"
    return base + luhn.calc_check_digit(base)


def application(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is DELETE:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def numbered(i: int, **changes: Any) -> dict[str, Any]:
    """A distinct valid application: its own lead SIRET and title."""
    doc = application(**changes)
    if "siret" in doc["lead"]:  # a lead given without SIRET keeps none
        doc["lead"] = {**doc["lead"], "siret": make_siret(1000 + i)}
    doc.setdefault("title", VALID["title"])
    doc["title"] = f"{doc['title']} n°{i}"
    return doc


def jsonl(docs: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)


DELETE = object()


def runner(engine, *, now: Any = None, actor: str = "t"):  # type: ignore[no-untyped-def]
    """A Runner for the use cases (odd17.uow), with the fund's configuration and a clock fixed
    at ``now`` (default: the real time)."""
    from odd17.uow import Context, Runner

    context = Context.from_settings(actor) if now is None else \
        Context.from_settings(actor, clock=lambda: now)
    return Runner(engine, context)


def evaluate_all(engine, policy: Any = None, *, now: Any = None, actor: str = "t",
                 references: list[str] | None = None, reevaluate: bool = False
                 ) -> list[Any]:  # type: ignore[no-untyped-def]
    """Eligibility on the pending applications (or those named), in one transaction."""
    from odd17.services import eligibility
    from rules.eligibility import EligibilityPolicy

    with runner(engine, now=now, actor=actor).uow() as uow:
        ids = eligibility.candidate_ids(uow, references=references, reevaluate=reevaluate)
        return eligibility.evaluate_batch(uow, ids, policy or EligibilityPolicy(),
                                          reevaluate=reevaluate)


def eligible(engine, count: int, *, requested: str = "100000.00", start: int = 0,
             **changes: Any) -> list[str]:  # type: ignore[no-untyped-def]
    """``count`` applications taken through intake and eligibility: ``eligible``."""
    import datetime as dt

    from odd17.services import intake

    now = dt.datetime.now(dt.UTC)
    docs = [numbered(start + i, requested_amount=requested, total_budget="250000.00", **changes)
            for i in range(count)]
    raws = [intake.RawDocument(f"c{i}", d) for i, d in enumerate(docs)]
    refs = [o.reference for o in intake.submit_documents(runner(engine, now=now), raws)]
    verdicts = evaluate_all(engine, now=now, references=[r for r in refs if r],
                            reevaluate=True)
    assert all(v.status == "eligible" for v in verdicts), verdicts
    return [r for r in refs if r]


def in_committee(engine, count: int, *, requested: str = "100000.00", start: int = 0,
                 **changes: Any) -> list[str]:  # type: ignore[no-untyped-def]
    """``count`` applications taken through intake and eligibility to ``committee``."""
    import datetime as dt

    from sqlalchemy import select

    from models import Application, Status
    from odd17.db import unit_of_work

    now = dt.datetime.now(dt.UTC)
    refs = eligible(engine, count, requested=requested, start=start, **changes)
    with unit_of_work(engine) as session:
        for app in session.scalars(select(Application).where(Application.reference.in_(refs))):
            app.transition_to(Status.in_review, actor="t", at=now)
            app.transition_to(Status.committee, actor="t", at=now)
    return [r for r in refs if r]


def dies_on_call(n: int, real: Any, message: str) -> Any:
    """``real``, except that call number ``n`` raises SystemExit(message): a process killed in
    the middle of a flow run."""
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise SystemExit(message)
        return real(*args, **kwargs)

    return wrapper


def uow_on(session: Any, *, now: Any = None, actor: str = "t") -> Any:
    """A unit of work around a session the test already holds (its transaction stays the
    test's), with the default fund configuration: for use cases that take ``uow``."""
    import datetime as dt

    from odd17.settings import load_fund_config
    from odd17.uow import Context, UnitOfWork

    now = now or dt.datetime.now(dt.UTC)
    context = Context(actor=actor, config=load_fund_config(None), clock=lambda: now)
    return UnitOfWork(session=session, context=context, now=now)


def as_uow(session, *, now, actor: str = "t"):  # type: ignore[no-untyped-def]
    """A unit of work around a test's open session: the given clock and actor, the fund's
    configuration and settings (ledger use cases take a UnitOfWork, odd17/uow.py)."""
    from odd17.uow import Context, UnitOfWork

    return UnitOfWork(session, Context.from_settings(actor, clock=lambda: now), now)


def runner_for(engine, *, now, actor: str = "t"):  # type: ignore[no-untyped-def]
    """A Runner (one unit of work per batch) with the given clock and actor."""
    from odd17.uow import Context, Runner

    return Runner(engine, Context.from_settings(actor, clock=lambda: now))
