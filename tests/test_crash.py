"""Crash safety: a writer killed with SIGKILL loses no acknowledged add and leaves a healthy database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from memstrata.model import Scope
from memstrata.store.sqlite import SQLiteStore

WRITER = r"""
import sys
from memstrata import Memory
m = Memory(sys.argv[1])
i = 0
while True:
    batch = [f"turn {i}-{j}: the weather in city {i % 17} was mild and we talked about item {j}" for j in range(5)]
    result = m.add(batch, user_id="ana", session_id=f"s{i}")
    print(" ".join(result.ids), flush=True)  # acknowledged only after add returned
    i += 1
"""


def test_sigkill_mid_import_loses_no_acknowledged_add(tmp_path):
    db = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    acked: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while len(acked) < 150 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked += line.split()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(acked) >= 150, "writer produced too few acknowledgements"

    store = SQLiteStore(db)
    try:
        assert store.integrity_check() == []
        found = {r.id for r in store.get(acked, Scope(user_id="ana"))}
        assert found == set(acked)
    finally:
        store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # every stored record has its vector and is in the lexical index
    assert conn.execute("SELECT count(*) FROM records r LEFT JOIN vectors v USING(rid) WHERE v.rid IS NULL").fetchone()[0] == 0
    conn.close()
