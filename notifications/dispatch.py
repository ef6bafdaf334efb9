"""The dispatcher: walk the due messages, send them over one connection, record each outcome.

- **One message in doubt at most, per dispatcher.** A message moves ``pending -> sending``
  (compare-and-set on its status and attempts, with ``send_started_at``) just before it is
  rendered and handed to the server, and ``sending -> sent`` in the transaction that follows
  the server's acceptance (the same one that takes the next message). A dispatcher killed at
  any point leaves at most that one message ``sending``; every other one is ``pending`` or
  recorded. Several dispatchers may run at once: the compare-and-set gives each message to
  one of them.
- **At most one send per idempotency key.** A message left ``sending`` by a dispatcher that
  died (we cannot know whether the server took it) is not sent again automatically: once its
  claim is older than the lease it is marked ``failed`` with that explanation, for a person to
  check and requeue (``odd17 outbox retry``). Its Message-ID derives from the key, so a copy
  sent again is recognisable.
- **A message's failure is its own.** A template that does not render, an address that cannot
  be used, a refusal by the server: that message is retried later (4xx, counting an attempt,
  exponential backoff, ``failed`` after ``max_attempts``) or failed at once (5xx, rendering),
  and the next message goes on.
- **A server that cannot be reached is nobody's fault.** It uses up no attempt: the messages
  wait, the run stops and says so. Only the lifetime (``ODD17_MAIL_EXPIRY_DAYS``, from when
  the message was queued or requeued, like an MTA's queue lifetime) ends the wait."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, literal, select, update
from sqlalchemy.orm import Session

from models import DomainError, MessageStatus, OutboxMessage
from models.base import rows_matched
from notifications.payloads import PAYLOADS, scrubbed
from notifications.render import Renderer, build_message, message_id
from notifications.transports import Interrupted, Outgoing, Refused, Transport, Unreachable

LEASE = dt.timedelta(minutes=15)
TABLE = OutboxMessage.__table__
STALE_ERROR = ("envoi interrompu (dispatcher arrêté pendant l'envoi) : le serveur a pu recevoir "
               "le message ; vérifier avant de le renvoyer")


@dataclass(slots=True)
class Candidate:
    id: int
    event: str
    key: str
    recipient: str
    context: dict[str, Any]
    attempts: int


@dataclass(slots=True)
class Report:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    unreachable: str | None = None  # the server could not be reached: the messages wait
    waiting: int = 0                # messages still pending when the server was unreachable


@dataclass(slots=True)
class Outcome:
    """How a claimed message ended: the values of its ``sending -> …`` update."""
    id: int
    values: dict[str, Any]
    kind: str  # sent, retried, failed, back (not handed over: pending again, no attempt)


def expire_stale(engine: Engine, now: dt.datetime) -> int:
    """``sending`` for longer than the lease: its dispatcher died mid-send. Failed, not resent."""
    with engine.begin() as conn:
        result = conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == MessageStatus.sending,
                   OutboxMessage.claimed_at < now - LEASE)
            .values(status=MessageStatus.failed, last_error=STALE_ERROR))
        return rows_matched(result)


def expire_old(engine: Engine, now: dt.datetime, lifetime: dt.timedelta) -> int:
    """Pending for longer than the lifetime (since queued, or requeued by a person): failed."""
    days = lifetime / dt.timedelta(days=1)
    reason = f"expiré : non envoyé en {days:g} jour(s) (ODD17_MAIL_EXPIRY_DAYS)"
    queued = func.coalesce(OutboxMessage.requeued_at, OutboxMessage.created_at)
    with engine.begin() as conn:
        result = conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == MessageStatus.pending, queued < now - lifetime)
            .values(status=MessageStatus.failed,
                    last_error=literal(reason + " ; dernière erreur : ")
                    + func.coalesce(OutboxMessage.last_error, "aucune")))
        return rows_matched(result)


def due(engine: Engine, now: dt.datetime, after: int, limit: int) -> list[Candidate]:
    """The next due messages after id ``after`` (a run walks the queue once, in order)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(TABLE.c.id, TABLE.c.event, TABLE.c.idempotency_key, TABLE.c.recipient,
                   TABLE.c.context, TABLE.c.attempts)
            .where(TABLE.c.status == MessageStatus.pending, TABLE.c.next_attempt_at <= now,
                   TABLE.c.id > after)
            .order_by(TABLE.c.id).limit(limit)).all()
    return [Candidate(*row) for row in rows]


