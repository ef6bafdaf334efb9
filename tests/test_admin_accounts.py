"""The accounts use cases as the portal's admin calls them (``by``, odd17/services/accounts.py):
only an active admin acts, an admin can neither disable their own account nor take away its
admin role (so the fund keeps one), and two admins disabling each other at once leave one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select

from models import DomainError, NotFound, StaffRole, User
from odd17.services import accounts
from odd17.uow import UnitOfWork
from tests.test_staff_races import together
from tests.webutil import STAFF, Clock, open_session, uow_at

ADMIN, OTHER = STAFF["admin"], "admin2@fonds.example.org"
MANAGER = STAFF["manager"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def staff(engine: Engine, clock: Clock, *extra_admins: str) -> None:
    with uow_at(engine, clock) as uow:
        for role, address in STAFF.items():
            accounts.add_user(uow, address, role)
        for address in extra_admins:
            accounts.add_user(uow, address, "admin")


def state(engine: Engine, clock: Clock) -> dict[str, tuple[str, bool, bool]]:
    with uow_at(engine, clock) as uow:
        return {u.email: (u.role.value, u.disabled, u.totp_secret is not None)
                for u in uow.session.scalars(select(User))}


KEY = "clé de test des secrets TOTP, 32 caractères au moins"  # ODD17_SECRET_KEY

ACTIONS: dict[str, Callable[[UnitOfWork, str], object]] = {
    "add": lambda u, by: accounts.add_user(u, "nouveau@fonds.example.org", "finance", by=by),
    "disable": lambda u, by: accounts.disable_user(u, MANAGER, by=by),
    "enable": lambda u, by: accounts.enable_user(u, MANAGER, by=by),
    "totp": lambda u, by: accounts.enrol_totp(u, MANAGER, KEY, by=by),
    "list": lambda u, by: accounts.list_users(u, by=by),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_only_an_active_admin_acts(engine: Engine, clock: Clock, action: str) -> None:
    staff(engine, clock, OTHER)
    with uow_at(engine, clock) as uow:
        accounts.disable_user(uow, OTHER)  # the CLI's operator: no check
    before = state(engine, clock)
    for by in (MANAGER, STAFF["finance"], OTHER, "inconnu@fonds.example.org"):
        with pytest.raises(DomainError, match="seul un administrateur actif"), \
                uow_at(engine, clock) as uow:
            ACTIONS[action](uow, by)
    assert state(engine, clock) == before
    with uow_at(engine, clock) as uow:
        ACTIONS[action](uow, ADMIN.upper())  # the address as typed: compared lower-case


def test_an_admin_changes_the_others_not_their_own_admin_role(engine: Engine,
                                                              clock: Clock) -> None:
    staff(engine, clock, OTHER)
    open_session(engine, clock, MANAGER)  # a session the disabling closes
    with uow_at(engine, clock) as uow:
        assert accounts.add_user(uow, "Nouveau@Fonds.example.org", "finance", by=ADMIN)
        assert accounts.disable_user(uow, MANAGER, by=ADMIN) == 1  # its session closed
        assert accounts.enable_user(uow, MANAGER, by=ADMIN) is True
        assert accounts.enable_user(uow, MANAGER, by=ADMIN) is False  # already enabled
        secret, uri = accounts.enrol_totp(uow, MANAGER, KEY, by=ADMIN)
        assert secret in uri and uri.startswith("otpauth://totp/")
        assert not accounts.add_user(uow, OTHER, "manager", by=ADMIN)  # another admin: yes
    assert state(engine, clock)[OTHER] == ("manager", False, False)
    assert state(engine, clock)["nouveau@fonds.example.org"] == ("finance", False, False)
    assert state(engine, clock)[MANAGER] == ("manager", False, True)
    before = state(engine, clock)
    for refused in (lambda u: accounts.disable_user(u, ADMIN, by=ADMIN),
                    lambda u: accounts.disable_user(u, " Admin@Fonds.example.org", by=ADMIN),
                    lambda u: accounts.add_user(u, ADMIN, "manager", by=ADMIN)):
        with pytest.raises(DomainError, match="votre propre compte"), \
                uow_at(engine, clock) as uow:
            refused(uow)
    assert state(engine, clock) == before
    with uow_at(engine, clock) as uow:
        assert not accounts.add_user(uow, ADMIN, "admin", by=ADMIN)  # keeps the role: fine
        assert accounts.enrol_totp(uow, ADMIN, KEY, by=ADMIN)  # their own code: fine


def test_accounts_are_named_by_id_and_an_unknown_one_is_not_found(engine: Engine,
                                                                  clock: Clock) -> None:
    staff(engine, clock)
    with uow_at(engine, clock) as uow:
        rows = accounts.list_users(uow, by=ADMIN)
        assert {accounts.account_email(uow, r.id) for r in rows} == set(STAFF.values())
        assert "id" not in rows[0].as_json()  # the --json shape of `users list` unchanged
        with pytest.raises(NotFound):
            accounts.account_email(uow, max(r.id for r in rows) + 1)


def test_two_admins_disabling_each_other_at_once_leave_one(engine: Engine,
                                                           clock: Clock) -> None:
    staff(engine, clock, OTHER)
    for _ in range(5):
        results = together(engine, lambda u: accounts.disable_user(u, OTHER, by=ADMIN),
                           lambda u: accounts.disable_user(u, ADMIN, by=OTHER))
        won = [r for r in results if isinstance(r, int)]
        lost = [r for r in results if isinstance(r, DomainError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert "seul un administrateur actif" in str(lost[0])
        with uow_at(engine, clock) as uow:
            active = uow.session.scalars(select(User.email).where(
                User.role == StaffRole.admin, User.disabled.is_(False))).all()
            assert len(active) == 1
            accounts.add_user(uow, ADMIN, "admin")  # both active again for the next round
            accounts.add_user(uow, OTHER, "admin")
