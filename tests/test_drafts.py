"""Drafts (issue 13): saved partial, shared with co-applicants, every change recorded, and
the same "not found" for anyone else."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from models import ConcurrentChange, DomainError, DraftChange, NotFound, OutboxMessage
from notifications.render import render
from odd17.services import drafts
from tests.applicant_helpers import LEAD, MEMBER, NOW, PUBLIC, STRANGER, uow
from tests.factories import application


def new_draft(engine: Engine, document: dict[str, Any] | None = None) -> int:
    with uow(engine) as u:
        return drafts.create_draft(u, LEAD, document=document)


def test_a_partial_draft_is_saved_and_each_change_records_its_fields(engine: Engine) -> None:
    draft = new_draft(engine, {"title": "Alliance"})
    later = NOW + dt.timedelta(hours=1)
    with uow(engine, later) as u:
        changed = drafts.save_draft(u, draft, LEAD, {"title": "Alliance", "lead": {"name": "A"},
                                                     "partners": [{"siret": "1"}]})
    assert changed == ["lead.name", "partners[0].siret"]
    with uow(engine) as u:
        assert drafts.save_draft(u, draft, LEAD, {"partners": [{"siret": "1"}],
                                                  "lead": {"name": "A"}, "title": "Alliance"}
                                 ) == []  # same content, other key order: nothing written
        view = drafts.load_draft(u, draft, LEAD)
    assert view["document"]["partners"] == [{"siret": "1"}] and view["version"] == 2
    assert [(c["version"], c["fields"]) for c in view["changes"]] == [
        (1, ["title"]), (2, ["lead.name", "partners[0].siret"])]
    assert view["updated_at"] == later.isoformat()


def test_diff_names_removed_and_retyped_fields() -> None:
    old = {"a": 1, "b": {"c": [1, 2]}, "d": "x", "e": []}
    new = {"a": 1.0, "b": {"c": [1]}, "e": [], "f": {}}
    assert drafts.diff_paths(old, new) == ["a", "f", "b.c[1]", "d"]


def test_history_is_append_only(engine: Engine) -> None:
    new_draft(engine, {"title": "x"})
    for statement in ("UPDATE draft_changes SET email = 'x'", "DELETE FROM draft_changes"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))


def test_only_the_lead_and_members_see_a_draft_and_others_get_not_found(
        engine: Engine) -> None:
    draft = new_draft(engine, {"title": "Secret"})
    with uow(engine) as u:
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC)
    for who in (STRANGER, "", "DIRECTION@passerelles.example.org.evil"):
        for attempt in (lambda u, w=who: drafts.load_draft(u, draft, w),
                        lambda u, w=who: drafts.save_draft(u, draft, w, {}),
                        lambda u, w=who: drafts.invite(u, draft, w, STRANGER,
                                                       public_url=PUBLIC)):
            with pytest.raises(NotFound) as refused, uow(engine) as u:
                attempt(u)
            with pytest.raises(NotFound) as missing, uow(engine) as u:
                drafts.load_draft(u, draft + 999, LEAD)
            assert str(refused.value) == str(missing.value)
    with uow(engine) as u:  # the address's case does not matter
        assert drafts.load_draft(u, draft, MEMBER.upper())["members"][0]["accepted"]
        with pytest.raises(NotFound):  # a member may edit but not invite
            drafts.invite(u, draft, MEMBER, STRANGER, public_url=PUBLIC)
    with uow(engine) as u:
        assert [d["role"] for d in drafts.list_drafts(u, MEMBER)] == ["member"]
        assert [d["title"] for d in drafts.list_drafts(u, LEAD)] == ["Secret"]
        assert drafts.list_drafts(u, STRANGER) == []


def test_invitation_email_links_to_the_draft_and_removal_revokes_access(
        engine: Engine) -> None:
    draft = new_draft(engine, {"title": "<script>alert(1)</script>"})
    with uow(engine) as u:
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC + "/")
        with pytest.raises(DomainError, match="déjà invité"):
            drafts.invite(u, draft, LEAD, MEMBER.upper(), public_url=PUBLIC)
        with pytest.raises(DomainError, match="adresse e-mail invalide"):
            drafts.invite(u, draft, LEAD, "pas une adresse", public_url=PUBLIC)
        with pytest.raises(DomainError, match="porteur"):
            drafts.invite(u, draft, LEAD, LEAD, public_url=PUBLIC)
    with uow(engine) as u:
        [msg] = u.session.scalars(select(OutboxMessage)).all()
    assert (msg.event, msg.recipient) == ("invitation_coapplicant", MEMBER)
    rendered = render(msg.event, msg.context, fund_name="Fonds ODD 17")
    assert f"{PUBLIC}/brouillons/{draft}" in rendered.text
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    with uow(engine) as u:
        drafts.save_draft(u, draft, MEMBER, {"title": "modifié"})
        drafts.remove_member(u, draft, LEAD, MEMBER)
    with pytest.raises(NotFound), uow(engine) as u:
        drafts.load_draft(u, draft, MEMBER)
    with pytest.raises(NotFound), uow(engine) as u:
        drafts.remove_member(u, draft, LEAD, MEMBER)


@pytest.mark.parametrize("document, message", [
    ({"title": "a\x00b"}, "title"),
    ({"partners": [{"name": "ok"}, {"name": "\x1b[31m"}]}, r"partners\[1\].name"),
    ({"ti\x07tle": "x"}, "contrôle"),
    ({"summary": "x" * (drafts.MAX_DOCUMENT_BYTES + 1)}, "trop volumineux"),
    ([1, 2], "objet JSON"),
    ({"amount": float("nan")}, "JSON"),
    ({"s": "\ud800"}, "contrôle"),
])
def test_hostile_drafts_are_refused_with_a_french_message(
        engine: Engine, document: Any, message: str) -> None:
    draft = new_draft(engine)
    with pytest.raises(DomainError, match=message), uow(engine) as u:
        drafts.save_draft(u, draft, LEAD, document)
    with uow(engine) as u:
        assert drafts.load_draft(u, draft, LEAD)["document"] == {}


def test_markup_and_long_text_are_kept_as_typed(engine: Engine) -> None:
    hostile = {"title": "<img src=x onerror=alert(1)> & « ' \" »", "summary": "é" * 50_000,
               "lead": {"name": "[bold red]rich[/]"}}
    draft = new_draft(engine, hostile)
    with uow(engine) as u:
        assert drafts.load_draft(u, draft, LEAD)["document"] == hostile


def test_a_stale_version_is_refused_naming_who_saved(engine: Engine) -> None:
    draft = new_draft(engine, {"title": "v1"})
    with uow(engine) as u:
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC)
        drafts.save_draft(u, draft, MEMBER, {"title": "v2"}, expected_version=1)
    with pytest.raises(ConcurrentChange, match=MEMBER), uow(engine) as u:
        drafts.save_draft(u, draft, LEAD, {"title": "v2 bis"}, expected_version=1)


def test_a_draft_needs_an_open_call(engine: Engine) -> None:
    with pytest.raises(NotFound, match="inconnu"), uow(engine) as u:
        drafts.create_draft(u, LEAD, call_id="nope")
    with pytest.raises(DomainError, match="aucun appel"), \
            uow(engine, dt.datetime(2050, 1, 1, tzinfo=dt.UTC)) as u:
        drafts.create_draft(u, LEAD)
    with uow(engine) as u:
        assert drafts.load_draft(u, drafts.create_draft(u, LEAD), LEAD)["document"] == {}


def test_a_complete_document_saves_as_is(engine: Engine) -> None:
    draft = new_draft(engine, application())
    with uow(engine) as u:
        assert len(u.session.scalars(select(DraftChange)).one().fields) > 20
        assert drafts.load_draft(u, draft, LEAD)["document"] == application()


def test_the_migration_goes_down_and_up_again(engine: Engine) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from odd17.services import setup

    new_draft(engine, {"title": "x"})
    tables = {"drafts", "draft_members", "draft_changes", "attachments"}
    cfg = setup.alembic_config()
    for target, present in (("0007_decision_outcome", False), ("head", True)):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if not present else command.upgrade)(cfg, target)
        engine.dispose()
        assert (tables <= set(inspect(engine).get_table_names())) is present
    test_history_is_append_only(engine)  # the triggers came back with the tables
