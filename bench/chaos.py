"""Chaos run: N processes doing random operations on one database, killed at random, then every
invariant checked.

    python bench/chaos.py                                   # SQLite scratch file, 60 s
    python bench/chaos.py postgresql://postgres@127.0.0.1:5432/postgres --seconds 120 --workers 6

With a PostgreSQL URL (an admin connection) a scratch database is created and dropped (kept with
``--keep``). Workers call the same use cases, in the same transactions, as the CLI: submit (a few
documents, some already stored), assign, score, committee decide approve/reject (record, then
apply; a failed apply is recorded on the decision), pay the next tranche, cancel, close, top up.
Every ``--kill-every`` seconds on average one worker gets SIGKILL and a new one starts.

At the end the operator's recovery is run (what any ``submit`` and the ``review`` flow do:
evaluate what waits in ``submitted``, apply pending decisions), then it prints: operations by
kind and result, kills, and
- breaches: ``finance --check`` (ledger, grants on undecided applications, statuses left twice);
- duplicates: an application with two applied decisions or two decision emails, an
  idempotency key twice, a reviewer assigned twice (email);
- losses: a change without its email (approved/rejected without the decision email, a paid
  tranche without its notice), an email for a change that did not happen (rolled back), an
  application still ``submitted`` or fully reviewed but still ``in_review``.
Exit code 1 if any breach, duplicate or loss was found."""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.orm import Session
from stdnum import luhn

from models import (
    Application,
    Decision,
    DomainError,
    Grant,
    OutboxMessage,
    Review,
    Reviewer,
    Status,
    Tranche,
)
from odd17.db import make_engine, unit_of_work
from odd17.services import assignment, audit, committee, intake, ledger, pipeline, scoring
from odd17.services.reviewers import ReviewerIn, add_reviewer
from odd17.services.setup import init_database
from odd17.settings import load_fund_config
from odd17.uow import Context, Runner, UnitOfWork, open_uow

CONFIG = load_fund_config(None)
POLICY = CONFIG.policy()
PLAN = CONFIG.disbursement.plan()
T = CONFIG.disbursement.alert_threshold
MEMBERS = [f"m{i}@comite.example.org" for i in range(3)]
REVIEWERS = [f"r{i}@eval.example.org" for i in range(5)]
OPS = ["submit", "assign", "score", "score", "score", "approve", "reject", "pay", "cancel",
       "close", "topup"]


def uow_for(session: Session) -> UnitOfWork:
    """A unit of work around a session already open (the read models take one)."""
    return UnitOfWork(session, Context(actor="chaos", config=CONFIG), dt.datetime.now(dt.UTC))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def siret(n: int) -> str:
    siren = f"{n % 10**8:08d}"
    siren += luhn.calc_check_digit(siren)
    base = siren + "0001"
    return base + luhn.calc_check_digit(base)


def document(i: int) -> dict[str, Any]:
    return {
        "title": f"Alliance du chaos n°{i}", "summary": "Projet d'alliance.",
        "lead": {"name": f"Association {i}", "kind": "association", "siret": siret(10_000 + i),
                 "email": f"a{i}@example.org"},
        "partners": [{"name": "Mairie", "kind": "collectivite"}],
        "objectives": [["dialogue", "ingenierie", "experimentation"][i % 3]],
        "innovations": ["solutions"],
        "territory": {"region": ["Bretagne", "Occitanie", "Normandie"][i % 3],
                      "department": ["29", "31", "14"][i % 3]},
        "requested_amount": f"{5000 + 1000 * (i % 20)}.00", "total_budget": "500000.00",
        "start_date": "2027-03-01", "duration_months": 24,
        "documents": ["statuts", "budget_previsionnel", "rib"],
    }


# --- worker ------------------------------------------------------------------------------

def pick(session: Any, query: Any, rng: random.Random) -> Any:
    """One of the first few candidates: workers meet on the same rows."""
    rows = session.execute(query.limit(4)).all()
    return rng.choice(rows) if rows else None