# Statements built once (SQLAlchemy then reuses their compiled form): two per message sent.
def _b(name: str) -> Any:
    return bindparam(f"b_{name}")


_CLAIM = (update(TABLE)
          .where(TABLE.c.id == _b("id"), TABLE.c.status == MessageStatus.pending,
                 TABLE.c.attempts == _b("attempts"), TABLE.c.next_attempt_at <= _b("now"))
          .values(status=MessageStatus.sending, claimed_by=_b("worker"), claimed_at=_b("now"),
                  send_started_at=_b("now"), message_id=_b("mid")))
_MINE = update(TABLE).where(TABLE.c.id == _b("id"), TABLE.c.claimed_by == _b("worker"),
                            TABLE.c.status == MessageStatus.sending)
_RECORD = {
    "sent": _MINE.values(status=MessageStatus.sent, sent_at=_b("at"), subject=_b("subject"),
                         last_error=None, attempts=_b("attempts")),
    "retried": _MINE.values(status=MessageStatus.pending, last_error=_b("error"),
                            attempts=_b("attempts"), claimed_by=None,
                            next_attempt_at=_b("next")),
    "failed": _MINE.values(status=MessageStatus.failed, last_error=_b("error"),
                           attempts=_b("attempts")),
    # not handed over (the server could not be reached): pending again, no attempt used
    "back": _MINE.values(status=MessageStatus.pending, claimed_by=None, send_started_at=None),
}
# the same, for a message whose secrets (a sign-in link) are blanked as it leaves the queue
_RECORD_SCRUBBED = {kind: _RECORD[kind].values(context=_b("context"))
                    for kind in ("sent", "failed")}


@dataclass(slots=True)
class Prepared:
    """A candidate rendered before it is claimed (rendering is pure: done while the previous
    message is on the wire); ``failure`` when it cannot be rendered or addressed."""
    candidate: Candidate
    email: Outgoing | None
    subject: str = ""
    failure: str = ""


