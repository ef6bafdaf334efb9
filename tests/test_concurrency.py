"""Two `odd17 submit` processes at once: no reference skipped or reused, nothing twice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, func, select

from models import Application, Organisation, StatusChange
from odd17.db import unit_of_work
from tests.factories import jsonl, numbered

ODD17 = str(Path(sys.executable).parent / "odd17")


def test_concurrent_submits_number_without_gaps_or_duplicates(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    # Each process gets 60 documents of its own and 40 shared with the other, in batches of
    # 10 so that their transactions interleave many times.
    shared = [numbered(i) for i in range(40)]
    files = []
    for p in range(2):
        own = [numbered(1000 * (p + 1) + i) for i in range(60)]
        path = tmp_path / f"batch{p}.jsonl"
        path.write_text(jsonl(own + shared if p else shared + own))
        files.append(path)
    env = {**os.environ, "ODD17_DATABASE_URL": db_url, "ODD17_BATCH_SIZE": "10"}
    procs = [subprocess.Popen([ODD17, "submit", str(f), "--json"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    refs = {o["reference"] for r in results for o in r}
    assert len(refs) == 160
    seqs = sorted(int(re.fullmatch(r"ODD17-\d{4}-(\d{4})", ref).group(1)) for ref in refs)
    assert seqs == list(range(1, 161))
    # a shared document has one reference, whichever process stored it
    shared_refs = [{o["reference"] for o in r if not o["duplicate"]} for r in results]
    duplicates = [sum(o["duplicate"] for o in r) for r in results]
    assert sum(duplicates) == 40 and not (shared_refs[0] & shared_refs[1])
    assert [o["reference"] for o in results[0][:40]] == [
        o["reference"] for o in results[1][60:]]
    with unit_of_work(engine) as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 160
        assert session.scalar(select(func.count()).select_from(Organisation)) == 160
        # submitted + eligible, once each: no double evaluation either
        assert session.scalar(select(func.count()).select_from(StatusChange)) == 320