def by_status(status: Status) -> Any:
    return select(Application.reference).where(Application.status == status) \
        .order_by(Application.id)


def runner(engine: Any, actor: str) -> Runner:
    return Runner(engine, Context(actor=actor, config=CONFIG, clock=now))


def operate(engine: Any, op: str, rng: random.Random) -> str:
    actor = f"chaos:{os.getpid()}"
    if op == "submit":
        start = rng.randrange(0, 400)
        raws = [intake.RawDocument(f"d{i}", document(i)) for i in range(start, start + 5)]
        runner = Runner(engine, Context(actor=actor, config=CONFIG, clock=now))
        for _ in pipeline.submit_and_evaluate(runner, raws, POLICY, language="fr",
                                              batch_size=3):
            pass
        return "ok"
    if op == "assign":
        with runner(engine, actor).uow() as uow:
            assignment.assign(uow)
        return "ok"
    if op == "score":
        with unit_of_work(engine) as s:
            row = pick(s, select(Application.reference, Reviewer.email).select_from(Review)
                       .join(Application, Application.id == Review.application_id)
                       .join(Reviewer, Reviewer.id == Review.reviewer_id)
                       .where(Review.scored_at.is_(None),
                              Application.status == Status.in_review)
                       .order_by(Review.id), rng)
        if row is None:
            return "idle"
        scores = {k: rng.randint(2, 5) for k in CONFIG.review.weights}
        with runner(engine, actor).uow() as uow:
            scoring.score(uow, row[0], row[1], scores, "Avis motivé.")
        return "ok"
    if op in ("approve", "reject"):
        with unit_of_work(engine) as s:
            row = pick(s, by_status(Status.committee), rng)
        if row is None:
            return "idle"
        committee.decide(runner(engine, actor), row[0], op, present=MEMBERS, amount=None,
                         motif="Motif du comité")
        return "ok"
    if op == "pay":
        with unit_of_work(engine) as s:
            row = pick(s, select(Application.reference, func.min(Tranche.number))
                       .join(Grant, Grant.application_id == Application.id)
                       .join(Tranche, Tranche.grant_id == Grant.id)
                       .where(Application.status.in_((Status.approved, Status.active)),
                              Tranche.paid_on.is_(None))
                       .group_by(Application.id, Application.reference)
                       .order_by(Application.id), rng)
        if row is None:
            return "idle"
        with open_uow(engine, Context(actor=actor, config=CONFIG, clock=now)) as uow:
            ledger.pay(uow, row[0], row[1], f"VIR-{uuid.uuid4().hex[:12]}",
                       paid_on=dt.date.today())
        return "ok"
    if op in ("cancel", "close"):
        status = (Status.approved, Status.active) if op == "cancel" else (Status.active,)
        with unit_of_work(engine) as s:
            row = pick(s, select(Application.reference)
                       .where(Application.status.in_(status)).order_by(Application.id), rng)
        if row is None:
            return "idle"
        with open_uow(engine, Context(actor=actor, config=CONFIG, clock=now)) as uow:
            ledger.end_grant(uow, row[0], cancel=op == "cancel", reason="chaos")
        return "ok"
    if op == "topup":
        with open_uow(engine, Context(actor=actor, config=CONFIG, clock=now)) as uow:
            ledger.topup(uow, Decimal("20000.00"), reason="chaos", key=f"topup:{uuid.uuid4()}")
        return "ok"
    raise ValueError(op)


def worker(url: str, log: Path) -> None:
    """Random operations until killed; one line per operation in ``log``: op result."""
    engine = make_engine(url)
    rng = random.Random()
    with log.open("a", buffering=1) as out:
        while True:
            op = rng.choice(OPS)
            try:
                result = operate(engine, op, rng)
            except DomainError as exc:
                print(f"{op}: {exc}", file=sys.stderr, flush=True)
                result = "refused"
                if "déjà" in str(exc) or "entre-temps" in str(exc):
                    result = "lost-race"
            except Exception as exc:
                result = f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:150]}"
                traceback.print_exc(file=sys.stderr)
            out.write(f"{op} {result}\n")