@dataclass
class Dispatcher:
    engine: Engine
    worker: str
    sender: str
    fund_name: str
    clock: Callable[[], dt.datetime]
    max_attempts: int
    backoff: dt.timedelta
    templates: Path | None
    portal_url: str | None = None  # links in the emails (rendering adds it, like fund_name)
    report: Report = field(default_factory=Report)
    renderer: Renderer = field(init=False)
    conn: Connection | None = field(default=None, init=False)  # held for the run

    def __post_init__(self) -> None:
        self.renderer = Renderer.for_run(self.templates)  # each template compiled once a run

    def step(self, done: Outcome | None, claim: Candidate | None) -> bool:
        """One transaction: record the message just handled, claim the next one if still free
        (compare-and-set: pending, as read, and due)."""
        now = self.clock()
        assert self.conn is not None
        conn = self.conn
        with conn.begin():
            if done is not None:
                statement = (_RECORD_SCRUBBED[done.kind] if "b_context" in done.values
                             else _RECORD[done.kind])
                recorded = conn.execute(statement, {
                    "b_id": done.id, "b_worker": self.worker, **done.values}).rowcount == 1
                self.count(done, recorded)
            if claim is None:
                return False
            return conn.execute(_CLAIM, {
                "b_id": claim.id, "b_attempts": claim.attempts, "b_now": now,
                "b_worker": self.worker, "b_mid": message_id(claim.key, self.sender),
            }).rowcount == 1

    def count(self, done: Outcome, recorded: bool) -> None:
        if not recorded:  # taken from us meanwhile (the lease ran out): say so, change nothing
            self.report.errors.append(f"message {done.id} : issue non enregistrée (le message "
                                      "a changé d'état pendant l'envoi)")
        elif done.kind == "sent":
            self.report.sent += 1
        elif done.kind == "retried":
            self.report.retried += 1
        elif done.kind == "failed":
            self.report.failed += 1

    def prepare(self, message: Candidate) -> Prepared:
        try:
            rendered = self.renderer.render(message.event, message.context,
                                            fund_name=self.fund_name,
                                            portal_url=self.portal_url)
            email = build_message(rendered, sender=self.sender, recipient=message.recipient,
                                  key=message.key, now=self.clock())
        except DomainError as exc:  # a broken template or address will not mend by waiting
            return Prepared(message, None, failure=str(exc))
        except Exception as exc:  # whatever it is, it is this message's alone
            return Prepared(message, None,
                            failure=f"rendu impossible : {exc.__class__.__name__} {exc}")
        return Prepared(message, email, rendered.subject)

    def hand_over(self, connection: Transport, ready: Prepared) -> Outcome:
        """Send one claimed message. ``Unreachable`` and ``Interrupted`` end the run."""
        message = ready.candidate
        assert ready.email is not None
        try:
            connection.send(ready.email, f"{message.id:07d}-{message.event}")
        except Refused as exc:
            return self.failure(message, exc.reason, permanent=exc.permanent)
        except Interrupted as exc:
            self.report.unreachable = exc.reason
            return self.failure(message, exc.reason, permanent=True)
        except Unreachable as exc:
            self.report.unreachable = exc.reason
            return Outcome(message.id, {}, "back")
        except Exception as exc:  # unforeseen: the server may have it
            reason = (f"envoi interrompu ({exc.__class__.__name__} {exc}) : le serveur a pu "
                      "recevoir le message ; vérifier avant de le renvoyer")
            self.report.unreachable = reason
            return self.failure(message, reason, permanent=True)
        return Outcome(message.id, {"b_at": self.clock(), "b_subject": ready.subject[:300],
                                    "b_attempts": message.attempts + 1, **_scrub(message)},
                       "sent")

    def failure(self, message: Candidate, reason: str, *, permanent: bool) -> Outcome:
        attempts = message.attempts + 1
        self.report.errors.append(f"message {message.id} : {reason}")
        if permanent or attempts >= self.max_attempts:
            return Outcome(message.id, {"b_error": reason, "b_attempts": attempts,
                                        **_scrub(message)}, "failed")
        delay = self.backoff * 2 ** (attempts - 1)
        return Outcome(message.id, {"b_error": reason, "b_attempts": attempts,
                                    "b_next": self.clock() + delay}, "retried")

    @staticmethod
    def announce(connection: Transport, email: Outgoing) -> Exception | None:
        """The envelope (SMTP MAIL and RCPT), sent while the claim commits: nothing is handed
        over before DATA, which waits for the claim."""
        try:
            connection.begin(email)
        except Exception as exc:  # judged once the claim is known
            return exc
        return None

    def unannounced(self, message: Candidate, problem: Exception) -> Outcome:
        """A claimed message whose envelope failed: not handed over."""
        if isinstance(problem, Refused):
            return self.failure(message, problem.reason, permanent=problem.permanent)
        self.report.unreachable = (problem.reason if isinstance(problem, Unreachable) else
                                   f"serveur injoignable : {problem.__class__.__name__} {problem}")
        return Outcome(message.id, {}, "back")

    def walk(self, connection: Transport, queue: list[Candidate], wire: Executor) -> None:
        """Send the candidates in turn. Each outcome is committed in the transaction that
        claims the next message, while the wire announces that message; its DATA follows the
        claim, and the message after it is rendered meanwhile."""
        done: Outcome | None = None
        ready = self.prepare(queue[0])
        for following in [*queue[1:], None]:
            sending: Future[Outcome] | None = None
            announcing = (None if ready.email is None
                          else wire.submit(self.announce, connection, ready.email))
            claimed, done = self.step(done, ready.candidate), None
            problem = announcing.result() if announcing is not None else None
            if not claimed:  # another dispatcher has it: withdraw the envelope
                if isinstance(problem, Unreachable):
                    self.report.unreachable = problem.reason
                elif announcing is not None and problem is None:
                    wire.submit(connection.cancel)
            elif ready.email is None:
                done = self.failure(ready.candidate, ready.failure, permanent=True)
            elif problem is not None:
                done = self.unannounced(ready.candidate, problem)
            else:
                sending = wire.submit(self.hand_over, connection, ready)
            upcoming = (self.prepare(following) if following is not None
                        and not self.report.unreachable else None)
            if sending is not None:
                done = sending.result()
            if self.report.unreachable or upcoming is None:  # record it, claim nothing more
                break
            ready = upcoming
        if done is not None:
            self.step(done, None)

    def run(self, transport: Callable[[], Transport], batch: int) -> Report:
        started, after = self.clock(), 0
        candidates = due(self.engine, started, after, batch)
        if not candidates:
            return self.report
        try:
            with (transport() as connection, ThreadPoolExecutor(1, "odd17-smtp") as wire,
                  self.engine.connect() as self.conn):
                while candidates and not self.report.unreachable:
                    self.walk(connection, candidates, wire)
                    after = candidates[-1].id
                    candidates = due(self.engine, started, after, batch)
        except Unreachable as exc:  # could not connect: nothing was claimed
            self.report.unreachable = exc.reason
        if self.report.unreachable:
            with self.engine.connect() as conn:
                self.report.waiting = conn.execute(
                    select(func.count()).select_from(TABLE)
                    .where(TABLE.c.status == MessageStatus.pending)).scalar_one()
        return self.report


