"""Domain errors: each carries a message fit to show a user as is."""


class DomainError(Exception):
    """A request the domain refuses; the message says what is wrong, in French."""


class IllegalTransition(DomainError):
    pass


class NotFound(DomainError):
    pass


class ConcurrentChange(DomainError):
    """Another process changed the same row first; retrying reads the new state."""