# --- parent ------------------------------------------------------------------------------

def scratch(admin_url: str | None, keep: bool) -> tuple[str, Any]:
    """The database URL to run on and a function that removes it."""
    if not admin_url:
        folder = Path(tempfile.mkdtemp(prefix="odd17-chaos-"))
        return f"sqlite:///{folder / 'chaos.db'}", lambda: None
    name = f"odd17_chaos_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(admin_url).set(drivername="postgresql+psycopg") \
        .render_as_string(hide_password=False)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        if keep:
            print(f"base conservée : {make_url(url).render_as_string(hide_password=True)}")
            return
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return url, drop


def seed(url: str) -> None:
    engine = make_engine(url)
    wide = CONFIG.calls[0].model_copy(update={"opens_on": dt.date(2020, 1, 1),
                                              "duration_months": 240})
    init_database(engine, CONFIG.model_copy(update={"calls": [wide]}), now())
    with runner(engine, "chaos:seed").uow() as uow:
        for i, email in enumerate(REVIEWERS):
            add_reviewer(uow, ReviewerIn(name=f"R{i}", email=email))
        for i, email in enumerate(MEMBERS):
            add_reviewer(uow, ReviewerIn(name=f"M{i}", email=email, committee=True,
                                         reviews=False))
    engine.dispose()


def spawn(url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--worker", url, "--log", str(log)],
                            env={**os.environ, "ODD17_DATABASE_URL": url},
                            stdout=subprocess.DEVNULL, stderr=log.with_suffix(".err").open("a"))


def recover(engine: Any) -> int:
    """What the next submit and review flow run do; returns the decisions applied."""
    pipeline.evaluate_references(
        Runner(engine, Context(actor="chaos:recover", config=CONFIG, clock=now)), None, POLICY,
        batch_size=500)
    applied = committee.apply_pending(runner(engine, "chaos:recover"))
    return applied.applied + len(applied.failed)


def q(session: Any, sql: str) -> list[Any]:
    return list(session.execute(text(sql)).all())


