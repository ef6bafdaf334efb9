"""Open-data exports of awarded grants (README, « For the finance officer »): SCDL Subventions
2.1.1 (CSV) and a 360Giving 1.4 data package (JSON). Cancelled grants are not published."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from stdnum.fr import siret as siret_checker

from models import Application, DomainError, Fund, Grant, Status
from rules.eligibility import RNA_RE
from rules.geography import region_of
from rules.money import as_str
from rules.tranches import add_months

if TYPE_CHECKING:
    from odd17.uow import UnitOfWork

SCDL_COLUMNS = [
    "nomAttribuant", "idAttribuant", "dateConvention", "referenceDecision", "nomBeneficiaire",
    "idBeneficiaire", "rnaBeneficiaire", "objet", "montant", "nature", "conditionsVersement",
    "datesPeriodeVersement", "idRAE", "notificationUE", "pourcentageSubvention",
    "dispositifAide",
]
_SCDL_NATURES = ("aide en numéraire", "aide en nature", "aide en numéraire;aide en nature",
                 "aide en nature;aide en numéraire")
_SCDL_PERIOD = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:/(\d{4}-\d{2}-\d{2}))?$")
_SCDL_AMOUNT = re.compile(r"^\d+(\.\d+)?$")  # a number, the point as decimal separator


def _published(session: Session) -> list[Grant]:
    return list(session.scalars(
        select(Grant).join(Application)
        .where(Application.status.in_((Status.approved, Status.active, Status.closed)))
        .options(selectinload(Grant.tranches)).order_by(Grant.id)
    ))


def _fund(session: Session) -> Fund:
    fund = session.scalars(select(Fund).order_by(Fund.id)).first()
    if fund is None:
        raise DomainError("aucun fonds configuré : lancez « odd17 init »")
    return fund


def scdl_rows(uow: UnitOfWork) -> list[dict[str, str]]:
    fund = _fund(uow.session)
    nature = uow.config.open_data.convention_nature
    rows = []
    for grant in _published(uow.session):
        app = grant.application
        lead = app.document["lead"]
        dues = [t.due_on for t in grant.tranches]
        rows.append({
            "nomAttribuant": fund.name,
            "idAttribuant": fund.siret,
            "dateConvention": grant.approved_at.date().isoformat(),
            "referenceDecision": app.reference,
            "nomBeneficiaire": lead["name"],
            # as given: a bad identifier is refused by scdl_problems, never silently dropped
            "idBeneficiaire": lead.get("siret") or "",
            "rnaBeneficiaire": lead.get("rna") or "",
            "objet": app.title[:256],
            "montant": as_str(grant.awarded),
            "nature": nature,
            "conditionsVersement": "échelonné" if len(dues) > 1 else "unique",
            "datesPeriodeVersement": f"{min(dues).isoformat()}/{max(dues).isoformat()}"
            if len(dues) > 1 else dues[0].isoformat(),
            "idRAE": "",
            "notificationUE": "non",
            "pourcentageSubvention": "1.00",  # one beneficiary per grant: the lead
            "dispositifAide": "",
        })
    return rows


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))


def _siret_problem(column: str, value: str) -> str | None:
    if not re.fullmatch(r"\d{14}", value):
        return f"{column} « {value} » n'est pas un SIRET (14 chiffres)"
    if not siret_checker.is_valid(value):
        return f"{column} « {value} » : somme de contrôle du SIRET invalide"
    return None


def scdl_problems(row: dict[str, str]) -> list[str]:
    """What makes a row invalid under SCDL Subventions 2.1.1: the schema's constraints and its
    custom checks (french-siret-value on idAttribuant and idBeneficiaire, one-of-required on
    idBeneficiaire/rnaBeneficiaire), which a plain Table Schema validator does not run."""
    problems = []
    for column in ("nomAttribuant", "nomBeneficiaire", "objet", "conditionsVersement"):
        if not row[column].strip():
            problems.append(f"{column} vide")
    for column in ("idAttribuant", "idBeneficiaire"):
        if row[column] or column == "idAttribuant":
            problems.append(_siret_problem(column, row[column]) or "")
    if not row["idBeneficiaire"] and not row["rnaBeneficiaire"]:
        problems.append("ni idBeneficiaire (SIRET) ni rnaBeneficiaire (RNA) : il en faut un")
    if row["rnaBeneficiaire"] and not RNA_RE.match(row["rnaBeneficiaire"]):
        problems.append(f"rnaBeneficiaire « {row['rnaBeneficiaire']} » : W suivi de 9 chiffres "
                        "attendu")
    if not _is_date(row["dateConvention"]):
        problems.append(f"dateConvention « {row['dateConvention']} » : date AAAA-MM-JJ attendue")
    period = _SCDL_PERIOD.match(row["datesPeriodeVersement"])
    if not period or not all(_is_date(d) for d in period.groups() if d):
        problems.append(f"datesPeriodeVersement « {row['datesPeriodeVersement']} » : date ou "
                        "période AAAA-MM-JJ/AAAA-MM-JJ attendue")
    try:
        amount = Decimal(row["montant"]) if _SCDL_AMOUNT.match(row["montant"]) else None
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a literal
        amount = None
    if amount is None or amount <= 0:
        problems.append(f"montant « {row['montant']} » : montant positif attendu")
    if len(row["objet"]) > 256 or len(row["conditionsVersement"]) > 256:
        problems.append("objet ou conditionsVersement : 256 caractères au plus")
    if row["nature"] not in _SCDL_NATURES:
        problems.append(f"nature « {row['nature']} » non prévue par le schéma")
    if len(row["idRAE"]) > 5:
        problems.append(f"idRAE « {row['idRAE']} » : 5 caractères au plus")
    if row["notificationUE"] not in ("oui", "non"):
        problems.append(f"notificationUE « {row['notificationUE']} » : oui ou non")
    share = Decimal(row["pourcentageSubvention"]) \
        if _SCDL_AMOUNT.match(row["pourcentageSubvention"]) else None
    if share is None or not Decimal("0.01") <= share <= 1:
        problems.append(f"pourcentageSubvention « {row['pourcentageSubvention']} » : entre 0.01 "
                        "et 1")
    return [p for p in problems if p]


def write_scdl(uow: UnitOfWork, path: Path) -> int:
    """Write the SCDL file, or nothing at all: a row the schema would refuse stops the export
    with every offending grant named."""
    rows = scdl_rows(uow)
    invalid = [f"{row['referenceDecision']} : {' ; '.join(problems)}"
               for row in rows if (problems := scdl_problems(row))]
    if invalid:
        raise DomainError(f"export SCDL refusé, aucun fichier écrit : {len(invalid)} "
                          "subvention(s) ne respectent pas le schéma SCDL Subventions 2.1.1\n"
                          + "\n".join(f"  - {line}" for line in invalid))
    _write(path, lambda f: _csv(f, rows))
    return len(rows)


def _csv(handle: Any, rows: list[dict[str, str]]) -> None:
    writer = csv.DictWriter(handle, fieldnames=SCDL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _org_id(siret: str | None, rna: str | None) -> str:
    if siret and siret_checker.is_valid(siret):
        return f"FR-SIRET-{siret}"
    return f"FR-RNA-{rna}" if rna else "FR-UNKNOWN"


def giving360(uow: UnitOfWork) -> dict[str, Any]:
    """The 360Giving package; ``dateModified`` and ``issued`` are the unit of work's time."""
    config, now = uow.config, uow.now
    fund = _fund(uow.session)
    funder = {"id": _org_id(fund.siret, None), "name": config.open_data.funder_name}
    modified = now.replace(microsecond=0).isoformat()
    grants = []
    for grant in _published(uow.session):
        app = grant.application
        doc = app.document
        lead = doc["lead"]
        start = dt.date.fromisoformat(doc["start_date"])
        months = int(doc["duration_months"])
        grants.append({
            "id": f"{config.open_data.grant_prefix}-{app.reference}",
            "title": app.title,
            "description": doc.get("summary") or app.title,
            "currency": "EUR",
            # 360Giving wants JSON numbers: converted from Decimal at the very last step
            # (exact: two-decimal amounts below 10**13 round-trip through a double).
            "amountAppliedFor": float(app.requested_amount),
            "amountAwarded": float(grant.awarded),
            "amountDisbursed": float(grant.disbursed),
            "awardDate": grant.approved_at.date().isoformat(),
            "plannedDates": [{"startDate": start.isoformat(),
                              "endDate": add_months(start, months).isoformat(),
                              "duration": months}],
            "recipientOrganization": [{"id": _org_id(lead.get("siret"), lead.get("rna")),
                                       "name": lead["name"]}],
            "fundingOrganization": [funder],
            "beneficiaryLocation": [{"name": region_of(doc["territory"]["department"])
                                     or doc["territory"].get("region")
                                     or doc["territory"]["department"],
                                     "geoCode": doc["territory"]["department"],
                                     "geoCodeType": "DEP"}],
            "classifications": [c.model_dump() for c in config.open_data.classifications],
            "dateModified": modified,
        })
    if not grants:
        raise DomainError("aucune subvention attribuée à publier (360Giving exige au moins une "
                          "subvention)")
    return {
        "version": "1.4",
        "title": f"{config.fund.name} — subventions attribuées",
        "description": "Subventions du Fonds ODD 17 aux alliances d'intérêt général",
        "issued": now.date().isoformat(),
        "grants": grants,
    }


def write_360giving(uow: UnitOfWork, path: Path) -> int:
    package = giving360(uow)
    _write(path, lambda f: json.dump(package, f, ensure_ascii=False, indent=2))
    return len(package["grants"])


def _write(path: Path, fill: Any) -> None:
    """Write through a temporary file and rename: never a half-written export."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            fill(handle)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DomainError(f"{path} : écriture impossible ({exc.strerror})") from exc
