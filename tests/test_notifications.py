"""Email notifications against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from models import MessageStatus, OutboxMessage
from notifications.dispatch import LEASE, Report, expire_stale
from notifications.events import EVENTS, EXAMPLES, SAMPLES
from notifications.outbox import enqueue, message
from notifications.render import render
from odd17.db import unit_of_work
from odd17.services import ledger
from odd17.services import outbox as outbox_service
from odd17.settings import get_settings, reset_caches
from odd17.uow import Context, Runner
from rules.tranches import DEFAULT_PLAN
from tests.factories import application, as_uow, eligible, in_committee
from tests.smtp import SmtpServer, free_port
from tests.test_cli import cli
from tests.test_review_cycle import NOTES, people


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    monkeypatch.setenv("ODD17_MAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("ODD17_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ODD17_SMTP_PORT", str(server.port))
    monkeypatch.setenv("ODD17_MAIL_BACKOFF_SECONDS", "0")
    reset_caches()
    yield server
    server.stop()
    reset_caches()


# the web portal's sign-in link: sent by the portal, tested in tests/test_accounts.py
WEB_ONLY = {"connexion"}


def outbox(engine: Engine) -> list[OutboxMessage]:
    with unit_of_work(engine) as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_every_template_renders_in_french() -> None:
    for event in EVENTS:
        rendered = render(event, EXAMPLES[event], fund_name="Fonds ODD 17")
        assert rendered.subject and rendered.text and "<html" in rendered.html
    approved = render("decision_approved", EXAMPLES["decision_approved"], fund_name="F")
    assert "120\u202f000,00\xa0€" in approved.subject and "1er mars 2027" in approved.text


def test_a_fund_manager_overrides_one_template(tmp_path: Path, engine: Engine,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "application_eligible.subject.j2").write_text("Félicitations {{ reference }}")
    monkeypatch.setenv("ODD17_TEMPLATES_DIR", str(tmp_path))
    code, out, _ = cli("outbox", "preview", "application_eligible")
    assert code == 0 and "Félicitations ODD17-2026-0007" in out
    assert "Le dossier" in cli("outbox", "preview", "application_ineligible")[1]  # the rest


def invite_coapplicant(engine: Engine) -> None:
    from odd17.services import drafts
    from tests.applicant_helpers import LEAD, MEMBER, PUBLIC, uow

    with uow(engine, dt.datetime.now(dt.UTC)) as u:
        draft = drafts.create_draft(u, LEAD, document={"title": "Alliance « solidarité »"})
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC)


def test_cli_cycle_sends_every_event_over_smtp(smtp: SmtpServer, engine: Engine,
                                               tmp_path: Path) -> None:
    path = tmp_path / "depot.jsonl"
    import json

    docs = [application(title=f"Alliance « solidarité » n°{i}", lead={
        **application()["lead"], "siret": None, "rna": f"W78300123{i}",
        "email": f"porteur{i}@exemple.example.org", "contact_name": "Hélène Çelik"})
        for i in range(2)]
    docs = [{**d, "lead": {k: v for k, v in d["lead"].items() if v is not None}} for d in docs]
    docs.append(application(title="Projet inéligible", duration_months=48))
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs))
    cli("submit", str(path))
    refs = [r["reference"] for r in json.loads(cli("list", "--json")[1])]
    people(engine)
    assigned = json.loads(cli("review", "assign", "--all", "--json")[1])["assigned"]
    for ref, emails in assigned.items():
        for email in emails:
            cli("review", "score", ref, *NOTES, "--reviewer", email, "--comment", "Très bien.")
    present = "m0@comite.example.org,m1@comite.example.org,m2@comite.example.org"
    cli("committee", "decide", refs[0], "--approve", "--present", present)
    cli("committee", "decide", refs[1], "--reject", "--motif", "Modèle économique fragile.",
        "--present", present)
    cli("pay", refs[0], "--tranche", "1", "--reference", "VIR-1")
    fillers = in_committee(engine, 18, requested="100000.00", start=300)
    with unit_of_work(engine) as s:  # brings available under 10 %: one envelope alert
        for ref in fillers:
            ledger.approve(as_uow(s, now=dt.datetime.now(dt.UTC), actor="t"), ref,
                           Decimal("100000"), plan=DEFAULT_PLAN)
    invite_coapplicant(engine)  # the portal's event (no CLI command sends it)
    assert cli("outbox", "send", "--json")[0] == 0
    events = {m.event for m in outbox(engine)}
    assert events == set(EVENTS) - WEB_ONLY
    assert [(m.id, m.event, m.last_error) for m in outbox(engine)
            if m.status != MessageStatus.sent] == []
    by_subject = {r.message["Subject"]: r for r in smtp.inbox.received}
    assert len(smtp.inbox.received) == len(outbox(engine))
    approved = next(r for s, r in by_subject.items() if "accorde" in s)
    assert approved.recipients == ["porteur0@exemple.example.org"]
    assert approved.message.get_content_type() == "multipart/alternative"
    assert "Hélène Çelik" in approved.part("plain") and "Hélène Çelik" in approved.part("html")
    assert "« solidarité »" in approved.part("plain")
    assert "60\u202f000,00\xa0€" in approved.part("plain")  # 50 % of 120 000,00 €
    rejected = next(r for s, r in by_subject.items() if "Décision du comité" in s)
    assert "Modèle économique fragile." in rejected.part("plain")
    ineligible = next(r for s, r in by_subject.items() if "pas éligible" in s)
    assert "48 mois" in ineligible.part("plain")
    alert = next(r for s, r in by_subject.items() if s.startswith("Alerte"))
    assert alert.recipients == ["finance@fonds-odd17.example.org"]
    reviewers = {r.recipients[0] for r in smtp.inbox.received
                 if "confié pour évaluation" in r.message["Subject"]}
    assert "conflit@eval.example.org" not in reviewers and len(reviewers) >= 2
    assert cli("outbox", "send", "--json")[0] == 0
    assert len(smtp.inbox.received) == len(outbox(engine))  # nothing sent twice


def test_gives_up_after_max_attempts_of_refusals_then_retry_requeues(
        smtp: SmtpServer, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the server's refusal of a message uses up its attempts (4xx: retried)."""
    monkeypatch.setenv("ODD17_MAIL_MAX_ATTEMPTS", "2")
    reset_caches()
    eligible(engine, 1)
    lead = outbox(engine)[0].recipient
    smtp.inbox.refuse[lead] = "450 4.2.1 Mailbox busy, try later"
    first = send_pending(engine)
    assert (first.sent, first.retried, first.failed) == (0, 2, 0)
    send_pending(engine)
    assert {(m.status, m.attempts) for m in outbox(engine)} == {(MessageStatus.failed, 2)}
    assert "450 4.2.1 Mailbox busy" in (outbox(engine)[0].last_error or "")
    code, out, _ = cli("outbox", "list", "--status", "failed", "--json")
    assert code == 0 and len(json_loads(out)) == 2
    del smtp.inbox.refuse[lead]
    assert "2 message(s) remis en file" in cli("outbox", "retry")[1]
    assert send_pending(engine).sent == 2


