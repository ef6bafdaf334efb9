"""The fund manager's page of the Prefect runs (/gestion/executions, flows/runs.py): flows run
on the session's Prefect test server, then the page lists them (a failed one shown as such,
run names escaped, a link to Prefect's UI); a server that is down, slow or absent gives a short
French sentence and the page still answers."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import Engine

from flows import runs
from flows.common import local_runs
from flows.outbox import outbox_flow
from flows.runs import recent_runs, without_credentials
from tests.webutil import STAFF, Clock, add_people, client, open_session, uow_at, with_cookie

HOSTILE_RUN = '<script>alert("run")</script>'


@flow(name="outbox", flow_run_name=HOSTILE_RUN, persist_result=False)
def broken_outbox() -> None:
    """A run of a flow named as odd17's, which fails: what a failed deployment run looks like
    on the server."""
    raise RuntimeError("le serveur SMTP a refusé la connexion")


def browser(engine: Engine, address: str = STAFF["manager"]) -> TestClient:
    clock = Clock()
    with uow_at(engine, clock) as uow:
        add_people(uow)
    return with_cookie(client(engine, clock), open_session(engine, clock, address)[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A real socket that takes connections and never answers (a Prefect server that hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"


def _row(html: str, run_id: str) -> str:
    """The table row of a run."""
    link = html.index(f"/runs/flow-run/{run_id}")
    return html[html.rindex("<tr>", 0, link):html.index("</tr>", link)]


@pytest.mark.usefixtures("prefect_server")
def test_the_page_lists_the_runs_just_made_failed_ones_visible(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # the page's short deadline is for people; a loaded test machine gets a longer one
    monkeypatch.setattr(runs, "TIMEOUT_SECONDS", 60.0)
    with local_runs():
        done = outbox_flow(return_state=True)
        failed = broken_outbox(return_state=True)
    assert done.is_completed() and failed.is_failed()
    done_id = str(done.state_details.flow_run_id)
    failed_id = str(failed.state_details.flow_run_id)

    answer = browser(engine).get("/gestion/executions")
    assert answer.status_code == 200
    html = answer.text
    assert "Le serveur Prefect" not in html and "Aucun serveur" not in html, html
    # both runs, the newest first, each linked to its page in Prefect's UI
    assert html.index(f"/runs/flow-run/{failed_id}") < html.index(f"/runs/flow-run/{done_id}")
    ui = re.search(r"<a href=\"(http://127\.0\.0\.1:\d+)\">Ouvrir l'interface de Prefect", html)
    assert ui, html
    assert f'href="{ui.group(1)}/runs/flow-run/{done_id}"' in html
    assert 'target="_blank"' not in html  # the same tab
    row = _row(html, failed_id)
    assert '<strong class="error">en échec</strong>' in row
    assert "le serveur SMTP a refusé la connexion" in row
    assert "appel direct" in row  # called in process, not by a deployment
    assert HOSTILE_RUN not in html and "&lt;script&gt;alert(&#34;run&#34;)" in html
    ok = _row(html, done_id)
    assert "terminée" in ok and "en échec" not in ok
    assert re.search(r"\d+,\d s|\d+ min \d\d s", ok)  # a duration


def test_an_unreachable_server_gives_a_french_sentence(engine: Engine,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()  # nobody listens there
    monkeypatch.setenv("PREFECT_API_URL", f"http://gestion:s3cret@127.0.0.1:{port}/api")
    answer = browser(engine).get("/gestion/executions")
    assert answer.status_code == 200
    assert f"Le serveur Prefect (http://127.0.0.1:{port}/api) est injoignable" in answer.text
    assert "s3cret" not in answer.text and "gestion:" not in answer.text
    # Prefect's UI is still offered: it may answer where the API did not
    assert f'<a href="http://127.0.0.1:{port}">' in answer.text


def test_a_server_that_never_answers_is_given_up_on(silent_server: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", silent_server)
    found = recent_runs(timeout=0.5)
    assert found.runs == []
    assert found.problem == (f"Le serveur Prefect ({silent_server}) n'a pas répondu en 0,5 "
                             "secondes : réessayez dans un moment.")


def test_without_a_configured_server_nothing_is_started_and_no_link(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings({PREFECT_API_URL: None}):
        found = recent_runs()
    assert found.ui_url is None and found.api_url is None and found.runs == []
    assert found.problem is not None and found.problem.startswith(
        "Aucun serveur Prefect n'est configuré")


def test_other_roles_do_not_see_the_page(engine: Engine) -> None:
    assert browser(engine, STAFF["finance"]).get("/gestion/executions").status_code == 403


@pytest.mark.parametrize(("url", "shown"), [
    ("http://u:p@h:4200/api", "http://h:4200/api"),
    ("https://token@prefect.example.org/api", "https://prefect.example.org/api"),
    ("http://[::1]:4200/api", "http://[::1]:4200/api"),
    ("http://a:b@[::1]:4200/api", "http://[::1]:4200/api"),
])
def test_credentials_are_never_shown(url: str, shown: str) -> None:
    assert without_credentials(url) == shown
