"""SQLAlchemy models of odd17, the lifecycle and the invariants they keep."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Importing the package alone loads nothing: ``models.lifecycle`` (the statuses, which
# ``odd17 --help`` shows) comes without SQLAlchemy. Any name taken from ``models`` loads every
# table, as an eager import did, so the mapper registry is complete before any query.
if TYPE_CHECKING:
    from models.account import SignInRequest, SignInToken, StaffRole, User, WebSession
    from models.applicant import Attachment, AttachmentKind, Draft, DraftChange, DraftMember
    from models.application import Application, EligibilityEvaluation, Organisation, StatusChange
    from models.base import Base
    from models.errors import ConcurrentChange, DomainError, IllegalTransition, NotFound
    from models.fund import Call, Fund, ReferenceCounter
    from models.ledger import Balance, EntryKind, Grant, LedgerDay, LedgerEntry, Tranche
    from models.lifecycle import TRANSITIONS, Status, check_transition
    from models.outbox import MessageStatus, OutboxMessage
    from models.review import Decision, DecisionOutcome, Recusal, Review, Reviewer
    from models.staff import ApiToken, Comment

__all__ = [
    "TRANSITIONS",
    "ApiToken",
    "Application",
    "Attachment",
    "AttachmentKind",
    "Balance",
    "Base",
    "Call",
    "Comment",
    "ConcurrentChange",
    "Decision",
    "DecisionOutcome",
    "DomainError",
    "Draft",
    "DraftChange",
    "DraftMember",
    "EligibilityEvaluation",
    "EntryKind",
    "Fund",
    "Grant",
    "IllegalTransition",
    "LedgerDay",
    "LedgerEntry",
    "MessageStatus",
    "NotFound",
    "Organisation",
    "OutboxMessage",
    "Recusal",
    "ReferenceCounter",
    "Review",
    "Reviewer",
    "SignInRequest",
    "SignInToken",
    "StaffRole",
    "Status",
    "StatusChange",
    "Tranche",
    "User",
    "WebSession",
    "check_transition",
]

_SUBMODULES = ("account", "applicant", "application", "base", "errors", "fund", "ledger",
               "lifecycle", "outbox", "review", "staff")


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    for sub in _SUBMODULES:
        module = import_module(f"models.{sub}")
        globals().update({n: getattr(module, n) for n in __all__ if hasattr(module, n)})
    return globals()[name]
