"""Email throughput: 1,000 messages rendered and sent to a local SMTP server (aiosmtpd on
loopback), against rendering alone, in the same run.

    python bench/mail.py [N] [--json FILE]

Goal: 400 messages/s through the whole path (2 cores, SMTP on loopback).

The messages go through the real outbox and dispatcher (claim, render, build the MIME
message, send over one yagmail connection for the run, mark sent), from a fresh SQLite
database. Besides the wall time, the dispatcher process's CPU time per message (all threads):
on a shared machine it varies far less than the wall time."""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from figures import json_option, median, rate_figure, write_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from notifications.dispatch import dispatch
from notifications.events import EVENTS, EXAMPLES, SAMPLES
from notifications.outbox import enqueue, message
from notifications.render import build_message, render
from notifications.transports import Smtp
from odd17.db import make_engine, unit_of_work
from odd17.services.setup import init_database
from odd17.settings import load_fund_config
from tests.smtp import free_port

SENDER = "Fonds ODD 17 <contact@fonds-odd17.example.org>"


class Counter:
    """A lean SMTP sink: counts what it accepts (the tests' inbox parses every message)."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 Message accepted for delivery"


def serve(port: int, stop: Any, counts: Any) -> None:
    handler = Counter()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    stop.wait()
    controller.stop()
    counts.put(handler.count)


def wait_for_port(port: int) -> None:
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("the SMTP server did not start")


def render_all(items: list[tuple[str, str, str]], now: dt.datetime) -> float:
    start = time.perf_counter()
    for event, recipient, key in items:
        build_message(render(event, EXAMPLES[event], fund_name="Fonds ODD 17"),
                      sender=SENDER, recipient=recipient, key=key, now=now)
    return time.perf_counter() - start


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def send_all(items: list[tuple[str, str, str]], now: dt.datetime, port: int,
             cpu: list[float] | None = None) -> float:
    """Seconds for the dispatcher to send ``items``, enqueued in a fresh database (its CPU
    seconds appended to ``cpu``)."""
    work = Path(tempfile.mkdtemp(prefix="odd17-mail-bench-"))
    engine = make_engine(f"sqlite:///{work / 'mail.db'}")
    init_database(engine, load_fund_config(None), now)
    with unit_of_work(engine) as s:
        enqueue(s, [message(SAMPLES[event], recipient, key=key, now=now)
                    for event, recipient, key in items])
    start, cpu_start = time.perf_counter(), cpu_seconds()
    report = dispatch(
        engine, lambda: Smtp(host="127.0.0.1", port=port, user=None, password=None,
                             starttls=False, ssl=False, sender=SENDER),
        sender=SENDER, fund_name="Fonds ODD 17", worker="bench",
        clock=lambda: dt.datetime.now(dt.UTC))
    elapsed = time.perf_counter() - start
    if cpu is not None:
        cpu.append(cpu_seconds() - cpu_start)
    engine.dispose()
    assert report.sent == len(items), report
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description="odd17 mail benchmark")
    parser.add_argument("n", nargs="?", type=int, default=1000, help="messages")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds (the figures are their medians)")
    json_option(parser)
    args = parser.parse_args()
    n, repeats = args.n, args.repeats
    now = dt.datetime.now(dt.UTC)
    port = free_port()
    context = multiprocessing.get_context("fork")
    stop, counts = context.Event(), context.Queue()
    # The SMTP server in a process of its own, as a real one would be (in the same process it
    # would compete with the dispatcher for the GIL).
    server = context.Process(target=serve, args=(port, stop, counts))
    server.start()
    wait_for_port(port)
    renderings: list[float] = []
    sendings: list[float] = []
    cpus: list[float] = []
    try:
        for r in range(repeats):  # distinct keys per round: every message is a new one
            items = [(EVENTS[i % len(EVENTS)], f"porteur{i}@example.org", f"bench:{r}:{i}")
                     for i in range(n)]
            renderings.append(render_all(items, now))
            sendings.append(send_all(items, now, port, cpus))
    finally:
        stop.set()
        received = counts.get(timeout=30)
        server.join()
    assert received == n * repeats, (received, n * repeats)
    rendering, sending = median(renderings), median(sendings)
    print(f"odd17 mail benchmark: {n} messages, 8 events, SMTP on loopback (aiosmtpd), "
          f"median of {repeats} interleaved rounds")
    print(f"  rendering alone (subject, text, HTML, MIME)  {rendering:6.2f} s  "
          f"{n / rendering:8,.0f} messages/s  ratio 1.00")
    print(f"  outbox -> dispatcher -> SMTP -> marked sent   {sending:6.2f} s  "
          f"{n / sending:8,.0f} messages/s  ratio {sending / rendering:.2f}")
    cpu = median(cpus) * 1000 / n
    print(f"  dispatcher CPU (all threads)                {cpu:6.2f} ms a message")
    write_json(args.json, "mail", [rate_figure(
        "mail.dispatch", f"outbox -> dispatcher -> SMTP -> sent, {n:,} messages", n, sending,
        rendering, "messages/s", "rendering alone", ">= 400/s", n / sending >= 400)],
        messages=n, rounds=repeats)


if __name__ == "__main__":
    main()
