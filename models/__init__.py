"""SQLAlchemy models of odd17, the lifecycle and the invariants they keep."""

from models.application import Application, EligibilityEvaluation, Organisation, StatusChange
from models.base import Base
from models.errors import ConcurrentChange, DomainError, IllegalTransition, NotFound
from models.fund import Call, Fund, ReferenceCounter
from models.lifecycle import TRANSITIONS, Status, check_transition

__all__ = [
    "TRANSITIONS",
    "Application",
    "Base",
    "Call",
    "ConcurrentChange",
    "DomainError",
    "EligibilityEvaluation",
    "Fund",
    "IllegalTransition",
    "NotFound",
    "Organisation",
    "ReferenceCounter",
    "Status",
    "StatusChange",
    "check_transition",
]
