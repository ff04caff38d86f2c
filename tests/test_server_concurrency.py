"""Several uvicorn workers on one SQLite file, several client processes writing at once:
no error reaches a client, and every acknowledged write is readable afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memstrata.client import MemoryClient
from memstrata.server.keys import KeyStore
from memstrata.server.launch import server_process

CLIENTS = 4
ADDS_PER_CLIENT = 15

WRITER = r"""
import json, sys
from memstrata.client import MemoryClient
url, token, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
acked, errors = [], []
with MemoryClient(url, token, timeout=120) as m:
    for i in range(n):
        try:
            result = m.add([f"{name} message {i}: the weather in town {i} was fine", f"{name} follow-up {i}"],
                           user_id="shared", session_id=name)
            acked += result.ids
            if i % 5 == 0:
                m.search(f"{name} weather", user_id="shared", limit=5)
        except Exception as exc:  # any error reaching the client is a failure of the test
            errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"acked": acked, "errors": errors}))
"""


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_concurrent_writers_from_several_processes(tmp_path):
    keys = KeyStore(tmp_path / "m.db.keys.db")
    token = keys.create(tenant="acme").token
    keys.close()
    with server_process(db=tmp_path / "m.db", workers=2) as server:
        if Path("/proc").exists():
            assert len(_children(server.process.pid)) >= 2, "expected two uvicorn worker processes"
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, server.url, token, f"w{k}", str(ADDS_PER_CLIENT)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in range(CLIENTS)
        ]
        acked: list[str] = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-2000:]
            report = json.loads(out.strip().splitlines()[-1])
            assert report["errors"] == [], report["errors"][:3]
            acked += report["acked"]
        assert len(acked) == CLIENTS * ADDS_PER_CLIENT * 2 == len(set(acked))

        with MemoryClient(server.url, token) as m:
            stored, cursor = [], None
            while True:
                page = m.list(user_id="shared", layers=[0], limit=1000, cursor=cursor)
                stored += [r.id for r in page.items]
                if not (cursor := page.next_cursor):
                    break
            assert set(acked) <= set(stored)
            for rid in acked[:: max(1, len(acked) // 20)]:
                assert m.get(rid, user_id="shared").id == rid
            for k in range(CLIENTS):
                assert len(m.list(user_id="shared", session_id=f"w{k}", layers=[0], limit=1000).items) == ADDS_PER_CLIENT * 2
        log = server.log().lower()
    assert "database is locked" not in log and "unexpected error" not in log, log[-3000:]


@pytest.mark.parametrize("workers", [2])
def test_writes_through_both_workers_survive_a_restart(tmp_path, workers):
    """What one set of workers acknowledged, a fresh server over the same file still has."""
    keys = KeyStore(tmp_path / "m.db.keys.db")
    token = keys.create(tenant="acme").token
    keys.close()
    with server_process(db=tmp_path / "m.db", workers=workers) as server, MemoryClient(server.url, token) as m:
        ids = [m.add(f"fact {i}", user_id="u").ids[0] for i in range(10)]
    with server_process(db=tmp_path / "m.db", workers=1) as server, MemoryClient(server.url, token) as m:
        assert [r.id for r in m.list(user_id="u", layers=[0]).items] == ids
