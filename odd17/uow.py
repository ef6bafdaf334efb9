"""The unit of work every use case runs in: one transaction, one clock reading, one actor, the
fund's configuration.

The caller (a CLI command, a flow task, a web request, a test) owns it: it opens one with
:func:`open_uow`, passes it to one or more use cases, and the block commits when it ends
normally or rolls back on any error, so nothing is half-written. A use case never commits, never
reads the clock, never asks who is acting and never reads the global settings: all four come
from the unit of work, so the same use case behaves the same from every entrypoint and a test
can fix the time.

Use cases that run several transactions (batches: one bad line never undoes the others) take a
:class:`Runner` instead, which opens one unit of work per batch with the same actor and the same
configuration. See docs/architecture.md, "Transactions".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, overload
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from odd17.runtime import utcnow
from odd17.settings import get_settings

if TYPE_CHECKING:
    from odd17.config import FundConfig


class _FundConfigField:
    """The ``config`` of a Context: the one given, else the configured one, read at first use
    (issue 12: a command that does not use the policy, ``odd17 list``, does not load it)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}"

    @overload
    def __get__(self, context: None, owner: type | None = None) -> None: ...

    @overload
    def __get__(self, context: object, owner: type | None = None) -> FundConfig: ...

    def __get__(self, context: object, owner: type | None = None) -> FundConfig | None:
        if context is None:  # the dataclass asking for the default: "not given"
            return None
        config: FundConfig | None = context.__dict__.get(self._slot)
        if config is None:
            from odd17.config import get_fund_config  # the rule-set models

            config = context.__dict__[self._slot] = get_fund_config()
        return config

    def __set__(self, context: object, config: FundConfig | None) -> None:
        context.__dict__[self._slot] = config


@dataclass(frozen=True)
class Context:
    """What a use case needs to know besides the database: who acts, the fund's policy, and
    the few deployment settings the domain uses (where finance alerts go, the display zone).
    ``config`` not given: the configured one (``get_fund_config()``), read when first used."""

    actor: str
    config: _FundConfigField = _FundConfigField()
    finance_email: str = "finance@fonds-odd17.example.org"
    timezone: str = "Europe/Paris"
    clock: Callable[[], dt.datetime] = field(default=utcnow, compare=False)

    @classmethod
    def from_settings(cls, actor: str, *, clock: Callable[[], dt.datetime] = utcnow,
                      config: FundConfig | None = None) -> Context:
        settings = get_settings()
        return cls(actor=actor, config=config,
                   finance_email=settings.finance_email, timezone=settings.timezone,
                   clock=clock)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self) -> dt.date:
        """Today in the fund's zone: a call opens, a tranche falls due, from local midnight."""
        return self.clock().astimezone(self.zone).date()

    @property
    def alert_threshold(self) -> Decimal:
        return self.config.disbursement.alert_threshold


@dataclass
class UnitOfWork:
    """One open transaction with its context; ``now`` is read once when it opens, so every row
    a use case writes in it carries the same time."""

    session: Session
    context: Context
    now: dt.datetime

    @property
    def today(self) -> dt.date:
        """The day of ``now`` in the fund's zone (see :meth:`Context.today`)."""
        return self.now.astimezone(self.context.zone).date()

    @property
    def actor(self) -> str:
        return self.context.actor

    @property
    def config(self) -> FundConfig:
        return self.context.config


@contextmanager
def open_uow(engine: Engine, context: Context) -> Iterator[UnitOfWork]:
    """One transaction: committed when the block ends normally, rolled back on any error."""
    session = Session(bind=engine, expire_on_commit=False)
    try:
        with session.begin():
            yield UnitOfWork(session=session, context=context, now=context.clock())
    finally:
        session.close()


@dataclass(frozen=True)
class Runner:
    """For use cases made of several transactions (a batch per transaction, a decision then its
    application): each :meth:`uow` is a new transaction with the same context."""

    engine: Engine
    context: Context

    def uow(self) -> AbstractContextManager[UnitOfWork]:
        return open_uow(self.engine, self.context)
