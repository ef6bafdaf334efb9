"""`odd17 serve` starts a local Prefect server (a full one: the harness's ephemeral server runs
no scheduler), registers the deployments with their schedules, and a scheduled run completes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.smtp import free_port
from tests.test_cli import cli

ODD17 = str(Path(sys.executable).parent / "odd17")


def test_serve_registers_deployments_and_runs_them_on_schedule(db_url: str,
                                                               tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update({
        "PREFECT_HOME": str(tmp_path / "prefect"),  # a fresh server database
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "ODD17_DATABASE_URL": db_url, "ODD17_SERVE_OUTBOX_SECONDS": "5",
        "ODD17_MAIL_DIR": str(tmp_path / "mails"),
    })
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([ODD17, "serve", "--port", str(port), "--web-port", str(web_port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    completed: list = []
    home = ""
    names: set[str] = set()
    try:
        deadline = time.monotonic() + 240
        with temporary_settings({PREFECT_API_URL: url}):
            while time.monotonic() < deadline and not completed:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(2)
                try:
                    if not home:  # the web portal, served by the same process
                        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/",
                                                    timeout=5) as page:
                            home = page.read().decode()
                    with get_client(sync_client=True) as client:
                        names = {d.name for d in client.read_deployments()}
                        completed = client.read_flow_runs(
                            deployment_filter=DeploymentFilter(
                                name=DeploymentFilterName(any_=["odd17-outbox"])),
                            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                                type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))))
                except Exception:  # the server is still starting
                    continue
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert names >= {"odd17-intake", "odd17-eligibility", "odd17-review", "odd17-outbox",
                     "odd17-disbursement"}
    assert completed, "no scheduled outbox run completed: " + \
        (tmp_path / "serve.log").read_text()[-3000:]
    assert completed[0].auto_scheduled  # created by the scheduler, not by hand
    assert '<html lang="fr">' in home


def test_serve_stops_at_once_when_the_web_port_is_taken(db_url: str) -> None:
    """Before any Prefect server is started: one French line and exit 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web_port = taken.getsockname()[1]
        code, _, err = cli("serve", "--api-url", "http://127.0.0.1:9/api",
                           "--web-port", str(web_port))
    assert code == 2
    assert f"le portail web ne peut pas écouter sur 127.0.0.1:{web_port}" in err
    assert "Traceback" not in err
