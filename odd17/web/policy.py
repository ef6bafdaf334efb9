"""Who may open each route of the portal: one rule per route name, enforced by
``deps.guard(name)`` and read by the authorisation matrix test (tests/test_web_auth.py), which
fails for a route that has no rule here."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from odd17.services.access import Role


class Who(StrEnum):
    public = "public"            # anybody, signed in or not
    totp_pending = "totp_pending"  # a session that waits for its TOTP code (and only it)
    signed_in = "signed_in"      # a full session; with ``roles``, one of them


@dataclass(frozen=True)
class Rule:
    who: Who
    roles: frozenset[Role] = field(default_factory=frozenset)  # empty: any role


PUBLIC = Rule(Who.public)
SIGNED_IN = Rule(Who.signed_in)

ROUTE_POLICY: dict[str, Rule] = {
    "home": PUBLIC,
    "sign_in_form": PUBLIC,
    "sign_in_request": PUBLIC,
    "sign_in_link": PUBLIC,
    "sign_in_confirm": PUBLIC,
    "totp_form": Rule(Who.totp_pending),
    "totp_submit": Rule(Who.totp_pending),
    "sign_out": SIGNED_IN,
    "sign_out_everywhere": SIGNED_IN,
    "my_space": SIGNED_IN,
}
