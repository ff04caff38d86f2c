"""The MCP server, driven by the official SDK's own client: over stdio, over streamable HTTP
(with API keys and tenants), and in-process for the finer points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from memstrata import Memory, Settings
from memstrata.server.keys import KeyStore
from memstrata.server.launch import free_port
from memstrata.server.mcp import McpDefaults, build_server

TOOLS = {"remember", "recall", "forget", "list_memories", "add_experience", "search_experience"}


def text(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "text", None))


def test_stdio_remember_then_recall(tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memstrata.server.mcp", "--db", str(tmp_path / "m.db"), "--user-id", "ana"],
    )

    async def run():
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
            assert {t.name for t in tools} == TOOLS
            assert all(len(t.description or "") > 80 for t in tools)  # written for an agent to use well
            stored = await client.call_tool("remember", {"content": "I moved to Lisbon last week", "speaker": "Ana"})
            assert not stored.is_error and "ep_" in text(stored)
            recalled = await client.call_tool("recall", {"query": "where does Ana live?", "budget_tokens": 200})
            assert not recalled.is_error and "Lisbon" in text(recalled)
            found = await client.call_tool("recall", {"query": "Lisbon", "mode": "search"})
            memory_id = text(found).split("[", 1)[1].split("]", 1)[0]
            listed = await client.call_tool("list_memories", {})
            assert memory_id in text(listed)
            assert not (await client.call_tool("forget", {"memory_id": memory_id})).is_error
            again = await client.call_tool("forget", {"memory_id": memory_id})
            assert again.is_error and "not_found" in text(again)
            other = await client.call_tool("recall", {"query": "Lisbon", "user_id": "bob"})
            assert "Lisbon" not in text(other)

    anyio.run(run)


def test_stdio_add_then_search_experience(tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memstrata.server.mcp", "--db", str(tmp_path / "m.db"), "--tenant", "acme", "--agent-id", "coder"],
    )

    async def run():
        async with Client(params) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            for name in ("add_experience", "search_experience"):
                assert len(tools[name].description or "") > 200, name  # tells the agent when and how to use it
            assert {"task", "outcome"} <= set(tools["add_experience"].input_schema["required"])
            worked = await client.call_tool("add_experience", {
                "task": "deploy the web app to staging",
                "steps": ["ran the test suite", {"action": "docker compose up", "observation": "healthy"}],
                "outcome": "deployed; the health check passed",
            })
            assert not worked.is_error and "ex_" in text(worked) and "succeeded" in text(worked), text(worked)
            failed = await client.call_tool("add_experience", {
                "task": "deploy the web app to production", "steps": ["pushed without a migration"],
                "outcome": "the deploy failed: the database schema was out of date", "feedback": "migrate first",
            })
            assert not failed.is_error and "failed" in text(failed)
            found = await client.call_tool("search_experience", {"task": "deploy the web app"})
            answer = text(found)
            assert not found.is_error and "SUCCEEDED" in answer and "FAILED" in answer, answer
            assert "docker compose up" in answer and "migrate first" in answer
            only_good = await client.call_tool("search_experience", {"task": "deploy the web app", "include_failed": False})
            assert "FAILED" not in text(only_good) and "SUCCEEDED" in text(only_good)
            other = await client.call_tool("search_experience", {"task": "deploy the web app", "agent_id": "someone"})
            assert text(other) == "No similar experience."
            bad = await client.call_tool("add_experience", {"task": "x", "outcome": "   "})
            assert bad.is_error and "outcome" in text(bad)

    anyio.run(run)
    # --tenant acme: stored in acme's namespace, as acme's REST key would see it.
    with Memory(settings=Settings(db=tmp_path / "m.db")) as memory:
        assert len(memory.list(agent_id="acme/coder", layers=[1]).items) == 2
        assert memory.list(agent_id="coder").items == []


@pytest.fixture
def mcp_http(tmp_path):
    keys = KeyStore(tmp_path / "m.db.keys.db")
    tokens = {"acme": keys.create(tenant="acme").token, "beta": keys.create(tenant="beta").token,
              "admin": keys.create(tenant=None, admin=True).token}
    keys.close()
    port = free_port()
    log = open(tmp_path / "mcp.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "memstrata.server.mcp", "--transport", "http", "--db", str(tmp_path / "m.db"),
         "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp_path / "mcp.log").read_text()
        try:
            httpx.get(url, timeout=2)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the MCP server did not start"
            time.sleep(0.2)
    try:
        yield url, tokens
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


async def _call(url: str, token: str, tool: str, args: dict, **headers: str):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **headers}, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            return await client.call_tool(tool, args)


def test_streamable_http_remember_then_recall_per_tenant(mcp_http):
    url, tokens = mcp_http

    async def run():
        stored = await _call(url, tokens["acme"], "remember", {"content": "The launch is on 3 March", "user_id": "ana"})
        assert not stored.is_error, text(stored)
        recalled = await _call(url, tokens["acme"], "recall", {"query": "when is the launch?", "user_id": "ana"})
        assert "3 March" in text(recalled)
        # Another tenant, whatever user_id it names, sees nothing of it.
        for user in ("ana", "acme/ana"):
            other = await _call(url, tokens["beta"], "recall", {"query": "launch", "user_id": user, "mode": "search"})
            assert "March" not in text(other)
        # An admin key reaches acme only by naming it.
        admin = await _call(url, tokens["admin"], "recall", {"query": "launch", "user_id": "ana"},
                            **{"X-Memstrata-Tenant": "acme"})
        assert "3 March" in text(admin)

    anyio.run(run)


def test_streamable_http_refuses_missing_or_bad_keys(mcp_http):
    url, _ = mcp_http
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    assert httpx.post(url, json=body, headers=headers).status_code == 401
    assert httpx.post(url, json=body, headers={**headers, "Authorization": "Bearer ms_nope"}).status_code == 401


def test_http_transport_needs_keys(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "memstrata.server.mcp", "--transport", "http", "--db", str(tmp_path / "m.db"),
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0 and "needs API keys" in proc.stderr


def test_scope_defaults_tenant_and_errors_in_process(tmp_path, embedder):
    memory = Memory(settings=Settings(db=tmp_path / "m.db"), embedder=embedder)
    try:
        bare = build_server(memory)
        scoped = build_server(memory, defaults=McpDefaults(user_id="ana"), tenant="acme")

        async def run():
            async with Client(bare) as client:
                missing = await client.call_tool("remember", {"content": "no scope given"})
                assert missing.is_error and "user_id" in text(missing)
                bad = await client.call_tool("remember", {"content": "x", "user_id": "a/b"})
                assert bad.is_error and "'/'" in text(bad)
                too_big = await client.call_tool("recall", {"query": "q" * 5000, "user_id": "ana"})
                assert too_big.is_error and "content_too_large" in text(too_big)
            async with Client(scoped) as client:
                stored = await client.call_tool("remember", {"content": ["first thing", "second thing"]})
                assert "2 item" in text(stored)
                page = await client.call_tool("list_memories", {"limit": 1})
                assert "cursor=" in text(page)
                recalled = await client.call_tool("recall", {"query": "second thing"})
                assert "second thing" in text(recalled)

        anyio.run(run)
        # The stdio --tenant namespace is the REST tenant namespace.
        assert [r.content for r in memory.list(user_id="acme/ana", layers=[0]).items] == ["first thing", "second thing"]
        assert memory.list(user_id="ana").items == []
    finally:
        memory.close()
