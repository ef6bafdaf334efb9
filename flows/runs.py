"""The last runs of odd17's flows as Prefect's server recorded them (the fund manager's page
« Exécutions », issue 14): plain dataclasses, so that the web portal shows them without
touching Prefect's objects.

Read with Prefect's own client, under one overall deadline and without the client's retries
(its back-off would make a page wait for minutes): a server that is down, slow or not Prefect
gives a short French sentence, never an exception. No server configured (Prefect would start
its ephemeral one): nothing is started from a web request; the page says so."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

LIMIT = 50
TIMEOUT_SECONDS = 3.0
# The flows `odd17 serve` deploys (flows/deployments.py) and the demo calls in process.
FLOW_NAMES = ("intake", "eligibility", "review", "disbursement", "outbox")

# Prefect's state types, and the names of some states of those types, in French.
STATE_LABELS = {
    "SCHEDULED": "planifiée", "PENDING": "en attente", "RUNNING": "en cours",
    "COMPLETED": "terminée", "FAILED": "en échec", "CANCELLED": "annulée",
    "CRASHED": "interrompue (plantage)", "PAUSED": "en pause", "CANCELLING": "en annulation",
}
STATE_NAME_LABELS = {
    "Late": "en retard", "AwaitingRetry": "en attente d'une nouvelle tentative",
    "Retrying": "nouvelle tentative", "TimedOut": "délai dépassé", "Cached": "terminée (cache)",
    "Suspended": "suspendue", "AwaitingConcurrencySlot": "en attente d'un créneau",
}
FAILED_TYPES = frozenset({"FAILED", "CRASHED"})


@dataclass(frozen=True)
class FlowRunRow:
    """One flow run: what the page shows of it."""
    id: str
    name: str
    flow: str
    deployment: str | None  # None: called in process (the demo), not by a deployment
    state: str               # in French
    state_type: str          # Prefect's type, lower case (the page's CSS class)
    failed: bool
    message: str | None      # the state's message (why it failed)
    expected: dt.datetime | None
    started: dt.datetime | None
    ended: dt.datetime | None
    duration: dt.timedelta | None
    link: str | None         # its page in Prefect's UI


@dataclass(frozen=True)
class RecentRuns:
    runs: list[FlowRunRow]
    ui_url: str | None   # Prefect's UI, when a server is configured
    api_url: str | None  # shown without any credentials
    problem: str | None  # why no runs could be read, in French


def without_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part, fit to show or to link to."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _settings() -> Any:
    """Prefect's settings for this read. The process environment wins: `odd17 serve` sets
    PREFECT_API_URL once its server is up, after Prefect read its settings at import (and the
    portal's threads see only those)."""
    from prefect.settings import Settings, get_current_settings

    current = get_current_settings()
    wanted = os.environ.get("PREFECT_API_URL")
    if wanted and wanted != current.api.url:
        return Settings()  # read afresh from the environment (and the profile)
    return current


def state_label(state_type: str, state_name: str | None) -> str:
    return STATE_NAME_LABELS.get(state_name or "") or STATE_LABELS.get(state_type, state_type)


def recent_runs(limit: int = LIMIT, timeout: float | None = None,
                now: dt.datetime | None = None) -> RecentRuns:
    """The last ``limit`` runs of odd17's flows whose start was due by ``now`` (upcoming
    scheduled runs left out; late ones kept), the most recent first, read within ``timeout``
    seconds in all (default TIMEOUT_SECONDS)."""
    timeout = TIMEOUT_SECONDS if timeout is None else timeout
    settings = _settings()
    api_url: str | None = settings.api.url
    if not api_url:
        return RecentRuns([], None, None, "Aucun serveur Prefect n'est configuré pour ce "
                          "portail (PREFECT_API_URL) : les exécutions ne se lisent que sur le "
                          "serveur qu'utilise « odd17 serve ».")
    ui = settings.ui_url
    ui_url = without_credentials(ui.rstrip("/")) if ui else None
    shown = without_credentials(api_url)
    when = now or dt.datetime.now(dt.UTC)
    try:
        rows = asyncio.run(asyncio.wait_for(_read(api_url, limit, timeout, when, ui_url),
                                            timeout))
    except Exception as exc:  # down, slow, refusing, not Prefect: the page still answers
        return RecentRuns([], ui_url, shown, _problem(exc, shown, timeout))
    return RecentRuns(rows, ui_url, shown, None)


def _problem(exc: Exception, shown: str, timeout: float) -> str:
    import httpx

    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        seconds = f"{timeout:g}".replace(".", ",")
        return (f"Le serveur Prefect ({shown}) n'a pas répondu en {seconds} secondes : "
                "réessayez dans un moment.")
    if isinstance(exc, httpx.HTTPStatusError):
        return (f"Le serveur Prefect ({shown}) a refusé la demande (réponse "
                f"{exc.response.status_code}) : vérifiez PREFECT_API_URL.")
    return (f"Le serveur Prefect ({shown}) est injoignable : est-il démarré ? "
            "(« odd17 serve » en démarre un.)")


async def _read(api_url: str, limit: int, timeout: float, now: dt.datetime,
                ui_url: str | None) -> list[FlowRunRow]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowFilter,
        FlowFilterId,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_CLIENT_MAX_RETRIES,
        temporary_settings,
    )

    with temporary_settings({PREFECT_API_URL: api_url, PREFECT_CLIENT_MAX_RETRIES: 0}):
        async with get_client(httpx_settings={"timeout": timeout}) as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_NAMES))),
                flow_run_filter=FlowRunFilter(
                    # validated: Prefect types it as its own DateTime, a datetime at runtime
                    expected_start_time=FlowRunFilterExpectedStartTime.model_validate(
                        {"before_": now})),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit)
            flow_ids = sorted({r.flow_id for r in runs}, key=str)
            deployment_ids = sorted({r.deployment_id for r in runs if r.deployment_id},
                                    key=str)
            flows = await client.read_flows(
                flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids))) if flow_ids else []
            deployments = await client.read_deployments(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids))
            ) if deployment_ids else []
    flow_names: dict[UUID, str] = {f.id: f.name for f in flows}
    deployment_names: dict[UUID, str] = {d.id: d.name for d in deployments}
    return [_row(run, flow_names, deployment_names, ui_url) for run in runs]


def _row(run: Any, flows: dict[UUID, str], deployments: dict[UUID, str],
         ui_url: str | None) -> FlowRunRow:
    state_type = run.state.type.value if run.state else "PENDING"
    state_name = run.state.name if run.state else None
    started, ended = run.start_time, run.end_time
    return FlowRunRow(
        id=str(run.id), name=run.name, flow=flows.get(run.flow_id, "?"),
        deployment=deployments.get(run.deployment_id, "?") if run.deployment_id else None,
        state=state_label(state_type, state_name), state_type=state_type.lower(),
        failed=state_type in FAILED_TYPES or state_name == "TimedOut",
        message=(run.state.message or None) if run.state else None,
        expected=run.expected_start_time, started=started, ended=ended,
        duration=ended - started if started and ended else None,
        link=f"{ui_url}/runs/flow-run/{run.id}" if ui_url else None)
