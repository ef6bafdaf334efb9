"""SQLAlchemy models of odd17, the lifecycle and the invariants they keep."""

from models.application import Application, EligibilityEvaluation, Organisation, StatusChange
from models.base import Base
from models.errors import ConcurrentChange, DomainError, IllegalTransition, NotFound
from models.fund import Call, Fund, ReferenceCounter
from models.ledger import Balance, EntryKind, Grant, LedgerDay, LedgerEntry, Tranche
from models.lifecycle import TRANSITIONS, Status, check_transition
from models.outbox import MessageStatus, OutboxMessage
from models.review import Decision, DecisionOutcome, Recusal, Review, Reviewer

__all__ = [
    "TRANSITIONS",
    "Application",
    "Balance",
    "Base",
    "Call",
    "ConcurrentChange",
    "Decision",
    "DecisionOutcome",
    "DomainError",
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
    "Status",
    "StatusChange",
    "Tranche",
    "check_transition",
]