def send_pending(engine: Engine, *, worker: str | None = None) -> Report:
    """``odd17 outbox send`` as the entrypoints run it: mail settings from the environment."""
    runner = Runner(engine, Context.from_settings("test"))
    return outbox_service.send(runner, outbox_service.MailSettings.from_settings(get_settings()),
                               worker=worker)


def queue(engine: Engine, recipients: list[str], event: str = "application_eligible",
          prefix: str = "t") -> None:
    """Messages straight into the outbox, one per recipient, with the event's example facts."""
    now = dt.datetime.now(dt.UTC)
    with unit_of_work(engine) as s:
        enqueue(s, [message(SAMPLES[event], r, key=f"{prefix}:{i}", now=now,
                            reference=EXAMPLES[event].get("reference"))
                    for i, r in enumerate(recipients)])


def test_a_permanent_refusal_fails_that_message_alone(smtp: SmtpServer, engine: Engine) -> None:
    recipients = [f"p{i}@exemple.example.org" for i in range(5)]
    queue(engine, recipients)
    smtp.inbox.refuse[recipients[2]] = "550 5.1.1 No such user"
    code, _, err = cli("outbox", "send")
    assert code == 1 and "550 5.1.1 No such user" in err  # failed for good: non-zero
    assert [(m.recipient, m.status) for m in outbox(engine)] == [
        (r, MessageStatus.failed if r == recipients[2] else MessageStatus.sent)
        for r in recipients]
    assert len(smtp.inbox.received) == 4 and all(m.attempts == 1 for m in outbox(engine))


def json_loads(text: str):  # type: ignore[no-untyped-def]
    import json

    return json.loads(text)


