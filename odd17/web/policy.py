"""Who may open each route of the portal: one rule per route name, enforced by
``deps.guard(name)`` and read by the authorisation matrix test (tests/test_web_auth.py), which
fails for a route that has no rule here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from odd17.services import access
from odd17.services.access import Principal, Role


class Who(StrEnum):
    public = "public"            # anybody, signed in or not
    totp_pending = "totp_pending"  # a session that waits for its TOTP code (and only it)
    any_session = "any_session"  # a session, waiting for its code or not (to sign out)
    signed_in = "signed_in"      # a full session; with ``roles``, one of them


@dataclass(frozen=True)
class Rule:
    who: Who
    roles: frozenset[Role] = field(default_factory=frozenset)  # empty: any role
    # the use case's own authorisation function (odd17/services/access.py), for signed_in
    allows: Callable[[Principal | None], bool] | None = None

    def permits(self, principal: Principal) -> bool:
        """Whether a signed-in ``principal`` passes this rule (else 403)."""
        if self.roles and not access.has_any(principal, self.roles):
            return False
        return self.allows is None or self.allows(principal)


PUBLIC = Rule(Who.public)

ROUTE_POLICY: dict[str, Rule] = {
    "home": PUBLIC,
    "sign_in_form": PUBLIC,
    "sign_in_request": PUBLIC,
    "sign_in_link": PUBLIC,
    "sign_in_confirm": PUBLIC,
    "totp_form": Rule(Who.totp_pending),
    "totp_submit": Rule(Who.totp_pending),
    "sign_out": Rule(Who.any_session, allows=access.may_sign_out),
    "sign_out_everywhere": Rule(Who.signed_in, allows=access.may_sign_out),
    "my_space": Rule(Who.signed_in, allows=access.may_view_own_space),
}

# The applicant's space (odd17/web/applicant.py): applicants and prospects; each draft,
# application or file is then checked by its use case (404 if not theirs).
APPLICANT_SPACE = Rule(Who.signed_in, allows=access.may_use_applicant_space)
ROUTE_POLICY.update(dict.fromkeys((
    "open_calls", "draft_create", "draft_form", "draft_save", "draft_invite", "draft_uninvite",
    "attachment_add", "attachment_remove", "attachment_download", "application_view",
    "application_withdraw"), APPLICANT_SPACE))

# The fund manager's workspace (odd17/web/manager.py): the manager role only (admin is not a
# superset here: each rule names its roles).
MANAGER_SPACE = Rule(Who.signed_in, roles=frozenset({Role.manager}))
ROUTE_POLICY.update(dict.fromkeys((
    "manager_board", "manager_application", "manager_attachment", "manager_comment",
    "manager_assign_auto", "manager_assign_chosen", "manager_reevaluate_preview",
    "manager_reevaluate"),
    MANAGER_SPACE))
ROUTE_POLICY["manager_runs"] = MANAGER_SPACE  # the runs of the Prefect deployments
# The reviewer's and the committee's workspaces (odd17/web/reviewing.py): each application is
# then checked by its use case (404 when the reviewer is not designated or is recused).
REVIEWER_SPACE = Rule(Who.signed_in, roles=frozenset({Role.reviewer}))
COMMITTEE_SPACE = Rule(Who.signed_in, roles=frozenset({Role.committee}))
ROUTE_POLICY.update(dict.fromkeys(("review_list", "review_form", "review_save"), REVIEWER_SPACE))
ROUTE_POLICY.update(dict.fromkeys((
    "committee_session", "committee_decide", "committee_minutes", "committee_minutes_pdf"),
    COMMITTEE_SPACE))
# The finance workspace (odd17/web/finance.py): the finance officer only (admin is not a
# superset of the other roles here).
FINANCE_SPACE = Rule(Who.signed_in, roles=frozenset({Role.finance}))
ROUTE_POLICY.update(dict.fromkeys((
    "finance_home", "finance_tranches", "finance_pay", "finance_statement_form",
    "finance_statement", "finance_export_scdl", "finance_export_360giving"), FINANCE_SPACE))
# The administrator's workspace (odd17/web/admin.py): staff accounts only; admin is not a
# superset of the other roles (no other workspace lets it in), and the accounts use cases
# check the acting admin again.
ADMIN_SPACE = Rule(Who.signed_in, roles=frozenset({Role.admin}))
ROUTE_POLICY.update(dict.fromkeys((
    "admin_accounts", "admin_account_add", "admin_account_disable", "admin_account_enable",
    "admin_account_totp"), ADMIN_SPACE))
# « Mes jetons d'API » (odd17/web/api_tokens.py): the roles that can hold a personal API token
# (tokens.owner_role: staff, reviewers, committee members); each token is then the owner's
# own (404 for another's).
API_TOKENS = Rule(Who.signed_in, roles=frozenset({
    Role.manager, Role.finance, Role.admin, Role.reviewer, Role.committee}))
ROUTE_POLICY.update(dict.fromkeys(("api_tokens", "api_token_create", "api_token_revoke"),
                                  API_TOKENS))
ROUTE_POLICY.update(dict.fromkeys(("finance_ledger", "finance_ledger_csv"), FINANCE_SPACE))
