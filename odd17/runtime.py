"""Who is acting and when: stamped on every history row."""

from __future__ import annotations

import datetime as dt
import getpass
import os

from odd17.settings import get_settings


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def actor(channel: str) -> str:
    """``ODD17_ACTOR`` when set (e.g. the manager's email), else ``channel:login``."""
    configured = get_settings().actor
    if configured:
        return configured
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{channel}:{login}"
