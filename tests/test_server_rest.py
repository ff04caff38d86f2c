"""The REST server, started for real on a loopback port: every endpoint through the client and
through plain HTTP, auth failures, cross-tenant attempts, limits, malformed input."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from memstrata import ContentTooLarge, Episode, InvalidInput, Memory, NotFound, ScopeRequired, Settings, limits
from memstrata.client import AsyncMemoryClient, Forbidden, MemoryClient, Unauthorized
from memstrata.model import ExperienceHit, HistoryEvent, Note, Page, Scope
from memstrata.organise import OrganiseReport
from memstrata.transfer import import_jsonl
from memstrata.server.keys import KeyStore
from memstrata.server.launch import server_process

MAX_BODY = 256 * 1024  # a small body limit so the oversize tests stay cheap

CHAT = [
    {"role": "user", "speaker": "Ana", "content": "I moved to Lisbon last week, the light here is amazing."},
    {"role": "assistant", "content": "Congratulations! Have you found a flat yet?"},
    {"role": "user", "speaker": "Ana", "content": "Yes, a small flat in Alfama with a view of the river."},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rest")
    keys = KeyStore(tmp / "m.db.keys.db")
    tokens = {
        "acme": keys.create(tenant="acme").token,
        "beta": keys.create(tenant="beta").token,
        "admin": keys.create(tenant=None, admin=True).token,
    }
    revoked = keys.create(tenant="acme")
    keys.revoke(revoked.key.id)
    tokens["revoked"] = revoked.token
    keys.close()
    with server_process(db=tmp / "m.db", max_body_bytes=MAX_BODY) as srv:
        srv.tokens = tokens
        yield srv
    log = srv.log()
    assert "unexpected error" not in log and "Exception in ASGI" not in log, log[-3000:]  # no 500s


def http(server, who: str | None = "acme", **headers) -> httpx.Client:
    if who:
        headers["Authorization"] = f"Bearer {server.tokens[who]}"
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


# ---------------------------------------------------------------------- open endpoints


def test_health_version_and_openapi_need_no_key(server):
    with http(server, None) as c:
        assert c.get("/v1/health").json()["status"] == "ok"
        assert c.get("/v1/version").json()["api"] == "v1"
        schema = c.get("/openapi.json").json()
    committed = json.loads((Path(__file__).parents[1] / "docs" / "openapi.json").read_text())
    assert schema == committed, "docs/openapi.json is stale: python -m memstrata.server.serve --print-openapi > docs/openapi.json"


# ---------------------------------------------------------------------- every endpoint, through the client


def test_every_endpoint_through_the_client(server):
    with MemoryClient(server.url, server.tokens["acme"]) as m:
        added = m.add(CHAT, user_id="ana", agent_id="bot", session_id="s1", metadata={"src": "chat"})
        assert [type(e) for e in added.episodes] == [Episode] * 3
        assert added.episodes[0].user_id == "ana" and added.episodes[0].agent_id == "bot"
        assert all(isinstance(n, Note) for n in added.notes)
        first = added.episodes[0]

        hits = m.search("where does Ana live?", user_id="ana")
        assert hits and any("Lisbon" in h.content for h in hits)
        assert all(h.record.user_id == "ana" for h in hits)
        assert m.search("Lisbon", user_id="ana", layers=[0], filters={"src": "chat"}, recipe="bm25")

        block = m.context("where does Ana live?", user_id="ana", budget_tokens=200)
        assert "Lisbon" in block.text and block.tokens <= 200

        got = m.get(first.id, user_id="ana")
        assert isinstance(got, Episode) and got.content == first.content and got.metadata == {"src": "chat"}

        updated = m.update(first.id, content="I moved to Porto last week.", user_id="ana")
        assert updated.content == "I moved to Porto last week."
        events = m.history(first.id, user_id="ana")
        assert [e.event for e in events][:2] == ["created", "updated"] and all(isinstance(e, HistoryEvent) for e in events)

        stats = m.stats(user_id="ana")
        assert stats["records"]["episodes"]["active"] == 3 and "path" not in stats

        m.delete(first.id, user_id="ana")
        with pytest.raises(NotFound):
            m.get(first.id, user_id="ana")
        with pytest.raises(NotFound):
            m.delete(first.id, user_id="ana")
        assert m.delete_all(user_id="ana") >= 2
        assert m.list(user_id="ana").items == []
        assert m.health()["status"] == "ok" and m.version()["api"] == "v1"


def test_cursor_pagination(server):
    with MemoryClient(server.url, server.tokens["acme"]) as m:
        ids = m.add([f"note number {i}" for i in range(7)], user_id="pager").ids
        seen, cursor, pages = [], None, 0
        while True:
            page = m.list(user_id="pager", layers=[0], limit=3, cursor=cursor)
            assert isinstance(page, Page) and len(page.items) <= 3
            seen += [r.id for r in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ids and pages == 3
        with pytest.raises(InvalidInput):
            m.list(user_id="pager", cursor="not-a-cursor")
        with pytest.raises(InvalidInput):
            m.list(user_id="pager", cursor="r" + "9" * 40)  # too large for SQLite: still a 4xx


def test_async_client(server):
    async def run():
        async with AsyncMemoryClient(server.url, server.tokens["acme"]) as m:
            added = await m.add("I play chess on Sundays", user_id="carl")
            hits = await m.search("chess", user_id="carl")
            assert hits[0].record.id in added.ids or any(h.record.id in added.ids for h in hits)
            block = await m.context("chess", user_id="carl")
            assert "chess" in block.text
            page = await m.list(user_id="carl")
            assert added.ids[0] in [r.id for r in page.items]
            with pytest.raises(NotFound):
                await m.get("ep_missing", user_id="carl")
            assert await m.delete_all(user_id="carl") >= 1

    asyncio.run(run())


def test_typed_errors_through_the_client(server):
    with MemoryClient(server.url, server.tokens["acme"]) as m:
        with pytest.raises(ScopeRequired):
            m.search("anything")
        with pytest.raises(ContentTooLarge):
            m.search("x" * (limits.MAX_QUERY_CHARS + 1), user_id="ana")
        with pytest.raises(InvalidInput):
            m.search("x", user_id="ana", limit=limits.MAX_LIMIT + 1)
        with pytest.raises(InvalidInput):
            m.add("", user_id="ana")
        with pytest.raises(InvalidInput):
            m.search("x", user_id="ana", time_from="yesterday-ish")
        with pytest.raises(Forbidden):
            m.reset()
    with MemoryClient(server.url, "ms_wrong") as m, pytest.raises(Unauthorized):
        m.search("x", user_id="ana")


# ---------------------------------------------------------------------- plain HTTP


def test_every_endpoint_over_plain_http(server):
    with http(server) as c:
        r = c.post("/v1/memories", json={"messages": "I keep bees in the garden", "user_id": "dora", "session_id": "s"})
        assert r.status_code == 201, r.text
        rid = r.json()["episodes"][0]["id"]
        assert r.json()["episodes"][0]["layer"] == 0 and r.json()["episodes"][0]["user_id"] == "dora"

        r = c.post("/v1/search", json={"query": "bees", "user_id": "dora"})
        assert r.status_code == 200 and r.json()["hits"][0]["record"]["user_id"] == "dora"
        r = c.post("/v1/context", json={"query": "bees", "user_id": "dora", "budget_tokens": 100})
        assert r.status_code == 200 and "bees" in r.json()["text"]
        r = c.get(f"/v1/memories/{rid}", params={"user_id": "dora"})
        assert r.status_code == 200 and r.json()["id"] == rid
        r = c.get("/v1/memories", params={"user_id": "dora", "session_id": "s", "layers": [0, 1], "limit": 5})
        assert r.status_code == 200 and rid in [i["id"] for i in r.json()["items"]]
        r = c.patch(f"/v1/memories/{rid}", json={"metadata": {"hive": 2}, "user_id": "dora"})
        assert r.status_code == 200 and r.json()["metadata"] == {"hive": 2}
        r = c.get(f"/v1/memories/{rid}/history", params={"user_id": "dora"})
        assert r.status_code == 200 and r.json()["events"][0]["event"] == "created"
        r = c.get("/v1/stats", params={"user_id": "dora"})
        assert r.status_code == 200 and r.json()["records"]["episodes"]["active"] == 1
        r = c.delete(f"/v1/memories/{rid}", params={"user_id": "dora"})
        assert r.status_code == 200 and r.json() == {"deleted": 1}
        assert_error(c.get(f"/v1/memories/{rid}", params={"user_id": "dora"}), 404, "not_found")
        r = c.delete("/v1/memories", params={"user_id": "dora"})
        assert r.status_code == 200 and "deleted" in r.json()
        assert_error(c.delete("/v1/memories"), 422, "scope_required")


def test_auth_failures(server):
    with http(server, None) as c:
        assert_error(c.post("/v1/search", json={"query": "x", "user_id": "ana"}), 401, "unauthorized")
        assert_error(c.get("/v1/memories", params={"user_id": "ana"}), 401, "unauthorized")
    with http(server, None, Authorization="Bearer ms_not_a_key") as c:
        assert_error(c.get("/v1/memories", params={"user_id": "ana"}), 401, "unauthorized")
    with http(server, None, Authorization="Basic YWxhZGRpbjpvcGVuc2VzYW1l") as c:
        assert_error(c.get("/v1/memories", params={"user_id": "ana"}), 401, "unauthorized")
    with http(server, "revoked") as c:
        assert_error(c.get("/v1/memories", params={"user_id": "ana"}), 401, "unauthorized")
    with http(server, "acme", **{"X-Memstrata-Tenant": "beta"}) as c:
        assert_error(c.get("/v1/memories", params={"user_id": "ana"}), 403, "forbidden")
    with http(server, "acme") as c:
        assert_error(c.post("/v1/reset"), 403, "forbidden")
        assert_error(c.get("/v1/stats"), 422, "scope_required")  # whole-store stats are admin-only
    with http(server, "admin", **{"X-Memstrata-Tenant": "not/a tenant"}) as c:
        assert_error(c.get("/v1/memories", params={"user_id": "ana"}), 422, "invalid_input")


def test_cross_tenant_attempts_never_return_data(server):
    with MemoryClient(server.url, server.tokens["acme"]) as acme, MemoryClient(server.url, server.tokens["beta"]) as beta:
        secret = acme.add("The vault code is 4711", user_id="eve", agent_id="bot").episodes[0]
        for user in ("eve", "acme/eve", "../acme/eve", "acme%2Feve"):
            assert beta.search("vault code", user_id=user) == []
            assert beta.list(user_id=user).items == []
            assert "4711" not in beta.context("vault code", user_id=user).text
            with pytest.raises(NotFound):
                beta.get(secret.id, user_id=user)
            with pytest.raises(NotFound):
                beta.history(secret.id, user_id=user)
            with pytest.raises(NotFound):
                beta.update(secret.id, content="overwritten", user_id=user)
            with pytest.raises(NotFound):
                beta.delete(secret.id, user_id=user)
            assert beta.delete_all(user_id=user) == 0
        with pytest.raises(NotFound):
            beta.get(secret.id, agent_id="bot")
        assert acme.get(secret.id, user_id="eve").content == "The vault code is 4711"

    # An admin key reaches a tenant only by naming it; the root namespace cannot spell a tenant's ids.
    with MemoryClient(server.url, server.tokens["admin"], tenant="acme") as admin:
        assert admin.get(secret.id, user_id="eve").content == "The vault code is 4711"
    with MemoryClient(server.url, server.tokens["admin"]) as root:
        with pytest.raises(InvalidInput):
            root.get(secret.id, user_id="acme/eve")
        with pytest.raises(NotFound):
            root.get(secret.id, user_id="eve")
        assert "records" in root.stats()  # whole store: admin only


def test_limits_answer_413_or_422(server):
    with http(server) as c:
        big = {"messages": "x" * (MAX_BODY + 10), "user_id": "ana"}
        assert_error(c.post("/v1/memories", json=big), 413, "content_too_large")

        def chunks():  # no Content-Length: the limit is counted as the body streams in
            for _ in range(MAX_BODY // 1024 + 8):
                yield b" " * 1024

        r = c.post("/v1/search", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(r, 413, "content_too_large")

        too_many = {"messages": ["m"] * (limits.MAX_ITEMS_PER_ADD + 1), "user_id": "ana"}
        assert_error(c.post("/v1/memories", json=too_many), 413, "content_too_large")
        err = assert_error(c.post("/v1/search", json={"query": "q" * (limits.MAX_QUERY_CHARS + 1), "user_id": "ana"}),
                           413, "content_too_large")
        assert err["field"] == "query"
        err = assert_error(c.post("/v1/search", json={"query": "q", "user_id": "ana", "limit": limits.MAX_LIMIT + 1}),
                           422, "invalid_input")
        assert err["field"] == "limit"
        assert_error(c.get("/v1/memories", params={"user_id": "ana", "limit": 0}), 422, "invalid_input")
        assert_error(c.post("/v1/context", json={"query": "q", "user_id": "ana", "budget_tokens": 10**9}), 422,
                     "invalid_input")
        assert_error(c.post("/v1/memories", json={"messages": "x", "user_id": "u" * 300}), 422, "invalid_input")
        # a JSON boolean is not a time (found by schemathesis: false was read as epoch 0)
        for field in ("time_to", "time_from", "as_of", "reference_time"):
            err = assert_error(c.post("/v1/search", json={"query": "q", "user_id": "ana", field: False}), 422,
                               "invalid_input")
            assert err["field"] == field
        ok = c.post("/v1/search", json={"query": "q", "user_id": "ana", "time_from": 0, "time_to": "2100-01-01"})
        assert ok.status_code == 200


def test_malformed_requests(server):
    with http(server) as c:
        r = c.post("/v1/search", content=b'{"query": "x", "user_id": ', headers={"Content-Type": "application/json"})
        assert_error(r, 400, "malformed_json")
        r = c.post("/v1/search", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422) and r.json()["error"]["code"] in ("malformed_json", "invalid_input")
        r = c.post("/v1/search", content=b'{"query": "x", "user_id": "ana"}', headers={"Content-Type": "text/plain"})
        assert "Content-Type" in assert_error(r, 422, "invalid_input")["message"]
        assert_error(c.post("/v1/search", json=["not", "an", "object"]), 422, "invalid_input")
        assert_error(c.post("/v1/search", json={"query": 5, "user_id": "ana"}), 422, "invalid_input")
        assert_error(c.post("/v1/search", json={"query": "x", "user_id": "ana", "bogus": 1}), 422, "invalid_input")
        r = c.post("/v1/search", content=b'{"query": "\\ud800", "user_id": "ana"}', headers={"Content-Type": "application/json"})
        assert_error(r, 422, "invalid_input")
        r = c.post("/v1/search", json={"query": "x", "user_id": "ana", "time_from": "0001-01-01T00:00:00+01:00"})
        assert r.status_code == 422
        r = c.post("/v1/search", json={"query": "x", "user_id": "ana", "filters": {"n": 10**30}})
        assert r.status_code in (200, 422)
        assert_error(c.post("/v1/memories", json={"messages": [{"content": "hi", "mood": "x"}], "user_id": "a"}), 422,
                     "invalid_input")
        assert_error(c.get("/v1/nowhere"), 404, "not_found")
        r = c.put("/v1/search")
        assert_error(r, 405, "method_not_allowed")
        assert "POST" in r.headers["allow"]


def test_refuses_non_loopback_without_keys(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "memstrata.server.serve", "--host", "0.0.0.0", "--db", str(tmp_path / "m.db")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0" in lines[0] and "keys create" in lines[0]


@pytest.mark.skipif(not hasattr(socket, "AF_INET"), reason="needs IPv4")
def test_keyless_server_answers_loopback_only_in_the_root_namespace(tmp_path):
    with server_process(db=tmp_path / "open.db") as srv:
        with MemoryClient(srv.url, api_key="") as m:
            added = m.add("hello from the owner", user_id="me")
            assert m.get(added.ids[0], user_id="me").user_id == "me"
            with pytest.raises(InvalidInput):
                m.search("hello", user_id="acme/me")  # '/' would reach into a tenant's namespace
        with httpx.Client(base_url=srv.url, headers={"X-Memstrata-Tenant": "acme"}) as c:
            assert_error(c.get("/v1/memories", params={"user_id": "me"}), 403, "forbidden")
        # Once a key exists, anonymous calls stop at once.
        keys = KeyStore(Path(str(tmp_path / "open.db") + ".keys.db"))
        keys.create(tenant="acme")
        keys.close()
        with httpx.Client(base_url=srv.url) as c:
            assert_error(c.get("/v1/memories", params={"user_id": "me"}), 401, "unauthorized")


# ---------------------------------------------------------------------- lifecycle, organise, export, experience


def test_lifecycle_calls_through_the_client(server):
    with MemoryClient(server.url, server.tokens["acme"]) as m:
        added = m.add(CHAT, user_id="liv", importance=0.9)
        assert {e.importance for e in added.episodes} == {0.9}
        first = added.episodes[0]

        pinned = m.pin(first.id, user_id="liv")
        assert isinstance(pinned, Episode) and pinned.pinned and pinned.user_id == "liv"
        assert not m.pin(first.id, pinned=False, user_id="liv").pinned

        assert m.archive(first.id, user_id="liv").status == "archived"
        assert first.id not in [h.id for h in m.search("Lisbon light amazing", user_id="liv", layers=[0])]
        hits = m.search("Lisbon light amazing", user_id="liv", layers=[0], include_archived=True, reinforce=False)
        assert first.id in [h.id for h in hits]
        assert m.context("Lisbon light", user_id="liv", include_archived=True).lines
        assert m.restore(first.id, user_id="liv").status == "active"

        # "last week" is the week before the reference time the client sends.
        for day, place in ((3, "Sintra"), (17, "Arrabida")):
            m.add(f"I went hiking in {place} with a friend.", user_id="liv", timestamp=f"2024-04-{day:02d}T18:00:00Z")
        for asked, place in (("2024-04-10T09:00:00Z", "Sintra"), ("2024-04-24T09:00:00Z", "Arrabida")):
            hit = m.search("Where did I go hiking last week?", user_id="liv", reference_time=asked, reinforce=False)[0]
            assert place in hit.record.content
            assert place in m.context("hiking last week", user_id="liv", reference_time=asked, budget_tokens=25).text

        # Nothing was valid before it was said; a search that does not reinforce leaves last_access alone.
        assert m.search("Lisbon", user_id="liv", as_of="2000-01-01T00:00:00Z") == []
        assert m.context("Lisbon", user_id="liv", as_of="2000-01-01T00:00:00Z").lines == []
        third = added.episodes[2]
        before = m.get(third.id, user_id="liv").last_access
        assert third.id in [h.id for h in m.search("flat in Alfama", user_id="liv", layers=[0], reinforce=False)]
        assert m.get(third.id, user_id="liv").last_access == before
        m.search("flat in Alfama", user_id="liv", layers=[0])
        after = m.get(third.id, user_id="liv").last_access
        assert after is not None and (before is None or after > before)

        notes = m.list(user_id="liv", layers=[1]).items
        if notes:
            with pytest.raises(InvalidInput):
                m.delete_episode(notes[0].id, user_id="liv")
        m.delete_episode(first.id, user_id="liv")
        with pytest.raises(NotFound):
            m.get(first.id, user_id="liv")
        with pytest.raises(NotFound):
            m.delete_episode(first.id, user_id="liv")
        with pytest.raises(NotFound):
            m.pin("ep_missing", user_id="liv")
        with pytest.raises(ScopeRequired):
            m.archive(third.id)


def test_organise_through_the_client_stays_in_the_tenant(server):
    with MemoryClient(server.url, server.tokens["acme"]) as acme, MemoryClient(server.url, server.tokens["beta"]) as beta:
        acme.add(CHAT, user_id="olga", agent_id="bot")
        beta.add("I grow tomatoes on the balcony", user_id="bruno")
        seen = []
        reports = acme.organise(user_id="olga", progress=lambda done, total: seen.append((done, total)))
        assert len(reports) == 1 and isinstance(reports[0], OrganiseReport) and seen == [(1, 1)]
        assert reports[0].scope == Scope(user_id="olga") and reports[0].steps and reports[0].complete
        assert all(isinstance(counts, dict) for counts in reports[0].steps.values())
        assert acme.organise(user_id="olga")[0].changed == 0  # idempotent
        with pytest.raises(ScopeRequired):
            acme.organise()  # every scope at once: admin keys only
        with pytest.raises(InvalidInput):
            acme.organise(user_id="olga", max_work=0)

    # An admin key organises every scope of the tenant it acts for, and only those.
    with MemoryClient(server.url, server.tokens["admin"], tenant="acme") as admin:
        scopes = {(r.scope.user_id, r.scope.agent_id) for r in admin.organise(max_work=100)}
        assert ("olga", "bot") in scopes and not any(u == "bruno" for u, _ in scopes)
        assert not any("/" in (u or "") + (a or "") for u, a in scopes)
    with MemoryClient(server.url, server.tokens["admin"], tenant="beta") as admin:
        users = {r.scope.user_id for r in admin.organise()}
        assert "bruno" in users and "olga" not in users
    with MemoryClient(server.url, server.tokens["admin"]) as root:
        assert root.organise() == []  # the root namespace holds nothing here, and no tenant's scope is in it


def test_export_through_the_client_is_an_importable_export(server, tmp_path, embedder):
    with MemoryClient(server.url, server.tokens["acme"]) as m:
        added = m.add(CHAT, user_id="xena", agent_id="bot", session_id="s1")
        m.add_experience("book a table", ["called the restaurant"], "booked a table for two", user_id="xena")
        path = tmp_path / "xena.jsonl"
        count = m.export(path, user_id="xena")
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert lines[0]["type"] == "memstrata-export" and lines[0]["scope"] == {"user_id": "xena"}
        records = [line for line in lines if line["type"] == "record"]
        assert count == len(records) >= 5
        assert {r["user_id"] for r in records} == {"xena"} and {r["agent_id"] for r in records} <= {"bot", None}
        assert all(r["history"] and r.get("vector") for r in records)

        text = io.StringIO()
        assert m.export(text, user_id="xena") == count
        assert text.getvalue().splitlines()[1:] == path.read_text().splitlines()[1:]  # only exported_at differs

        with pytest.raises(ScopeRequired):
            m.export(tmp_path / "nothing.jsonl")
        assert not (tmp_path / "nothing.jsonl").exists() and not list(tmp_path.glob(".*.tmp"))

    # The export is what `memstrata import` reads: the same records, ids and contents in another store.
    with Memory(settings=Settings(db=tmp_path / "copy.db"), embedder=embedder) as copy:
        assert import_jsonl(copy, path).records == count
        assert copy.get(added.ids[0], user_id="xena").content == CHAT[0]["content"]


def test_experience_through_the_client(server):
    with MemoryClient(server.url, server.tokens["acme"]) as m:
        good = m.add_experience(
            "deploy the web app to staging", ["ran the tests", {"action": "deploy", "observation": "healthy"}],
            "deployed; the health check passed", user_id="yuri", importance=0.8, metadata={"repo": "web"},
        )
        assert isinstance(good, Note) and good.kind == "experience" and good.user_id == "yuri" and good.id.startswith("ex_")
        bad = m.add_experience(
            "deploy the web app to production", ["pushed without a migration"], "the deploy failed",
            "migrate first", user_id="yuri",
        )
        hits = m.search_experience("deploy the web app", user_id="yuri")
        assert {h.id for h in hits} == {good.id, bad.id} and all(isinstance(h, ExperienceHit) for h in hits)
        by_id = {h.id: h for h in hits}
        assert by_id[good.id].success is True and by_id[good.id].steps[1] == {"action": "deploy", "observation": "healthy"}
        assert by_id[bad.id].success is False and by_id[bad.id].feedback == "migrate first"
        assert type(by_id[good.id].record) is Note and by_id[good.id].record.user_id == "yuri"
        assert [h.id for h in m.search_experience("deploy the web app", user_id="yuri", include_failed=False)] == [good.id]
        assert len(m.search_experience("deploy the web app", user_id="yuri", limit=1)) == 1
        assert m.search_experience("deploy the web app", user_id="yuri", as_of="2000-01-01T00:00:00Z") == []

        with pytest.raises(InvalidInput):
            m.add_experience("t", "not a list", "done", user_id="yuri")
        with pytest.raises(InvalidInput):
            m.add_experience("t", [], "done", user_id="yuri", importance=2)
        with pytest.raises(ScopeRequired):
            m.search_experience("deploy")
        with pytest.raises(ContentTooLarge):
            m.search_experience("x" * (limits.MAX_QUERY_CHARS + 1), user_id="yuri")


def test_store_maintenance_is_admin_only(server):
    with MemoryClient(server.url, server.tokens["acme"]) as m:
        with pytest.raises(Forbidden):
            m.reembed()
        with pytest.raises(Forbidden):
            m.reembed(user_id="yuri")
        with pytest.raises(Forbidden):
            m.vacuum()
        with pytest.raises(InvalidInput):
            m.reembed(embedder=object())  # the model is the server's setting
    with MemoryClient(server.url, server.tokens["admin"]) as root:
        seen = []
        assert root.reembed(progress=lambda done, total: seen.append((done, total))) == 0  # all have vectors already
        assert seen == [(0, None)]
        assert root.vacuum() is None
    with MemoryClient(server.url, server.tokens["admin"], tenant="acme") as admin:
        assert admin.reembed(user_id="yuri", batch_size=10) == 0
        assert admin.search_experience("deploy the web app", user_id="yuri")  # still searchable after vacuum


def test_async_client_new_calls(server):
    async def run():
        async with AsyncMemoryClient(server.url, server.tokens["acme"]) as m:
            added = await m.add("I swim in the sea every morning", user_id="una", importance=0.2)
            assert (await m.pin(added.ids[0], user_id="una")).pinned
            assert (await m.archive(added.ids[0], user_id="una")).status == "archived"
            assert (await m.restore(added.ids[0], user_id="una")).status == "active"
            reports = await m.organise(user_id="una")
            assert reports[0].scope.user_id == "una"
            text = io.StringIO()
            assert await m.export(text, user_id="una") >= 1 and "swim" in text.getvalue()
            xp = await m.add_experience("find a pool", None, "found one nearby", user_id="una")
            assert [h.id for h in await m.search_experience("find a pool", user_id="una")] == [xp.id]
            await m.delete_episode(added.ids[0], user_id="una")
            with pytest.raises(NotFound):
                await m.delete_episode(added.ids[0], user_id="una")
            with pytest.raises(Forbidden):
                await m.vacuum()

    asyncio.run(run())


def test_new_endpoints_over_plain_http(server):
    with http(server) as c:
        r = c.post("/v1/memories", json={"messages": "I keep goats on the hill", "user_id": "zoe", "importance": 0.7})
        assert r.status_code == 201 and r.json()["episodes"][0]["importance"] == 0.7, r.text
        rid = r.json()["episodes"][0]["id"]

        r = c.post(f"/v1/memories/{rid}/pin", json={"user_id": "zoe"})
        assert r.status_code == 200 and r.json()["pinned"] is True and r.json()["layer"] == 0 and r.json()["user_id"] == "zoe"
        assert c.post(f"/v1/memories/{rid}/pin", json={"user_id": "zoe", "pinned": False}).json()["pinned"] is False
        assert_error(c.post(f"/v1/memories/{rid}/pin", json={"user_id": "zoe", "pinned": "yes"}), 422, "invalid_input")
        r = c.post(f"/v1/memories/{rid}/archive", json={"user_id": "zoe"})
        assert r.status_code == 200 and r.json()["status"] == "archived"
        r = c.post("/v1/search", json={"query": "goats", "user_id": "zoe", "layers": [0]})
        assert r.status_code == 200 and r.json()["hits"] == []
        r = c.post("/v1/search", json={"query": "goats", "user_id": "zoe", "include_archived": True, "reinforce": False})
        assert rid in [h["record"]["id"] for h in r.json()["hits"]]
        r = c.post("/v1/context", json={"query": "goats", "user_id": "zoe", "include_archived": True,
                                        "as_of": "2000-01-01T00:00:00Z"})
        assert r.status_code == 200 and r.json()["lines"] == []
        assert_error(c.post("/v1/search", json={"query": "goats", "user_id": "zoe", "layers": [False]}), 422, "invalid_input")
        r = c.post(f"/v1/memories/{rid}/restore", json={"user_id": "zoe"})
        assert r.status_code == 200 and r.json()["status"] == "active"
        assert_error(c.post(f"/v1/memories/{rid}/archive", json={}), 422, "scope_required")

        r = c.post("/v1/organise", json={"user_id": "zoe", "max_work": 10})
        assert r.status_code == 200, r.text
        [report] = r.json()["reports"]
        assert report["scope"] == {"user_id": "zoe", "agent_id": None} and isinstance(report["complete"], bool)
        assert isinstance(report["steps"], dict) and isinstance(report["changed"], int)
        assert_error(c.post("/v1/organise", json={}), 422, "scope_required")
        assert_error(c.post("/v1/organise", json={"user_id": "zoe", "max_work": 0}), 422, "invalid_input")

        r = c.post("/v1/experiences", json={"task": "feed the goats", "steps": ["filled the trough"],
                                            "outcome": "all fed", "user_id": "zoe"})
        assert r.status_code == 201 and r.json()["kind"] == "experience" and r.json()["layer"] == 1, r.text
        xid = r.json()["id"]
        r = c.post("/v1/experiences/search", json={"task": "feed the goats", "user_id": "zoe"})
        assert r.status_code == 200
        hit = r.json()["hits"][0]
        assert hit["record"]["id"] == xid and hit["record"]["user_id"] == "zoe" and hit["steps"] == ["filled the trough"]
        assert hit["task"] == "feed the goats" and hit["outcome"] == "all fed" and "lesson" in hit
        assert_error(c.post("/v1/experiences", json={"task": "t", "outcome": "o", "steps": "x", "user_id": "zoe"}), 422,
                     "invalid_input")
        assert_error(c.post("/v1/experiences", json={"task": "t", "outcome": "o"}), 422, "scope_required")

        r = c.get("/v1/export", params={"user_id": "zoe"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        records = [line for line in lines if line["type"] == "record"]
        assert lines[0]["scope"] == {"user_id": "zoe"} and int(r.headers["x-memstrata-records"]) == len(records) >= 3
        assert {line["user_id"] for line in records} == {"zoe"} and xid in {line["id"] for line in records}
        assert_error(c.get("/v1/export"), 422, "scope_required")

        assert_error(c.delete(f"/v1/episodes/{xid}", params={"user_id": "zoe"}), 422, "invalid_input")  # not an episode
        r = c.delete(f"/v1/episodes/{rid}", params={"user_id": "zoe"})
        assert r.status_code == 200 and r.json() == {"deleted": 1}
        assert_error(c.delete(f"/v1/episodes/{rid}", params={"user_id": "zoe"}), 404, "not_found")

        assert_error(c.post("/v1/reembed", json={}), 403, "forbidden")
        assert_error(c.post("/v1/vacuum"), 403, "forbidden")
    with http(server, "admin") as c:
        r = c.post("/v1/reembed", json={"batch_size": 100})
        assert r.status_code == 200 and r.json() == {"reembedded": 0}
        assert_error(c.post("/v1/reembed", json={"batch_size": 0}), 422, "invalid_input")
        r = c.post("/v1/vacuum")
        assert r.status_code == 200 and r.json() == {"ok": True}


def test_cross_tenant_attempts_on_the_new_endpoints(server):
    with MemoryClient(server.url, server.tokens["acme"]) as acme, MemoryClient(server.url, server.tokens["beta"]) as beta:
        secret = acme.add("The alarm code is 9876", user_id="vic", agent_id="bot").episodes[0]
        xp = acme.add_experience("open the safe", ["entered 9876"], "the safe opened", user_id="vic")
        for user in ("vic", "acme/vic", "../acme/vic"):
            for target in (secret.id, xp.id):
                for call in (beta.pin, beta.archive, beta.restore, beta.delete_episode):
                    with pytest.raises(NotFound):
                        call(target, user_id=user)
            with pytest.raises(NotFound):
                beta.pin(secret.id, agent_id="bot")
            assert beta.search_experience("open the safe", user_id=user) == []
            text = io.StringIO()
            assert beta.export(text, user_id=user) == 0 and "9876" not in text.getvalue()
            assert len(text.getvalue().splitlines()) == 1  # the header alone
            [report] = beta.organise(user_id=user)
            assert report.scope.user_id == user and report.changed == 0
        got = acme.get(secret.id, user_id="vic")
        assert got.status == "active" and not got.pinned
        assert [h.id for h in acme.search_experience("open the safe", user_id="vic")] == [xp.id]

    # Another tenant's admin key reaches acme no better.
    with MemoryClient(server.url, server.tokens["admin"], tenant="beta") as admin:
        with pytest.raises(NotFound):
            admin.pin(secret.id, user_id="vic")
        assert admin.export(io.StringIO(), user_id="vic") == 0
        assert "vic" not in {r.scope.user_id for r in admin.organise()}
        assert admin.search_experience("open the safe", user_id="vic") == []
    # The root namespace cannot spell a tenant's ids.
    with MemoryClient(server.url, server.tokens["admin"]) as root:
        for call in (
            lambda: root.pin(secret.id, user_id="acme/vic"),
            lambda: root.archive(secret.id, user_id="acme/vic"),
            lambda: root.restore(secret.id, user_id="acme/vic"),
            lambda: root.delete_episode(secret.id, user_id="acme/vic"),
            lambda: root.export(io.StringIO(), user_id="acme/vic"),
            lambda: root.organise(user_id="acme/vic"),
            lambda: root.search_experience("open the safe", user_id="acme/vic"),
            lambda: root.add_experience("t", [], "o", user_id="acme/vic"),
        ):
            with pytest.raises(InvalidInput):
                call()
        with pytest.raises(NotFound):
            root.pin(secret.id, user_id="vic")

    # A tenant key naming another tenant is refused on every new endpoint, before anything is read.
    scope = {"user_id": "vic"}
    with http(server, "beta", **{"X-Memstrata-Tenant": "acme"}) as c:
        for method, path, kwargs in (
            ("POST", f"/v1/memories/{secret.id}/pin", {"json": scope}),
            ("POST", f"/v1/memories/{secret.id}/archive", {"json": scope}),
            ("POST", f"/v1/memories/{secret.id}/restore", {"json": scope}),
            ("DELETE", f"/v1/episodes/{secret.id}", {"params": scope}),
            ("POST", "/v1/organise", {"json": scope}),
            ("GET", "/v1/export", {"params": scope}),
            ("POST", "/v1/experiences", {"json": {**scope, "task": "t", "outcome": "o"}}),
            ("POST", "/v1/experiences/search", {"json": {**scope, "task": "open the safe"}}),
            ("POST", "/v1/reembed", {"json": scope}),
            ("POST", "/v1/vacuum", {}),
        ):
            body = assert_error(c.request(method, path, **kwargs), 403, "forbidden")
            assert "9876" not in json.dumps(body)
    with http(server, "beta") as c:
        r = c.get("/v1/export", params=scope)
        assert r.status_code == 200 and "9876" not in r.text and r.headers["x-memstrata-records"] == "0"
        assert_error(c.post(f"/v1/memories/{secret.id}/pin", json=scope), 404, "not_found")
        assert_error(c.delete(f"/v1/episodes/{secret.id}", params=scope), 404, "not_found")


def test_scopes_lists_only_the_tenants_own_users_and_agents(server):
    with MemoryClient(server.url, server.tokens["acme"]) as acme, MemoryClient(server.url, server.tokens["beta"]) as beta:
        acme.add("Zoe paints murals", user_id="zoe")
        acme.add("The bot answers tickets", agent_id="helpdesk")
        beta.add("Yan keeps a diary", user_id="yan")
        mine = acme.scopes()
        theirs = beta.scopes()
    assert Scope(user_id="zoe") in mine and Scope(agent_id="helpdesk") in mine
    assert Scope(user_id="yan") not in mine and all("/" not in (s.user_id or "") for s in mine)
    assert Scope(user_id="yan") in theirs and Scope(user_id="zoe") not in theirs
    # An admin key acts for the tenant it names; without one, for the ids outside every tenant.
    with MemoryClient(server.url, server.tokens["admin"], tenant="beta") as admin:
        assert set(admin.scopes()) == set(theirs)
    with MemoryClient(server.url, server.tokens["admin"]) as root:
        assert all(s not in root.scopes() for s in (Scope(user_id="zoe"), Scope(user_id="yan")))
    with http(server) as c:
        body = c.get("/v1/scopes", params={"limit": 1}).json()
        assert len(body["scopes"]) == 1 and body["truncated"] is True
        assert_error(c.get("/v1/scopes", params={"limit": limits.MAX_LIMIT + 1}), 422, "invalid_input")


def test_context_can_look_without_reinforcing(server):
    with MemoryClient(server.url, server.tokens["acme"]) as acme:
        episode = acme.add("Quinn bakes sourdough every Sunday", user_id="quinn").episodes[0]

        def used(block) -> list:
            return [acme.get(line.record_id, user_id="quinn").last_access for line in block.lines]

        looked = acme.context("What does Quinn bake?", user_id="quinn", reinforce=False)
        assert episode.id in {p for line in looked.lines for p in line.provenance}
        assert used(looked) == [None] * len(looked.lines)
        shown = acme.context("What does Quinn bake?", user_id="quinn")
        assert shown.lines and None not in used(shown)
