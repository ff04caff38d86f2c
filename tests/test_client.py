"""`MemoryClient` / `AsyncMemoryClient` without a server: same API as `Memory`, models and typed
errors rebuilt from the wire, one request core for both faces. (Against a real server:
test_server_rest.py.)"""

from __future__ import annotations

import asyncio
import inspect
import io
import json

import httpx
import pytest

from memstrata import AsyncMemory, ContentTooLarge, Episode, Memory, MemstrataError, NotFound, Note, ScopeRequired, StoreError
from memstrata.client import AsyncMemoryClient, Forbidden, MemoryClient, ServerError, Unauthorized, record_from_json
from memstrata.model import Page

NOW = "2026-03-02T10:00:00Z"


def record(layer: int = 0, **fields) -> dict:
    return {"id": "ep_1", "kind": "message", "content": "hi", "event_time": NOW, "created_at": NOW, "updated_at": NOW,
            "user_id": "ana", "layer": layer, **fields}


def test_same_method_names_and_keywords_as_memory():
    for name, member in inspect.getmembers(Memory, inspect.isfunction):
        if name.startswith("_") or name in {"close"}:
            continue
        assert hasattr(MemoryClient, name), f"MemoryClient lacks {name}"
        assert hasattr(AsyncMemoryClient, name), f"AsyncMemoryClient lacks {name}"
        ours = inspect.signature(getattr(MemoryClient, name)).parameters
        theirs = inspect.signature(member).parameters
        assert list(ours) == list(theirs), f"{name}: {list(ours)} != {list(theirs)}"
        for param in theirs.values():
            assert ours[param.name].kind == param.kind, f"{name}({param.name})"
            assert ours[param.name].default == param.default, f"{name}({param.name}) default"
    for name in ("add", "search", "context", "get", "list", "update", "delete", "delete_all", "history", "stats"):
        assert hasattr(AsyncMemory, name)


def test_records_are_rebuilt_by_layer():
    assert type(record_from_json(record(0))) is Episode
    note = record_from_json(record(1, id="nt_1", kind="fact", sources=["ep_1"]))
    assert type(note) is Note and note.sources == ["ep_1"]


def _client(handler) -> MemoryClient:
    return MemoryClient("http://memstrata.test", "ms_key", transport=httpx.MockTransport(handler))


def test_requests_carry_the_key_the_scope_and_json():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers["authorization"]
        seen["tenant"] = request.headers.get("x-memstrata-tenant")
        seen["body"] = json.loads(request.content)
        seen["path"] = request.url.path
        return httpx.Response(201, json={"episodes": [record()], "notes": [], "merged": []})

    with MemoryClient("http://memstrata.test", "ms_key", tenant="acme", transport=httpx.MockTransport(handler)) as m:
        from datetime import datetime, timezone

        result = m.add({"content": "hi"}, user_id="ana", timestamp=datetime(2026, 3, 2, tzinfo=timezone.utc))
    assert seen == {
        "auth": "Bearer ms_key", "tenant": "acme", "path": "/v1/memories",
        "body": {"messages": {"content": "hi"}, "user_id": "ana", "timestamp": "2026-03-02T00:00:00+00:00"},
    }
    assert result.ids == ["ep_1"]


def test_list_params_and_ids_are_encoded():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        return httpx.Response(200, json={"items": [record()], "next_cursor": "r1"})

    page = _client(handler).list(user_id="a b", layers=[0, 1], limit=2)
    assert isinstance(page, Page) and page.next_cursor == "r1"
    assert "layers=0&layers=1" in seen["url"] and "user_id=a+b" in seen["url"] and "agent_id" not in seen["url"]

    def getter(request: httpx.Request) -> httpx.Response:
        seen["raw"] = request.url.raw_path
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "nope", "field": None}})

    with pytest.raises(NotFound):
        _client(getter).get("ep/../x", user_id="ana")
    assert seen["raw"].startswith(b"/v1/memories/ep%2F..%2Fx")


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (404, {"error": {"code": "not_found", "message": "no memory", "field": None}}, NotFound, "not_found"),
        (422, {"error": {"code": "scope_required", "message": "scope!", "field": "user_id"}}, ScopeRequired, "scope_required"),
        (413, {"error": {"code": "content_too_large", "message": "big", "field": "body"}}, ContentTooLarge, "content_too_large"),
        (401, {"error": {"code": "unauthorized", "message": "key?", "field": None}}, Unauthorized, "unauthorized"),
        (403, {"error": {"code": "forbidden", "message": "no", "field": None}}, Forbidden, "forbidden"),
        (503, {"error": {"code": "store_error", "message": "busy", "field": None}}, StoreError, "store_error"),
        (418, {"error": {"code": "teapot", "message": "short and stout", "field": None}}, MemstrataError, "teapot"),
        (502, "<html>bad gateway</html>", ServerError, "internal_error"),
    ],
)
def test_typed_errors_are_rebuilt_from_the_code(status, body, error, code):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    with pytest.raises(error) as info:
        _client(handler).search("x", user_id="ana")
    assert info.value.code == code
    if isinstance(body, dict):
        assert info.value.message == body["error"]["message"] and info.value.field == body["error"]["field"]


def test_unreachable_server_is_a_store_error():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(StoreError, match="cannot reach"):
        _client(handler).health()