def _scrub(message: Candidate) -> dict[str, Any]:
    """The blanked context to record with a message that leaves the queue, if it has secrets."""
    context = scrubbed(message.event, message.context)
    return {} if context is None else {"b_context": context}


def dispatch(
    engine: Engine, transport: Callable[[], Transport], *, sender: str, fund_name: str,
    worker: str, clock: Callable[[], dt.datetime], max_attempts: int = 8,
    backoff: dt.timedelta = dt.timedelta(seconds=30), batch: int = 200,
    templates: Path | None = None, lifetime: dt.timedelta = dt.timedelta(days=5),
    portal_url: str | None = None,
) -> Report:
    """Send every message due when the run starts, once each, until the queue is walked or
    the server cannot be reached."""
    dispatcher = Dispatcher(engine, worker, sender, fund_name, clock, max_attempts, backoff,
                            templates, portal_url)
    report = dispatcher.report
    now = clock()
    stale = expire_stale(engine, now)
    expired = expire_old(engine, now, lifetime)
    if stale:
        report.errors.append(f"{stale} message(s) en échec : {STALE_ERROR}")
    if expired:
        report.errors.append(f"{expired} message(s) en échec : expirés (non envoyés en "
                             f"{lifetime / dt.timedelta(days=1):g} jour(s))")
    report.failed += stale + expired
    return dispatcher.run(transport, batch)


def requeue(s: Session, ids: list[int] | None, now: dt.datetime) -> int:
    """Requeue failed messages (all, or the given ids) for an immediate attempt, with a fresh
    lifetime, in the caller's transaction. An id that is unknown or not ``failed`` is an error,
    and nothing is requeued."""
    query = update(OutboxMessage).where(OutboxMessage.status == MessageStatus.failed,
                                        OutboxMessage.event.notin_(_BLANKED_WHEN_FAILED))
    if ids:
        wanted = sorted(set(ids))
        found = {i: (status, event) for i, status, event in s.execute(
            select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.event)
            .where(OutboxMessage.id.in_(wanted))).tuples()}
        problems = [f"message {i} inconnu" for i in wanted if i not in found]
        problems += [f"message {i} : {_NOT_FAILED[found[i][0]]}" for i in wanted
                     if i in found and found[i][0] != MessageStatus.failed]
        problems += [f"message {i} : son lien de connexion a été retiré à l'échec ; la "
                     "personne en demande un nouveau sur la page de connexion" for i in wanted
                     if i in found and found[i][0] == MessageStatus.failed
                     and found[i][1] in _BLANKED_WHEN_FAILED]
        if problems:
            raise DomainError("rien n'est remis en file : " + " ; ".join(problems))
        query = query.where(OutboxMessage.id.in_(wanted))
    result = s.execute(query.values(status=MessageStatus.pending, next_attempt_at=now,
                                    attempts=0, claimed_by=None, claimed_at=None,
                                    send_started_at=None, requeued_at=now))
    return rows_matched(result)


# Events whose secrets (a sign-in link) are blanked when the message fails: sent again, it
# would carry no working link, so requeueing skips them (all) or refuses them (by id).
_BLANKED_WHEN_FAILED = tuple(event for event, model in PAYLOADS.items() if model.secrets)

_NOT_FAILED = {
    MessageStatus.pending: "déjà en file (pending)",
    MessageStatus.sent: "déjà envoyé (sent)",
    MessageStatus.sending: "en cours d'envoi (sending) ; s'il y reste, il passe en échec "
                           f"après {LEASE.seconds // 60} minutes et peut alors être remis en file",
}
