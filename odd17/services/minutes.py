"""The minutes of a committee session (procès-verbal, issue 14): the decisions recorded on one
day (in the fund's time zone), with who was present, who was recused and why, the amounts and
the motivations; as a read model (the printable page) and as a PDF.

The PDF is built with fpdf2 and the DejaVu Sans font (Debian's ``fonts-dejavu-core``), which
has every French letter; user text is written as plain text (never markup), its control
characters shown as ``<U+XXXX>``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from babel.dates import format_date
from fpdf import FPDF
from sqlalchemy import select

from models import Application, Decision, DecisionOutcome, DomainError, Fund, Recusal, Reviewer
from odd17.uow import UnitOfWork
from rules.money import as_str, eur
from rules.text import show_controls

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
OUTCOME_LABELS = {"approve": "accord", "reject": "refus", "defer": "report"}


class RecusedLine(TypedDict):
    email: str
    reason: str


class MinutesDecision(TypedDict):
    id: int
    reference: str
    title: str
    lead_name: str
    outcome: str
    outcome_label: str
    amount: str | None
    requested_amount: str
    motif: str
    present: list[str]          # who voted
    recused: list[RecusedLine]  # present but recused, and why
    recorded_by: str
    recorded_at: str            # local time, ISO
    state: str                  # « appliquée », « en attente », « refusée : … »


class Minutes(TypedDict):
    fund: str
    date: str                   # the session's day, ISO
    date_label: str             # « 3 décembre 2026 »
    present: list[str]          # every member present at one decision at least
    decisions: list[MinutesDecision]
    approved_total: str


def _bounds(uow: UnitOfWork, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=uow.context.zone)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


def _state(decision: Decision) -> str:
    if decision.error:
        return f"refusée : {decision.error}"
    return "appliquée" if decision.applied_at is not None else "en attente"


def minutes(uow: UnitOfWork, day: dt.date) -> Minutes:
    """The decisions recorded on ``day``, in the order they were taken."""
    session, zone = uow.session, uow.context.zone
    start, end = _bounds(uow, day)
    found = session.execute(
        select(Decision, Application).join(Application, Application.id ==
                                           Decision.application_id)
        .where(Decision.recorded_at >= start, Decision.recorded_at < end)
        .order_by(Decision.recorded_at, Decision.id)).all()
    reasons = {(app_id, email): reason for app_id, email, reason in session.execute(
        select(Recusal.application_id, Reviewer.email, Recusal.reason)
        .join(Reviewer, Reviewer.id == Recusal.reviewer_id)
        .where(Recusal.application_id.in_([a.id for _, a in found]))).tuples()}
    decisions: list[MinutesDecision] = []
    present: set[str] = set()
    total = Decimal(0)
    for decision, app in found:
        present.update(decision.present, decision.recused)
        if decision.outcome == DecisionOutcome.approve and decision.applied_at is not None:
            total += decision.amount or 0
        decisions.append(MinutesDecision(
            id=decision.id, reference=app.reference, title=app.title,
            lead_name=app.document["lead"]["name"], outcome=decision.outcome.value,
            outcome_label=OUTCOME_LABELS[decision.outcome.value],
            amount=as_str(decision.amount) if decision.amount is not None else None,
            requested_amount=as_str(app.requested_amount), motif=decision.motif or "",
            present=list(decision.present),
            recused=[RecusedLine(email=e, reason=reasons.get((app.id, e), ""))
                     for e in decision.recused],
            recorded_by=decision.recorded_by,
            recorded_at=decision.recorded_at.astimezone(zone).isoformat(timespec="minutes"),
            state=_state(decision)))
    fund = session.scalars(select(Fund.name).order_by(Fund.id).limit(1)).first() or ""
    return Minutes(fund=fund, date=day.isoformat(),
                   date_label=format_date(day, format="long", locale="fr_FR"),
                   present=sorted(present), decisions=decisions, approved_total=as_str(total))


def _font_dir() -> Path:
    for folder in FONT_DIRS:
        if (folder / "DejaVuSans.ttf").is_file() and (folder / "DejaVuSans-Bold.ttf").is_file():
            return folder
    raise DomainError("police DejaVu Sans introuvable (paquet Debian fonts-dejavu-core) : "
                      "le procès-verbal PDF ne peut pas être produit")


def _lines(m: MinutesDecision) -> list[str]:
    amount = eur(Decimal(m["amount"])) if m["amount"] else "—"
    lines = [f"Porteur : {m['lead_name']}",
             f"Décision : {m['outcome_label']} — montant accordé : {amount} "
             f"(demandé : {eur(Decimal(m['requested_amount']))})",
             f"Votants : {', '.join(m['present']) or '—'}"]
    lines += [f"Récusé : {r['email']} — {r['reason']}" for r in m["recused"]]
    if m["motif"]:
        lines.append(f"Motivation : {m['motif']}")
    lines.append(f"Enregistrée par {m['recorded_by']} à {m['recorded_at'][11:16]} ; "
                 f"{m['state']}")
    return lines


def minutes_pdf(m: Minutes, *, created: dt.datetime) -> bytes:
    """The minutes as a PDF (A4). ``created``: the document's date (the unit of work's now)."""
    folder = _font_dir()
    pdf = FPDF(format="A4")
    pdf.set_creation_date(created)
    pdf.set_title(f"Procès-verbal du comité du {m['date_label']}")
    pdf.add_font("DejaVu", "", str(folder / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(folder / "DejaVuSans-Bold.ttf"))
    pdf.add_page()

    def write(text: str, size: int = 10, style: str = "") -> None:
        pdf.set_font("DejaVu", style, size)
        pdf.multi_cell(0, size * 0.55, show_controls(text), new_x="LMARGIN", new_y="NEXT")

    write(f"{m['fund']} — procès-verbal du comité", 15, "B")
    write(f"Séance du {m['date_label']}", 12)
    write(f"Membres présents : {', '.join(m['present']) or '—'}")
    write(f"Total accordé : {eur(Decimal(m['approved_total']))}")
    for d in m["decisions"]:
        pdf.ln(3)
        write(f"{d['reference']} — {d['title']}", 11, "B")
        for line in _lines(d):
            write(line)
    if not m["decisions"]:
        write("Aucune décision enregistrée ce jour.")
    return bytes(pdf.output())
