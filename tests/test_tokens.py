"""Personal API tokens: the secret shown once and stored hashed, scoped to the owner's role,
revoked once, refused when revoked or when the owner lost the role; the CLI."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import Engine, select, update

from models import ApiToken, DomainError, NotFound, Reviewer
from odd17.services import reviewers, tokens
from tests.review_support import NOW, uow
from tests.test_cli import cli

HOSTILE = "[bold red]jeton[/] <script>x</script> \u202e%s"


def people(engine: Engine) -> None:
    with uow(engine) as u:
        reviewers.add_reviewer(u, reviewers.ReviewerIn(name="R", email="r@eval.example.org"))
        reviewers.add_reviewer(u, reviewers.ReviewerIn(
            name="M", email="m@comite.example.org", committee=True, reviews=False))


def test_secret_once_hash_stored_scope_is_the_role(engine: Engine) -> None:
    people(engine)
    with uow(engine) as u:
        made = tokens.create(u, " R@Eval.example.org ", f"  {HOSTILE}  ")
        member = tokens.create(u, "m@comite.example.org", "export")
    secret, token = made["secret"], made["token"]
    assert secret.startswith("odd17_") and len(secret) > 40
    assert token["owner"] == "r@eval.example.org" and token["scope"] == "reviewer"
    assert token["name"] == HOSTILE and secret.startswith(token["prefix"])
    assert member["token"]["scope"] == "committee"
    with uow(engine) as u:
        row = u.session.scalars(select(ApiToken).where(ApiToken.id == token["id"])).one()
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in repr(tokens.list_tokens(u))
        assert [t["id"] for t in tokens.list_tokens(u, "m@comite.example.org")] == [
            member["token"]["id"]]
    with uow(engine) as u:
        who = tokens.authenticate(u, secret)
    assert who == {"token_id": token["id"], "owner": "r@eval.example.org", "scope": "reviewer"}
    with uow(engine) as u:
        assert tokens.list_tokens(u, "r@eval.example.org")[0]["last_used_at"] == \
            NOW.isoformat()


@pytest.mark.parametrize(("owner", "name", "message"), [
    ("personne@example.org", "x", "aucun rôle"),
    ("pas une adresse", "x", "adresse électronique invalide"),
    ("r@eval.example.org", "   ", "nom du jeton est obligatoire"),
    ("r@eval.example.org", "x" * 101, "trop long : 101"),
])
def test_bad_creations_refused(engine: Engine, owner: str, name: str, message: str) -> None:
    people(engine)
    with pytest.raises(DomainError, match=message), uow(engine) as u:
        tokens.create(u, owner, name)


def test_refused_when_unknown_revoked_or_role_lost(engine: Engine) -> None:
    people(engine)
    with uow(engine) as u:
        kept = tokens.create(u, "r@eval.example.org", "a")["secret"]
        revoked = tokens.create(u, "r@eval.example.org", "b")
        member = tokens.create(u, "m@comite.example.org", "c")["secret"]
    with uow(engine) as u:
        assert tokens.revoke(u, revoked["token"]["id"])["active"] is False
    with uow(engine) as u:
        with pytest.raises(DomainError, match="déjà révoqué"):
            tokens.revoke(u, revoked["token"]["id"])
        with pytest.raises(NotFound):
            tokens.revoke(u, 999)
        with pytest.raises(NotFound):  # someone else's, from the web
            tokens.revoke(u, revoked["token"]["id"], owner="m@comite.example.org")
    for bad in (revoked["secret"], kept + "x", kept[:-1], "", "odd17_", "x" * 500,
                kept.upper()):
        with pytest.raises(DomainError, match="jeton d'API invalide ou révoqué"), \
                uow(engine) as u:
            tokens.authenticate(u, bad)
    with uow(engine) as u:
        u.session.execute(update(Reviewer).where(Reviewer.email == "r@eval.example.org")
                          .values(active=False))
        u.session.execute(update(Reviewer).where(Reviewer.email == "m@comite.example.org")
                          .values(committee=False, reviews=True))  # another role now
    for secret in (kept, member):
        with pytest.raises(DomainError, match="invalide"), uow(engine) as u:
            tokens.authenticate(u, secret)


def test_cli_create_list_revoke(engine: Engine) -> None:
    people(engine)
    code, out, err = cli("tokens", "create", "r@eval.example.org", "--name", HOSTILE)
    assert code == 0, err
    assert "Secret (affiché une seule fois" in out and HOSTILE.replace("\u202e", "<U+202E>") in \
        " ".join(out.split())
    code, out, _ = cli("tokens", "create", "r@eval.example.org", "--name", "ci", "--json")
    created = json.loads(out)
    assert code == 0 and created["token"]["name"] == "ci"
    secret = created["secret"]
    code, out, _ = cli("tokens", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == ["ci", HOSTILE]
    assert secret not in out and "token_hash" not in out
    code, out, _ = cli("tokens", "list")
    assert code == 0 and secret not in out and "actif" in out
    code, out, _ = cli("tokens", "revoke", str(created["token"]["id"]), "--json")
    assert code == 0 and json.loads(out)["active"] is False
    code, _, err = cli("tokens", "revoke", str(created["token"]["id"]))
    assert code == 2 and "déjà révoqué" in err
    code, _, err = cli("tokens", "create", "inconnu@example.org", "--name", "x")
    assert code == 2 and "aucun rôle" in err and "Traceback" not in err
    code, _, err = cli("tokens", "revoke", "abc")
    assert code == 2