def verify(engine: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"breaches": [], "duplicates": [], "losses": []}
    with unit_of_work(engine) as s:
        found["breaches"] = audit.check(uow_for(s))
        dup, loss = found["duplicates"], found["losses"]
        for ref, n in q(s, "SELECT a.reference, count(*) FROM decisions d JOIN applications a "
                           "ON a.id = d.application_id WHERE d.applied_at IS NOT NULL AND "
                           "d.outcome IN ('approve', 'reject') GROUP BY a.reference "
                           "HAVING count(*) > 1"):
            dup.append(f"{ref} : {n} décisions appliquées")
        for ref, n in q(s, "SELECT reference, count(*) FROM outbox WHERE event IN "
                           "('decision_approved', 'decision_rejected') GROUP BY reference "
                           "HAVING count(*) > 1"):
            dup.append(f"{ref} : {n} courriels de décision")
        for key, n in q(s, "SELECT idempotency_key, count(*) FROM outbox "
                           "GROUP BY idempotency_key HAVING count(*) > 1"):
            dup.append(f"clé {key} : {n} messages")
        for ref, who, n in q(s, "SELECT reference, recipient, count(*) FROM outbox WHERE "
                                "event = 'review_assigned' GROUP BY reference, recipient "
                                "HAVING count(*) > 1"):
            dup.append(f"{ref} : {who} désigné {n} fois")
        checks = {
            "décidé sans courriel de décision":
                "SELECT a.reference FROM applications a WHERE a.status IN ('approved', "
                "'rejected') AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.reference = "
                "a.reference AND o.event IN ('decision_approved', 'decision_rejected'))",
            "courriel d'accord sans subvention (changement annulé)":
                "SELECT o.reference FROM outbox o JOIN applications a ON a.reference = "
                "o.reference WHERE o.event = 'decision_approved' AND NOT EXISTS (SELECT 1 "
                "FROM grants g WHERE g.application_id = a.id)",
            "courriel de refus sur un dossier non refusé":
                "SELECT o.reference FROM outbox o JOIN applications a ON a.reference = "
                "o.reference WHERE o.event = 'decision_rejected' AND a.status <> 'rejected'",
            "courriel de désignation sans désignation":
                "SELECT o.reference FROM outbox o JOIN applications a ON a.reference = "
                "o.reference JOIN reviewers r ON r.email = o.recipient WHERE o.event = "
                "'review_assigned' AND NOT EXISTS (SELECT 1 FROM reviews v WHERE "
                "v.application_id = a.id AND v.reviewer_id = r.id)",
            "tranche versée sans avis de versement":
                "SELECT t.payment_reference FROM tranches t WHERE t.paid_on IS NOT NULL AND "
                "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.idempotency_key = "
                "'tranche_paid:' || t.payment_reference)",
            "encore « submitted » après reprise":
                "SELECT reference FROM applications WHERE status = 'submitted'",
            "toutes évaluations rendues mais encore « in_review »":
                "SELECT a.reference FROM applications a WHERE a.status = 'in_review' AND "
                "NOT EXISTS (SELECT 1 FROM reviews v WHERE v.application_id = a.id AND "
                "v.scored_at IS NULL)",
        }
        for label, sql in checks.items():
            loss.extend(f"{row[0]} : {label}" for row in q(s, sql))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="PostgreSQL admin URL (default: SQLite)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.log))
        return 0
    url, drop = scratch(args.url, args.keep)
    logs = Path(tempfile.mkdtemp(prefix="odd17-chaos-logs-"))
    try:
        seed(url)
        rng = random.Random()
        procs = [spawn(url, logs / f"w{i}.log") for i in range(args.workers)]
        kills, started = 0, time.monotonic()
        while time.monotonic() - started < args.seconds:
            time.sleep(rng.expovariate(1 / args.kill_every))
            i = rng.randrange(len(procs))
            procs[i].send_signal(signal.SIGKILL)
            procs[i].wait()
            kills += 1
            procs[i] = spawn(url, logs / f"w{i}.log")
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        ops: collections.Counter[str] = collections.Counter()
        for log in logs.glob("*.log"):
            for line in log.read_text().splitlines():
                op, _, result = line.partition(" ")
                ops[f"{op} {result.split(':')[0]}"] += 1
        engine = make_engine(url)
        applied = recover(engine)
        found = verify(engine)
        with unit_of_work(engine) as s:
            statuses = dict(s.execute(select(Application.status, func.count())
                                      .group_by(Application.status)).tuples().all())
            decisions = s.scalar(select(func.count()).select_from(Decision))
            mails = s.scalar(select(func.count()).select_from(OutboxMessage))
        engine.dispose()
        backend = make_url(url).get_backend_name()
        print(f"chaos : {backend}, {args.workers} processus, {args.seconds:.0f} s, "
              f"{sum(ops.values())} opérations, {kills} kill -9")
        for key, n in sorted(ops.items()):
            print(f"  {key:<40} {n}")
        print(f"dossiers par statut : {dict(sorted((str(k), v) for k, v in statuses.items()))}")
        print(f"décisions : {decisions} (dont {applied} appliquées à la reprise), "
              f"messages : {mails}")
        for kind in ("breaches", "duplicates", "losses"):
            print(f"{kind} : {len(found[kind])}")
            for line in found[kind][:20]:
                print(f"  {line}")
        errors = sum(n for key, n in ops.items() if " ERROR" in key)
        print(f"erreurs inattendues : {errors} (détail : {logs}/*.err)")
        return 1 if any(found.values()) or errors else 0
    finally:
        drop()


if __name__ == "__main__":
    sys.exit(main())
