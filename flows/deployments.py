"""The deployments `odd17 serve` registers, with their schedules (README, « Running it for
real: `odd17 serve` »)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect.schedules import Cron

from flows.disbursement import disbursement_flow
from flows.eligibility import eligibility_flow
from flows.intake import intake_flow
from flows.outbox import outbox_flow
from flows.review import review_flow


def deployments(*, eligibility_minutes: float, review_minutes: float, outbox_seconds: float,
                nightly_cron: str, timezone: str = "Europe/Paris") -> list[Any]:
    """eligibility and review every few minutes, the outbox every minute, disbursement (tranches
    due, the envelope alert) nightly; intake on demand, with the paths as parameters."""
    return [
        intake_flow.to_deployment(name="odd17-intake", tags=["odd17"]),
        eligibility_flow.to_deployment(
            name="odd17-eligibility", tags=["odd17"],
            interval=dt.timedelta(minutes=eligibility_minutes)),
        review_flow.to_deployment(
            name="odd17-review", tags=["odd17"], interval=dt.timedelta(minutes=review_minutes)),
        outbox_flow.to_deployment(
            name="odd17-outbox", tags=["odd17"], interval=dt.timedelta(seconds=outbox_seconds)),
        disbursement_flow.to_deployment(name="odd17-disbursement", tags=["odd17"],
                                        schedule=Cron(nightly_cron, timezone=timezone)),
    ]
