"""The outbox under failure: killed dispatchers, a server down for long, addresses some servers
cannot take, broken templates. Real SMTP servers (aiosmtpd), real processes."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from models import MessageStatus, OutboxMessage
from notifications.dispatch import LEASE, expire_stale
from notifications.events import EXAMPLES
from notifications.render import build_message, message_id, render
from odd17.db import unit_of_work
from odd17.settings import reset_caches
from tests.smtp import SmtpProcess, SmtpServer, free_port
from tests.test_cli import ODD17, cli
from tests.test_notifications import outbox, queue, send_pending

SENDER = "Fonds ODD 17 <contact@fonds-odd17.example.org>"


def use_smtp(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("ODD17_MAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("ODD17_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ODD17_SMTP_PORT", str(port))
    monkeypatch.setenv("ODD17_MAIL_BACKOFF_SECONDS", "0")
    reset_caches()


@pytest.fixture(params=[False, True], ids=["plain", "smtputf8"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
           engine: Engine) -> Iterator[SmtpServer]:
    smtp = SmtpServer(free_port(), smtputf8=request.param)
    smtp.start()
    use_smtp(monkeypatch, smtp.port)
    yield smtp
    smtp.stop()
    reset_caches()


def test_one_address_a_server_cannot_take_costs_no_other_message(
        server: SmtpServer, engine: Engine) -> None:
    """A local part in Unicode needs SMTPUTF8: refused for that message alone, clearly, where
    the server lacks it; sent where it has it. An IDNA domain is always encoded."""
    ordinary = [f"porteur{i}@exemple-associatif.fr" for i in range(40)]
    recipients = [*ordinary[:20], "josé@exemple-associatif.fr", "contact@exemple-associé.fr",
                  *ordinary[20:]]
    queue(engine, recipients)
    for _ in range(3):  # repeated sends, no backoff: the others never suffer from it
        code = cli("outbox", "send")[0]
    rows = {m.recipient: m for m in outbox(engine)}
    assert {r for r, m in rows.items() if m.status == MessageStatus.sent} == \
        set(recipients) - ({"josé@exemple-associatif.fr"} if not server.smtputf8 else set())
    delivered = Counter(r for m in server.inbox.received for r in m.recipients)
    assert delivered["contact@xn--exemple-associ-okb.fr"] == 1  # IDNA: A-labels on the wire
    idna = next(m for m in server.inbox.received
                if m.recipients == ["contact@xn--exemple-associ-okb.fr"])
    assert idna.message["To"] == "contact@xn--exemple-associ-okb.fr" and not idna.options
    assert all(n == 1 for n in delivered.values())
    jose = rows["josé@exemple-associatif.fr"]
    if server.smtputf8:
        assert delivered["josé@exemple-associatif.fr"] == 1 and code == 0
        received = next(m for m in server.inbox.received
                        if m.recipients == ["josé@exemple-associatif.fr"])
        assert "SMTPUTF8" in received.options and received.message["To"] == \
            "josé@exemple-associatif.fr"
    else:
        assert (jose.status, jose.attempts) == (MessageStatus.failed, 1)
        assert "SMTPUTF8" in (jose.last_error or "") and "non ASCII" in (jose.last_error or "")
        assert code == 0  # the third send: nothing new failed
        assert len(server.inbox.received) == len(recipients) - 1


def test_server_down_uses_no_attempt_then_expiry_ends_the_wait(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    use_smtp(monkeypatch, port)  # nothing listens there yet
    monkeypatch.setenv("ODD17_MAIL_MAX_ATTEMPTS", "2")
    reset_caches()
    queue(engine, [f"p{i}@exemple.example.org" for i in range(6)])
    for _ in range(10):  # many more runs than attempts allowed
        code, out, err = cli("outbox", "send")
        assert code == 2 and "0 envoyé(s)" in out
        assert [line for line in err.splitlines() if "serveur injoignable" in line] == [
            next(line for line in err.splitlines() if "serveur injoignable" in line)]
        assert "6 message(s) en attente" in err and "Traceback" not in err
    assert {(m.status, m.attempts) for m in outbox(engine)} == {(MessageStatus.pending, 0)}
    code, out, _ = cli("outbox", "send", "--json")
    assert code == 2 and '"waiting": 6' in out and "serveur injoignable" in out

    # an old one expires (its queue lifetime is over) while the server is still down
    with unit_of_work(engine) as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id == outbox(engine)[0].id)
                  .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=6)))
    code, _, err = cli("outbox", "send")
    assert code == 2 and "expiré" in err  # failed for good, and the server is still down
    expired = outbox(engine)[0]
    assert expired.status == MessageStatus.failed and "expiré" in (expired.last_error or "")

    server = SmtpServer(port)
    server.start()
    try:
        code, out, err = cli("outbox", "send")
        assert code == 0 and "5 envoyé(s)" in out, err
        assert len(server.inbox.received) == 5
        assert len({m.message["Message-ID"] for m in server.inbox.received}) == 5
        assert cli("outbox", "send")[0] == 0 and len(server.inbox.received) == 5
        # a person requeues the expired one: a fresh lifetime, sent at once
        assert "1 message(s) remis en file" in cli("outbox", "retry", str(expired.id))[1]
        assert cli("outbox", "send")[0] == 0 and len(server.inbox.received) == 6
    finally:
        server.stop()


def test_a_broken_override_fails_its_messages_only(engine: Engine, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    templates = tmp_path / "modeles"
    templates.mkdir()
    (templates / "application_eligible.subject.j2").write_text("Dossier {{ foo( }}")
    monkeypatch.setenv("ODD17_TEMPLATES_DIR", str(templates))
    monkeypatch.setenv("ODD17_MAIL_DIR", str(tmp_path / "mails"))
    reset_caches()
    queue(engine, ["a@exemple.example.org", "b@exemple.example.org"], "application_eligible",
          prefix="bad")
    queue(engine, ["c@exemple.example.org", "d@exemple.example.org"], "decision_rejected",
          prefix="good")
    code, _, err = cli("outbox", "preview", "application_eligible")
    assert code == 2 and "Traceback" not in err
    assert "application_eligible.subject.j2" in err and "ligne 1" in err
    code, out, err = cli("outbox", "send")
    assert code == 1 and "2 envoyé(s)" in out and "Traceback" not in err
    status = {(m.event, m.status) for m in outbox(engine)}
    assert status == {("application_eligible", MessageStatus.failed),
                      ("decision_rejected", MessageStatus.sent)}
    failed = [m for m in outbox(engine) if m.status == MessageStatus.failed]
    assert all("erreur de syntaxe" in (m.last_error or "") for m in failed)
    assert len(list((tmp_path / "mails").glob("*.eml"))) == 2
    # retry: an unknown id is an error naming it, and requeues nothing
    code, out, err = cli("outbox", "retry", "424242", str(failed[0].id))
    assert code == 2 and "424242" in err and "inconnu" in err
    assert {m.status for m in outbox(engine) if m.event == "application_eligible"} == \
        {MessageStatus.failed}
    sent = next(m for m in outbox(engine) if m.status == MessageStatus.sent)
    code, _, err = cli("outbox", "retry", str(sent.id))
    assert code == 2 and "déjà envoyé" in err
    # the template mended, the failed ones go out
    (templates / "application_eligible.subject.j2").write_text("Dossier {{ reference }}")
    assert "2 message(s) remis en file" in cli("outbox", "retry", *[str(m.id) for m in failed])[1]
    assert cli("outbox", "send")[0] == 0
    assert {m.status for m in outbox(engine)} == {MessageStatus.sent}


def test_message_id_derives_from_the_key() -> None:
    rendered = render("decision_approved", EXAMPLES["decision_approved"], fund_name="F")
    builds = [build_message(rendered, sender=SENDER, recipient="a@example.org", key="k:1",
                            now=dt.datetime.now(dt.UTC)) for _ in range(3)]
    assert len({b.message_id for b in builds}) == 1
    assert builds[0].message_id == message_id("k:1", SENDER)
    assert f"Message-ID: {builds[0].message_id}\r\n".encode() in builds[0].data
    assert message_id("k:2", SENDER) != message_id("k:1", SENDER)
    assert builds[0].message_id.endswith("@fonds-odd17.example.org>")


def test_emails_read_as_french() -> None:
    one = {**EXAMPLES["application_ineligible"],
           "reasons": EXAMPLES["application_ineligible"]["reasons"][:1]}
    assert "pour 1 raison :" in render("application_ineligible", one, fund_name="F").text
    two = render("application_ineligible", EXAMPLES["application_ineligible"], fund_name="F")
    assert "pour 2 raisons :" in two.text and "pour 2 raisons :" in two.html
    received = render("application_received", {**EXAMPLES["application_received"],
                                               "submitted_at": "2026-10-01"}, fund_name="F")
    assert "le 1er octobre 2026" in received.text and "1er octobre 2026" in received.html
    assert "le 11 octobre" in render("application_received", {
        **EXAMPLES["application_received"], "submitted_at": "2026-10-11"}, fund_name="F").text
    # the reference never breaks across lines in HTML, wherever it appears in a body
    for event in ("application_received", "application_eligible", "decision_approved",
                  "tranche_paid"):
        html = render(event, EXAMPLES[event], fund_name="F").html
        body = html.split("</title>", 1)[1]
        assert '<span style="white-space: nowrap;">ODD17-2026-0007</span>' in body
        assert body.count("ODD17-2026-0007") == body.count(">ODD17-2026-0007</span>")


def test_ineligible_email_names_objectives_in_french(engine: Engine) -> None:
    from tests.factories import application

    path = Path("depot.jsonl")
    import json

    path.write_text(json.dumps(application(objectives=[], innovations=[]),
                               ensure_ascii=False))
    assert cli("submit", str(path))[0] == 0
    [ineligible] = [m for m in outbox(engine) if m.event == "application_ineligible"]
    text = render(ineligible.event, ineligible.context, fund_name="F").text
    assert "Expérimentation" in text and "Co-construction" in text
    assert "experimentation" not in text and "co_construction" not in text


# --- kill -9 of a real `odd17 outbox send` against a real SMTP server in its own process


def test_kill_9_leaves_at_most_one_message_in_doubt(engine: Engine, db_url: str,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Several kills at random points; afterwards every message is delivered, none stuck,
    and only the message in flight at each kill may arrive twice, with the same Message-ID."""
    total, kills = 600, 6
    queue(engine, [f"porteur{i}@exemple.example.org" for i in range(total)])
    smtp = SmtpProcess(free_port(), tmp_path / "recus")
    smtp.start()
    use_smtp(monkeypatch, smtp.port)
    env = {**os.environ, "ODD17_DATABASE_URL": db_url}
    chance = random.Random(20261123)

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen([ODD17, "outbox", "send"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    try:
        killed = 0
        for _ in range(kills):
            target = smtp.count() + chance.randint(1, total // (kills + 2))
            proc = run()
            while proc.poll() is None and smtp.count() < target:
                time.sleep(0.002)
            if proc.poll() is not None:
                break  # it finished before the kill point: nothing left to interrupt
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
            in_doubt = [m for m in outbox(engine) if m.status == MessageStatus.sending]
            assert len(in_doubt) <= killed  # one per dead dispatcher, not a batch
        assert killed >= 3, "the dispatcher finished too fast to be killed"
        proc = run()
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
        rows = outbox(engine)
        in_doubt = [m for m in rows if m.status == MessageStatus.sending]
        assert len(in_doubt) <= killed
        assert {m.status for m in rows} <= {MessageStatus.sent, MessageStatus.sending}
        assert all(m.send_started_at is not None for m in in_doubt)
        # the lease runs out: the ones in doubt are failed, a person checks and requeues them
        assert expire_stale(engine, dt.datetime.now(dt.UTC) + LEASE + dt.timedelta(seconds=1)) \
            == len(in_doubt)
        if in_doubt:
            assert cli("outbox", "retry", *[str(m.id) for m in in_doubt])[0] == 0
            assert send_pending(engine).sent == len(in_doubt)
        rows = outbox(engine)
        assert {m.status for m in rows} == {MessageStatus.sent}  # none stuck
        received = Counter(m["Message-ID"].strip() for m in smtp.messages())
        expected = {m.message_id: m for m in rows}
        assert set(received) == set(expected)  # every message delivered, by its Message-ID
        twice = {mid for mid, n in received.items() if n > 1}
        assert all(received[mid] == 2 for mid in twice)
        assert len(twice) <= killed
        assert twice <= {m.message_id for m in in_doubt}  # only a message in flight
        assert all(expected[mid].message_id == message_id(expected[mid].idempotency_key, SENDER)
                   for mid in expected)
    finally:
        smtp.stop()