def test_async_client_shares_the_core():
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/search":
            return httpx.Response(200, json={"hits": [{"record": record(), "score": 0.5, "ranks": {"bm25": 1},
                                                       "provenance": ["ep_1"]}]})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "gone", "field": None}})

    async def run():
        async with AsyncMemoryClient("http://memstrata.test", "k", transport=httpx.MockTransport(handler)) as m:
            hits = await m.search("hi", user_id="ana")
            assert hits[0].id == "ep_1" and hits[0].ranks == {"bm25": 1} and type(hits[0].record) is Episode
            with pytest.raises(NotFound):
                await m.delete("ep_1", user_id="ana")

    asyncio.run(run())
    assert AsyncMemoryClient.search is MemoryClient.search  # one core, not two copies


def test_a_recipe_object_is_refused_locally():
    from memstrata.read.recipes import PRESETS
    from memstrata import InvalidInput

    with pytest.raises(InvalidInput):
        _client(lambda r: httpx.Response(200, json={"hits": []})).search("x", user_id="a", recipe=PRESETS["bm25"])


def test_new_keywords_travel_in_the_body():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        if request.url.path == "/v1/context":
            return httpx.Response(200, json={"query": "q", "text": "", "lines": [], "tokens": 0, "budget_tokens": 9})
        if request.url.path == "/v1/memories":
            return httpx.Response(201, json={"episodes": [record()], "notes": [], "merged": []})
        return httpx.Response(200, json={"hits": []})

    m = _client(handler)
    from datetime import datetime, timezone

    m.add("hi", user_id="ana", importance=0.25)
    m.search("q", user_id="ana", as_of=datetime(2026, 1, 1, tzinfo=timezone.utc), include_archived=True, reinforce=False)
    m.context("q", user_id="ana", budget_tokens=9, as_of=5.0, include_archived=True)
    assert seen[0]["importance"] == 0.25
    assert seen[1] == {"query": "q", "user_id": "ana", "limit": 10, "as_of": "2026-01-01T00:00:00+00:00",
                       "include_archived": True, "reinforce": False}
    assert seen[2]["as_of"] == 5.0 and seen[2]["include_archived"] is True


def test_organise_and_experience_answers_are_rebuilt():
    from memstrata.model import ExperienceHit, Scope
    from memstrata.organise import OrganiseReport

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/organise":
            return httpx.Response(200, json={"reports": [
                {"scope": {"user_id": "ana", "agent_id": None}, "steps": {"links": {"linked": 2, "pending": 0}},
                 "changed": 2, "complete": True},
                {"scope": {"user_id": None, "agent_id": "bot"}, "steps": {"topics": {"created": 1, "pending": 3}},
                 "changed": 1, "complete": False},
            ]})
        hit = {"record": record(1, id="ex_1", kind="experience"), "score": 0.7, "task": "t", "steps": ["a"],
               "outcome": "worked", "feedback": None, "success": True, "lesson": "do a"}
        return httpx.Response(200, json={"hits": [hit]})

    seen = []
    reports = _client(handler).organise(progress=lambda done, total: seen.append((done, total)))
    assert [type(r) for r in reports] == [OrganiseReport] * 2 and seen == [(1, 2), (2, 2)]
    assert reports[0].scope == Scope(user_id="ana") and reports[0].changed == 2 and reports[0].complete
    assert reports[1].scope == Scope(agent_id="bot") and not reports[1].complete
    [hit] = _client(handler).search_experience("t", user_id="ana")
    assert isinstance(hit, ExperienceHit) and type(hit.record) is Note and hit.lesson == "do a" and hit.label == "succeeded"


def test_reembed_refuses_an_embedder_object_locally():
    from memstrata import InvalidInput

    def handler(request: httpx.Request) -> httpx.Response:  # pragma: no cover - never reached
        raise AssertionError("no request expected")

    with pytest.raises(InvalidInput) as info:
        _client(handler).reembed(object())
    assert info.value.field == "embedder"
    with pytest.raises(InvalidInput):
        _client(handler).add_experience("t", "not a list", "o", user_id="ana")


EXPORT = b'{"type":"memstrata-export","version":2}\n{"type":"record","id":"ep_1"}\n{"type":"record","id":"ep_2"}\n'


def test_export_streams_to_a_path_whole_or_not_at_all(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["user_id"] == "ana"
        return httpx.Response(200, content=iter([EXPORT[:50], EXPORT[50:]]), headers={"Content-Type": "application/x-ndjson"})

    out = tmp_path / "ana.jsonl"
    assert _client(handler).export(out, user_id="ana") == 2
    assert out.read_bytes() == EXPORT and not list(tmp_path.glob(".*.tmp"))
    text = io.StringIO()
    assert _client(handler).export(text, user_id="ana") == 2 and text.getvalue() == EXPORT.decode()

    def broken(request: httpx.Request) -> httpx.Response:
        def body():
            yield EXPORT[:50]
            raise httpx.ReadError("connection reset", request=request)

        return httpx.Response(200, content=body())

    with pytest.raises(StoreError, match="cannot reach"):
        _client(broken).export(tmp_path / "cut.jsonl", user_id="ana")
    assert not (tmp_path / "cut.jsonl").exists() and not list(tmp_path.glob(".*.tmp"))

    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": {"code": "scope_required", "message": "scope!", "field": "user_id"}})

    with pytest.raises(ScopeRequired):
        _client(refused).export(tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists() and not list(tmp_path.glob(".*.tmp"))

    async def run():
        async def ahandler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=EXPORT)

        async with AsyncMemoryClient("http://memstrata.test", "k", transport=httpx.MockTransport(ahandler)) as m:
            assert await m.export(tmp_path / "async.jsonl", user_id="ana") == 2
        assert (tmp_path / "async.jsonl").read_bytes() == EXPORT

    asyncio.run(run())
