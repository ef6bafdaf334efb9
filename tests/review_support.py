"""Units of work for the review tests: a fixed actor and clock, the configured fund (or a
given rubric)."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager

from sqlalchemy import Engine

from odd17.settings import get_fund_config
from odd17.uow import Context, Runner, UnitOfWork
from rules.review import ReviewPolicy

NOW = dt.datetime(2026, 12, 3, 9, tzinfo=dt.UTC)


def runner(engine: Engine, *, actor: str = "t", now: dt.datetime = NOW,
           policy: ReviewPolicy | None = None) -> Runner:
    config = get_fund_config()
    if policy is not None:
        config = config.model_copy(update={"review": policy})
    return Runner(engine, Context(actor=actor, config=config, clock=lambda: now))


def uow(engine: Engine, *, actor: str = "t", now: dt.datetime = NOW,
        policy: ReviewPolicy | None = None) -> AbstractContextManager[UnitOfWork]:
    return runner(engine, actor=actor, now=now, policy=policy).uow()
