"""A process asking for sign-in links, started in step with siblings (tests/test_signin_race.py):
``python -m tests.signin_race_worker GO_FILE PLAN_JSON``. The plan is a list of addresses and a
client; it waits for GO_FILE, asks for a link for each address in turn through the real use case
(its own unit of work each) and prints one JSON line per request: address, accepted or not."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from odd17.db import get_engine
from odd17.services.signin import AccountPolicy, RateLimited, request_sign_in
from odd17.uow import Context, open_uow


def main() -> None:
    go, plan = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    policy = AccountPolicy(base_url="http://127.0.0.1:8017",
                           session_lifetime=dt.timedelta(hours=1), max_per_address=2,
                           max_per_client=plan["per_client"], window=dt.timedelta(hours=1),
                           totp_required_for_staff=False)
    engine = get_engine()
    context = Context.from_settings("test:race")
    while not go.exists():
        time.sleep(0.01)
    for address in plan["addresses"]:
        try:
            with open_uow(engine, context) as uow:
                request_sign_in(uow, policy, address, plan["client"])
            accepted = True
        except RateLimited:
            accepted = False
        print(json.dumps({"address": address, "accepted": accepted}), flush=True)


if __name__ == "__main__":
    main()
