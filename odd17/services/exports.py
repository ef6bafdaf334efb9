"""Open-data exports of awarded grants (DESIGN.md §10): SCDL Subventions 2.1.1 (CSV) and a
360Giving 1.4 data package (JSON). Cancelled grants are not published."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from stdnum.fr import siret as siret_checker

from models import Application, DomainError, Fund, Grant, Status
from odd17.settings import FundConfig
from rules.money import as_str
from rules.tranches import add_months

SCDL_COLUMNS = [
    "nomAttribuant", "idAttribuant", "dateConvention", "referenceDecision", "nomBeneficiaire",
    "idBeneficiaire", "rnaBeneficiaire", "objet", "montant", "nature", "conditionsVersement",
    "datesPeriodeVersement", "idRAE", "notificationUE", "pourcentageSubvention",
    "dispositifAide",
]
_SCDL_RNA = re.compile(r"^W\d{9}$")  # SCDL's pattern: digits only, stricter than the RNA rule


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


def scdl_rows(session: Session, config: FundConfig) -> list[dict[str, str]]:
    fund = _fund(session)
    rows = []
    for grant in _published(session):
        app = grant.application
        lead = app.document["lead"]
        siret = lead.get("siret") if siret_checker.is_valid(lead.get("siret") or "") else ""
        rna = lead.get("rna") or ""
        dues = [t.due_on for t in grant.tranches]
        rows.append({
            "nomAttribuant": fund.name,
            "idAttribuant": fund.siret,
            "dateConvention": grant.approved_at.date().isoformat(),
            "referenceDecision": app.reference,
            "nomBeneficiaire": lead["name"],
            "idBeneficiaire": siret or "",
            "rnaBeneficiaire": rna if _SCDL_RNA.match(rna) else "",
            "objet": app.title[:256],
            "montant": as_str(grant.awarded),
            "nature": config.open_data.convention_nature,
            "conditionsVersement": "échelonné" if len(dues) > 1 else "unique",
            "datesPeriodeVersement": f"{min(dues).isoformat()}/{max(dues).isoformat()}"
            if len(dues) > 1 else dues[0].isoformat(),
            "idRAE": "",
            "notificationUE": "non",
            "pourcentageSubvention": "1.00",  # one beneficiary per grant: the lead
            "dispositifAide": "",
        })
    return rows


def write_scdl(session: Session, config: FundConfig, path: Path) -> int:
    rows = scdl_rows(session, config)
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


def giving360(session: Session, config: FundConfig, now: dt.datetime) -> dict[str, Any]:
    fund = _fund(session)
    funder = {"id": _org_id(fund.siret, None), "name": config.open_data.funder_name}
    modified = now.replace(microsecond=0).isoformat()
    grants = []
    for grant in _published(session):
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
            "beneficiaryLocation": [{"name": doc["territory"]["region"],
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


def write_360giving(session: Session, config: FundConfig, path: Path,
                    now: dt.datetime) -> int:
    package = giving360(session, config, now)
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
