"""Production: serve (the Prefect deployments, and a local Prefect server if none is given)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from odd17.cli import app
from odd17.cli._common import err, fail, ready_engine, user_errors


@app.command()
def serve(
    api_url: Annotated[str | None, typer.Option("--api-url", help="Serveur Prefect à "
                                                "utiliser (défaut : PREFECT_API_URL, sinon un "
                                                "serveur local démarré ici).")] = None,
    port: Annotated[int, typer.Option("--port", help="Port du serveur Prefect local.")] = 4200,
    web_host: Annotated[str, typer.Option("--web-host", help="Adresse d'écoute du portail "
                                          "web.")] = "127.0.0.1",
    web_port: Annotated[int, typer.Option("--web-port", min=0, max=65535,
                                          help="Port du portail web (0 : pas de portail)."
                                          )] = 8017,
) -> None:
    """Production : sert le portail web, enregistre les déploiements et leurs planifications,
    et les exécute."""
    import os
    import subprocess

    from prefect import serve as prefect_serve

    from flows.deployments import deployments
    from odd17.settings import get_settings, redact_url

    settings = get_settings()
    with user_errors():
        ready_engine()  # the application database exists and is up to date
    portal = _start_web(web_host, web_port) if web_port else None
    server = None
    url = api_url or os.environ.get("PREFECT_API_URL")
    if not url:
        url = f"http://127.0.0.1:{port}/api"
        err.print(f"Démarrage d'un serveur Prefect local sur {url}…")
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(url, server)
    os.environ["PREFECT_API_URL"] = url
    err.print(f"Serveur Prefect : {url} ; base : {redact_url(settings.database_url)}")
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: url}):
            prefect_serve(*deployments(
                eligibility_minutes=settings.serve_eligibility_minutes,
                review_minutes=settings.serve_review_minutes,
                outbox_seconds=settings.serve_outbox_seconds,
                nightly_cron=settings.serve_nightly_cron, timezone=settings.timezone))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if portal is not None:
            portal.stop()


def _start_web(host: str, port: int) -> Any:
    """The web portal in a thread of this process (bound before Prefect starts, so that a port
    already taken stops ``serve`` at once)."""
    from odd17.web.app import create_app
    from odd17.web.server import ThreadedServer

    try:
        portal = ThreadedServer(create_app(), host, port)
    except OSError as exc:
        fail(f"le portail web ne peut pas écouter sur {host}:{port} : {exc.strerror or exc} "
             "(--web-port 0 pour s'en passer)")
    portal.start()
    err.print(f"Portail web : {portal.url}/")
    return portal


def _wait_for(url: str, server: Any, seconds: float = 120) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            fail("le serveur Prefect local s'est arrêté au démarrage")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    server.terminate()
    fail(f"le serveur Prefect local ne répond pas sur {url}")


@app.command()
def web(
    host: Annotated[str, typer.Option("--host", help="Adresse d'écoute.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port d'écoute.")] = 8017,
) -> None:
    """Sert le portail web (candidats et équipe du fonds)."""
    import uvicorn

    from odd17.web.app import create_app

    with user_errors():
        ready_engine()
    err.print(f"Portail web : http://{host}:{port}/")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
