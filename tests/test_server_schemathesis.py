"""Schemathesis against the served OpenAPI schema: no 5xx, and the answers match the schema.

Bounded for CI: a fixed seed, a cap on examples per operation and a time budget per run
(MEMSTRATA_FUZZ_SECONDS, default 45 for a tenant key plus a third of that for an admin key).

Not checked: `positive_data_acceptance`. Some rules cannot be written in the schema (a
call needs user_id or agent_id; update needs content or metadata; ids and cursors must be
ones the server issued), so a schema-valid request may rightly be answered 404 or 422.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from memstrata.server.keys import KeyStore
from memstrata.server.launch import server_process

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "negative_data_rejection", "unsupported_method",
])
SECONDS = int(os.environ.get("MEMSTRATA_FUZZ_SECONDS", "45"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    keys = KeyStore(tmp / "m.db.keys.db")
    tokens = {"tenant": keys.create(tenant="acme").token, "admin": keys.create(tenant=None, admin=True).token}
    keys.close()
    with server_process(db=tmp / "m.db") as srv:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tokens['tenant']}"}) as c:
            c.post("/v1/memories", json={"messages": ["I moved to Lisbon", "I like tea"], "user_id": "ana"}).raise_for_status()
        srv.tokens = tokens
        yield srv


@pytest.mark.parametrize(("who", "seconds"), [("tenant", SECONDS), ("admin", max(5, SECONDS // 3))])
def test_no_server_errors_and_conforming_answers(server, tmp_path, who, seconds):
    # An over-long text or query is refused with 413 (docs/server.md), a rejection like 422.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[checks.negative_data_rejection]\n"
        'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]\n'
    )
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{server.url}/openapi.json",
        "-H", f"Authorization: Bearer {server.tokens[who]}",
        "--checks", CHECKS, "--max-examples", "25", "--max-time", str(seconds), "--seed", "20260302",
        "--workers", "1", "--no-shrink", "--warnings", "off", "--request-timeout", "30",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    # cwd: schemathesis keeps a cache directory (.schemathesis/) in the working directory.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    log = server.log()
    assert "unexpected error" not in log and "Exception in ASGI" not in log, log[-4000:]