def test_two_dispatchers_never_send_the_same_message(smtp: SmtpServer, engine: Engine) -> None:
    eligible(engine, 60)  # 120 messages
    reports = []

    def run(name: str) -> None:
        reports.append(send_pending(engine, worker=name))

    threads = [threading.Thread(target=run, args=(f"d{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [r.message["X-Odd17-Key"] for r in smtp.inbox.received]
    assert len(keys) == 120 and len(set(keys)) == 120
    assert sum(r.sent for r in reports) == 120


def test_a_rolled_back_change_sends_nothing(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    before = len(outbox(engine))
    with pytest.raises(RuntimeError), unit_of_work(engine) as s:
        ledger.approve(as_uow(s, now=dt.datetime.now(dt.UTC), actor="t"), ref, Decimal("1000"),
                       plan=DEFAULT_PLAN)
        ledger.pay(as_uow(s, now=dt.datetime.now(dt.UTC), actor="t"), ref, 1, "VIR-X",
                   paid_on=dt.date.today())
        assert len(s.scalars(select(OutboxMessage)).all()) == before + 1  # tranche_paid, in tx
        raise RuntimeError("the transaction fails after the change")
    assert len(outbox(engine)) == before


def test_interrupted_send_is_not_repeated(engine: Engine) -> None:
    eligible(engine, 1)
    now = dt.datetime.now(dt.UTC)
    with unit_of_work(engine) as s:  # a dispatcher claimed it, then died
        s.execute(update(OutboxMessage).values(status=MessageStatus.sending,
                                               claimed_by="dead", claimed_at=now))
    assert expire_stale(engine, now) == 0  # within the lease: left alone
    assert expire_stale(engine, now + LEASE + dt.timedelta(seconds=1)) == 2
    assert {m.status for m in outbox(engine)} == {MessageStatus.failed}
    assert "vérifier avant de le renvoyer" in (outbox(engine)[0].last_error or "")


def test_eml_transport_writes_real_files(engine: Engine, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import email
    from email.policy import default

    monkeypatch.setenv("ODD17_MAIL_DIR", str(tmp_path / "mails"))
    reset_caches()
    eligible(engine, 1)
    assert send_pending(engine).sent == 2
    files = sorted((tmp_path / "mails").glob("*.eml"))
    assert [f.name.split("-", 1)[1] for f in files] == ["application_received.eml",
                                                        "application_eligible.eml"]
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert "Accusé de réception" in parsed["Subject"]


@pytest.mark.usefixtures("prefect_server")
def test_every_event_from_the_flows(smtp: SmtpServer, engine: Engine, tmp_path: Path) -> None:
    from flows.disbursement import disbursement_flow
    from flows.eligibility import eligibility_flow
    from flows.intake import intake_flow
    from flows.outbox import outbox_flow
    from flows.review import review_flow
    from models import Application
    from odd17.services import committee, scoring
    from tests.factories import jsonl, numbered
    from tests.review_support import uow

    # 1.7 M€ committed up front: the next approval crosses the 10 % alert threshold
    fillers = in_committee(engine, 17, requested="100000.00", start=400)
    with unit_of_work(engine) as s:
        for ref in fillers:
            ledger.approve(as_uow(s, now=dt.datetime.now(dt.UTC), actor="t"), ref,
                           Decimal("100000"), plan=DEFAULT_PLAN)
    with unit_of_work(engine) as s:  # the filler emails are not what this test is about
        s.execute(update(OutboxMessage).values(status=MessageStatus.sent))
    path = tmp_path / "depot.jsonl"
    path.write_text(jsonl([numbered(1, requested_amount="150000"), numbered(2),
                           numbered(3, duration_months=60)]))
    intake_flow(paths=[str(path)])
    eligibility_flow()
    people(engine)
    review_flow()  # assigns
    now = dt.datetime.now(dt.UTC)
    with uow(engine, now=now) as u:
        s, policy = u.session, u.config.review
        refs = [r for r, in s.execute(select(OutboxMessage.reference)
                                      .where(OutboxMessage.event == "review_assigned")
                                      .distinct().order_by(OutboxMessage.reference))]
        for ref in refs:
            app = s.scalars(select(Application).where(Application.reference == ref)).one()
            for r in scoring.review_detail(s, app, policy)["reviews"]:
                scoring.score(u, ref, r["reviewer"], dict.fromkeys(policy.weights, 4), "ok")
        members = ["m0@comite.example.org", "m1@comite.example.org", "m2@comite.example.org"]
        committee.record_decision(u, refs[0], "approve", present=members, amount=None,
                                  motif="")
        committee.record_decision(u, refs[1], "reject", present=members, amount=None,
                                  motif="Hors du champ du fonds.")
    review_flow()  # applies the decisions
    payments = tmp_path / "releve.jsonl"
    payments.write_text(f'{{"reference": "{refs[0]}", "tranche": 1, "payment_reference": '
                        f'"VIR-F1", "date": "{now.date().isoformat()}"}}\n')
    disbursement_flow(payment_files=[str(payments)])
    summary = outbox_flow()
    assert summary["failed"] == 0
    received = {r.message["X-Odd17-Key"].split(":", 1)[0].strip() for r in smtp.inbox.received}
    # every event of §8, produced by the flows, sent over SMTP (the portal's events aside)
    assert received == set(EVENTS) - WEB_ONLY - {"invitation_coapplicant"}
    subjects = [r.message["Subject"] for r in smtp.inbox.received]
    assert any("Alerte" in s for s in subjects)
    assert any("Versement de la tranche 1" in s for s in subjects)
    assert len(subjects) == len(set(r.message["X-Odd17-Key"] for r in smtp.inbox.received))


def test_a_message_taken_meanwhile_is_announced_but_never_handed_over(
        smtp: SmtpServer, engine: Engine) -> None:
    """The envelope (MAIL, RCPT) goes out while the claim commits; a claim that fails (the
    message was taken by another dispatcher since the queue was read) withdraws it: the server
    never gets that message's DATA, and the next messages go on over the same connection."""
    from concurrent.futures import ThreadPoolExecutor

    from notifications.dispatch import Dispatcher, due
    from notifications.transports import Smtp

    recipients = [f"p{i}@exemple.example.org" for i in range(4)]
    queue(engine, recipients)
    now = dt.datetime.now(dt.UTC)
    candidates = due(engine, now, 0, 10)
    taken = {candidates[1].id}
    with engine.begin() as conn:
        conn.execute(update(OutboxMessage).where(OutboxMessage.id.in_(taken))
                     .values(status=MessageStatus.sending, claimed_by="other"))
    sender = "Fonds <f@example.org>"
    dispatcher = Dispatcher(engine, "me", sender, "F", lambda: now, 8,
                            dt.timedelta(seconds=0), None)
    with (Smtp(host="127.0.0.1", port=smtp.port, user=None, password=None, starttls=False,
               ssl=False, sender=sender) as connection,
          ThreadPoolExecutor(1) as wire, engine.connect() as dispatcher.conn):
        dispatcher.walk(connection, candidates, wire)
    # each delivered with its own envelope only: the withdrawn ones were reset
    assert sorted(m.recipients for m in smtp.inbox.received) == [
        [recipients[0]], [recipients[2]], [recipients[3]]]
    assert dispatcher.report.sent == 3 and not dispatcher.report.errors
    assert [(m.status, m.claimed_by) for m in outbox(engine)] == [
        (MessageStatus.sent, "me"), (MessageStatus.sending, "other"),
        (MessageStatus.sent, "me"), (MessageStatus.sent, "me")]


def test_one_message_and_a_batch_are_stored_alike_and_a_key_once(engine: Engine) -> None:
    """``enqueue`` writes one message with a statement of its own (compiled once) and a batch
    with ``insert_many``: the rows are the same, and a key already queued adds nothing either
    way, alone or within a batch."""
    now = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
    event = "decision_approved"

    def row(i: int) -> dict[str, object]:
        return message(SAMPLES[event], f"r{i}@exemple.example.org", key=f"k:{i}", now=now,
                       reference=EXAMPLES[event].get("reference"))

    with unit_of_work(engine) as s:
        enqueue(s, [row(0)])  # alone
        enqueue(s, [row(0)])  # the same key again: nothing
    with unit_of_work(engine) as s:
        enqueue(s, [row(0), row(1)])  # a batch: only the new key
        enqueue(s, [row(1)])
    stored = outbox(engine)
    assert [m.idempotency_key for m in stored] == ["k:0", "k:1"]
    columns = ("event", "reference", "context", "status", "attempts", "next_attempt_at",
               "created_at")
    alone, batched = ({c: getattr(m, c) for c in columns} for m in stored)
    assert alone == batched and alone["status"] is MessageStatus.pending
    assert alone["next_attempt_at"] == now and alone["context"] == row(0)["context"]
