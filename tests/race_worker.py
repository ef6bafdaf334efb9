"""A process running odd17 CLI commands one after the other, started in step with siblings:
``python -m tests.race_worker GO_FILE COMMANDS_JSON``. It waits for GO_FILE to exist, then runs
each command (a list of arguments) through the real CLI in this process (one process start
for many commands) and prints one JSON line per command: arguments, exit code, output."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from odd17.cli import app


def main() -> None:
    go, commands = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    runner = CliRunner()
    while not go.exists():
        time.sleep(0.01)
    for args in commands:
        result = runner.invoke(app, args)
        crash = "" if result.exception is None or isinstance(result.exception, SystemExit) \
            else repr(result.exception)
        print(json.dumps({"args": args, "code": result.exit_code,
                          "output": result.stdout + result.stderr + crash}), flush=True)


if __name__ == "__main__":
    main()
