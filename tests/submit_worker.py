"""A process submitting one review as the portal does (``reviewing.submit``):
``python -m tests.submit_worker REFERENCE EMAIL``, on ODD17_DATABASE_URL. Prints one JSON
line: ``{"ok": score}`` or ``{"refused": French reason}``."""

from __future__ import annotations

import json
import sys

from models import DomainError
from odd17.db import get_engine
from odd17.services import reviewing
from odd17.uow import Context, open_uow


def main() -> None:
    reference, email = sys.argv[1], sys.argv[2]
    try:
        with open_uow(get_engine(), Context.from_settings(f"web:{email}")) as uow:
            answer = {"ok": str(reviewing.submit(uow, reference, email))}
    except DomainError as exc:
        answer = {"refused": str(exc)}
    print(json.dumps(answer, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
