"""The public `Memory` / `AsyncMemory` API: every call, scopes, persistence and bad input."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from memstrata import (
    AsyncMemory,
    ContentTooLarge,
    EmptyContent,
    InvalidInput,
    InvalidTimestamp,
    Memory,
    NotFound,
    ScopeRequired,
    Settings,
)
from memstrata import limits
from memstrata.model import Episode

CHAT = [
    {"role": "user", "speaker": "Ana", "content": "I moved to Lisbon last week, the light here is amazing."},
    {"role": "assistant", "content": "Congratulations! Have you found a flat yet?"},
    {"role": "user", "speaker": "Ana", "content": "Yes, a small flat in Alfama with a view of the river."},
    {"role": "user", "speaker": "Ana", "content": "My sister Marta is visiting in June; she loves surfing."},
    {"role": "user", "speaker": "Ana", "content": "I started learning the guitar on Tuesdays."},
]


def snapshot(m: Memory, **scope) -> list[dict]:
    return [r.model_dump() for r in m.list(**scope, limit=1000).items]


def test_add_forms_and_search(memory: Memory):
    r1 = memory.add(CHAT, user_id="ana", session_id="s1", timestamp="2026-03-02T10:00:00Z")
    r2 = memory.add("I prefer tea over coffee", user_id="ana")
    r3 = memory.add({"role": "user", "content": "Allergic to peanuts", "metadata": {"kind": "health"}}, user_id="ana")
    assert len(r1.episodes) == 5 and len(r2.episodes) == 1 and len(r3.episodes) == 1
    assert all(isinstance(e, Episode) for e in r1.episodes)
    assert r1.episodes[0].event_time == datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    assert r1.episodes[0].speaker == "Ana" and r1.episodes[1].role == "assistant"
    assert r3.episodes[0].metadata == {"kind": "health"}
    ids = [e.id for e in r1.episodes]
    assert ids == sorted(ids), "ids sort by creation time"

    hits = memory.search("Which city did Ana move to?", user_id="ana", limit=3)
    assert hits[0].provenance == [r1.episodes[0].id]
    assert any(h.record.layer_value == 1 for h in hits), "notes are searched beside episodes"
    for h in hits:
        assert h.provenance == ([h.id] if h.record.layer_value == 0 else h.record.sources)
    assert hits[0].score >= hits[-1].score and set(hits[0].ranks) <= {"bm25", "dense"}

    sister = memory.search("who is Marta?", user_id="ana", limit=1)
    assert "Marta" in sister[0].content
    assert memory.search("peanuts", user_id="ana", filters={"kind": "health"})[0].provenance == r3.ids
    assert memory.search("peanuts", user_id="ana", filters={"kind": "other"}) == []


def test_search_time_range_and_recipes(memory: Memory):
    berlin = memory.add("Ran a marathon in Berlin", user_id="ana", timestamp="2023-09-24").ids
    porto = memory.add("Ran a half marathon in Porto", user_id="ana", timestamp="2024-10-06").ids
    hits = memory.search("marathon", user_id="ana", time_from="2024-01-01")
    assert hits and all(h.provenance == porto for h in hits)
    hits = memory.search("marathon", user_id="ana", time_to=datetime(2023, 12, 31, tzinfo=timezone.utc))
    assert hits and all(h.provenance == berlin for h in hits)
    for recipe in ("bm25", "dense", "hybrid"):
        got = memory.search("marathon Berlin", user_id="ana", recipe=recipe)
        assert got[0].provenance == berlin, recipe
        assert set(got[0].ranks) == ({"bm25", "dense"} if recipe == "hybrid" else {recipe})
    with pytest.raises(InvalidInput, match="unknown recipe"):
        memory.search("x", user_id="ana", recipe="nope")
    with pytest.raises(InvalidInput, match="time_from is after time_to"):
        memory.search("x", user_id="ana", time_from="2025-01-01", time_to="2024-01-01")


def test_context_fits_budget_and_cites_sources(memory: Memory):
    added = memory.add(CHAT, user_id="ana", session_id="s1", timestamp="2026-03-02T10:00:00Z")
    for budget in (12, 30, 60, 500):
        block = memory.context("Where does Ana live and with what view?", user_id="ana", budget_tokens=budget)
        assert block.tokens == len(block.text.split()) <= budget
        for line in block.lines:
            assert line.provenance and all(p in line.text for p in line.provenance)
            assert set(line.provenance) <= {e.id for e in added.episodes}
    big = memory.context("Where does Ana live?", user_id="ana", budget_tokens=500)
    assert {p for line in big.lines for p in line.provenance} == {e.id for e in added.episodes}
    assert "2026-03-02" in big.text and "Lisbon" in big.text
    for line in big.lines:  # a turn is not shown beside a note taken from it
        if line.layer == 0:
            assert not any(o.layer == 1 and line.record_id in o.provenance for o in big.lines)
    small = memory.context("Where does Ana live?", user_id="ana", budget_tokens=30)
    assert 1 <= len(small.lines) < 5


def test_get_list_update_history_delete(memory: Memory):
    ids = memory.add(CHAT, user_id="ana").ids
    assert memory.get(ids[0], user_id="ana").content.startswith("I moved to Lisbon")
    page = memory.list(user_id="ana", limit=2, layers=[0])
    assert [r.id for r in page.items] == ids[:2] and page.next_cursor
    rest = memory.list(user_id="ana", limit=10, cursor=page.next_cursor, layers=[0])
    assert [r.id for r in rest.items] == ids[2:] and rest.next_cursor is None

    updated = memory.update(ids[0], content="I moved to Porto last week.", metadata={"fixed": True}, user_id="ana")
    assert updated.content == "I moved to Porto last week." and updated.metadata == {"fixed": True}
    assert memory.search("Porto", user_id="ana", limit=1)[0].provenance == [ids[0]]
    assert [h.id for h in memory.search("Lisbon", user_id="ana", recipe="bm25")] == []
    events = memory.history(ids[0], user_id="ana")
    assert [e.event for e in events] == ["created", "updated"]
    assert events[1].old_content.startswith("I moved to Lisbon") and events[1].new_content.startswith("I moved to Porto")

    memory.delete(ids[1], user_id="ana")
    with pytest.raises(NotFound):
        memory.get(ids[1], user_id="ana")
    with pytest.raises(NotFound):
        memory.delete(ids[1], user_id="ana")
    assert memory.delete_all(user_id="ana") >= 4
    assert memory.list(user_id="ana").items == []


def test_scope_isolation(memory: Memory):
    memory.add("My bank PIN is 4711", user_id="ana", metadata={"secret": True})
    b = memory.add("Bob likes sailing", user_id="bob", metadata={"secret": True}).ids[0]
    for query in ("bank PIN", "sailing", "Bob"):
        for hit in memory.search(query, user_id="ana", filters={"secret": True}):
            assert hit.record.user_id == "ana"
        assert all("Bob" not in line.text for line in memory.context(query, user_id="ana").lines)
    with pytest.raises(NotFound):
        memory.get(b, user_id="ana")
    with pytest.raises(NotFound):
        memory.update(b, content="pwned", user_id="ana")
    with pytest.raises(NotFound):
        memory.delete(b, user_id="ana")
    assert memory.delete_all(user_id="ana") >= 1
    assert memory.get(b, user_id="bob").content == "Bob likes sailing"


def test_reset_and_stats(memory: Memory):
    memory.add(CHAT, user_id="ana", session_id="s1")
    memory.add("x y z", agent_id="bot")
    stats = memory.stats()
    assert stats["records"]["episodes"]["active"] == 6 and stats["scopes"] == 2
    assert memory.stats(user_id="ana")["records"]["episodes"]["active"] == 5
    memory.reset()
    assert memory.stats()["records"] == {}


BAD_CALLS = [
    (lambda m: m.add("hi"), ScopeRequired, "scope is required"),
    (lambda m: m.search("hi"), ScopeRequired, "scope is required"),
    (lambda m: m.add("", user_id="ana"), EmptyContent, "empty"),
    (lambda m: m.add("   ", user_id="ana"), EmptyContent, "empty"),
    (lambda m: m.add([], user_id="ana"), InvalidInput, "at least one"),
    (lambda m: m.add(42, user_id="ana"), InvalidInput, "got int"),
    (lambda m: m.add([{"role": "user"}], user_id="ana"), InvalidInput, r"messages\[0\].content"),
    (lambda m: m.add([{"content": "x", "colour": 1}], user_id="ana"), InvalidInput, "unknown key"),
    (lambda m: m.add("ok", user_id=7), InvalidInput, "user_id must be a string"),
    (lambda m: m.add("x" * (limits.MAX_CONTENT_CHARS + 1), user_id="ana"), ContentTooLarge, "limit"),
    (lambda m: m.add(["x"] * (limits.MAX_ITEMS_PER_ADD + 1), user_id="ana"), ContentTooLarge, "limit"),
    (lambda m: m.add("x", user_id="ana", metadata={"a": "b" * 20000}), ContentTooLarge, "limit"),
    (lambda m: m.add("x", user_id="ana", metadata={"a": object()}), InvalidInput, "JSON"),
    (lambda m: m.add("x", user_id="ana", metadata=[1]), InvalidInput, "must be a dict"),
    (lambda m: m.add("x", user_id="ana", timestamp="yesterday-ish"), InvalidTimestamp, "ISO 8601"),
    (lambda m: m.add([{"content": "x", "timestamp": "2024-13-45"}], user_id="ana"), InvalidTimestamp, "timestamp"),
    (lambda m: m.add("x", user_id="ana", timestamp=float("nan")), InvalidTimestamp, "finite"),
    (lambda m: m.search("q" * (limits.MAX_QUERY_CHARS + 1), user_id="ana"), ContentTooLarge, "limit"),
    (lambda m: m.search("q", user_id="ana", limit=0), InvalidInput, "between 1"),
    (lambda m: m.search("q", user_id="ana", limit="5"), InvalidInput, "integer"),
    (lambda m: m.search("q", user_id="ana", filters={"bad key": 1}), InvalidInput, "filter key"),
    (lambda m: m.search("q", user_id="ana", filters={"k": [1]}), InvalidInput, "filter value"),
    (lambda m: m.context("q", user_id="ana", budget_tokens=10**9), InvalidInput, "budget_tokens"),
    (lambda m: m.get("ep_nope", user_id="ana"), NotFound, "no memory"),
    (lambda m: m.get("", user_id="ana"), InvalidInput, "memory id"),
    (lambda m: m.update("ep_nope", content="x", user_id="ana"), NotFound, "no memory"),
    (lambda m: m.update("ep_nope", user_id="ana"), InvalidInput, "content"),
    (lambda m: m.history("ep_nope", user_id="ana"), NotFound, "no memory"),
    (lambda m: m.list(user_id="ana", cursor="garbage"), InvalidInput, "cursor"),
    (lambda m: m.list(user_id="ana", cursor="r" + "9" * 40), InvalidInput, "cursor"),
    (lambda m: m.list(user_id="ana", cursor="r\u00b2"), InvalidInput, "cursor"),
    (lambda m: m.search("q", user_id="ana", filters={"n": 2**70}), InvalidInput, "64-bit"),
    (lambda m: m.add("x", user_id="ana", timestamp="0001-01-01T00:00:00+01:00"), InvalidTimestamp, "years 1-9999"),
]


@pytest.mark.parametrize("call,error,message", BAD_CALLS)
def test_bad_input_is_rejected_and_changes_nothing(memory: Memory, call, error, message):
    memory.add(CHAT, user_id="ana")
    before = snapshot(memory, user_id="ana")
    with pytest.raises(error, match=message):
        call(memory)
    assert snapshot(memory, user_id="ana") == before


def test_failed_batch_stores_nothing(memory: Memory):
    batch = [{"content": "first ok"}, {"content": "second ok"}, {"content": ""}]
    with pytest.raises(EmptyContent, match=r"messages\[2\]"):
        memory.add(batch, user_id="ana")
    assert memory.list(user_id="ana").items == []


def test_async_memory(tmp_path, embedder):
    async def main() -> None:
        async with AsyncMemory(settings=Settings(db=tmp_path / "a.db"), embedder=embedder) as m:
            added = await asyncio.gather(*(m.add(f"fact number {i} about rivers", user_id="ana") for i in range(5)))
            assert len({r.ids[0] for r in added}) == 5
            hits = await m.search("rivers", user_id="ana", limit=10, layers=[0])
            assert len(hits) == 5
            block = await m.context("rivers", user_id="ana", budget_tokens=100)
            assert block.tokens <= 100 and block.lines
            rid = added[0].ids[0]
            await m.update(rid, content="fact about lakes", user_id="ana")
            assert (await m.get(rid, user_id="ana")).content == "fact about lakes"
            assert len(await m.history(rid, user_id="ana")) == 2
            assert len((await m.list(user_id="ana", layers=[0])).items) == 5
            await m.delete(rid, user_id="ana")
            assert await m.delete_all(user_id="ana") >= 4
            with pytest.raises(NotFound):
                await m.get(rid, user_id="ana")

    asyncio.run(main())


def test_persists_across_processes(tmp_path):
    db = tmp_path / "p.db"
    script = (
        "import json, sys\n"
        "from memstrata import Memory\n"
        "m = Memory(sys.argv[1])\n"
        "if sys.argv[2] == 'write':\n"
        "    print(json.dumps(m.add(['I keep bees on the roof', 'The hive is blue'], user_id='ana').ids))\n"
        "else:\n"
        "    print(json.dumps(m.search('bees', user_id='ana', limit=1)[0].provenance))\n"
    )
    wrote = json.loads(subprocess.run([sys.executable, "-c", script, str(db), "write"], check=True,
                                      capture_output=True, text=True).stdout)
    found = json.loads(subprocess.run([sys.executable, "-c", script, str(db), "read"], check=True,
                                      capture_output=True, text=True).stdout)
    assert found == [wrote[0]]


def test_async_memory_has_every_public_method():
    import inspect

    public = {n for n, f in inspect.getmembers(Memory, inspect.isfunction) if not n.startswith("_")}
    missing = {n for n in public if not inspect.iscoroutinefunction(getattr(AsyncMemory, n, None))}
    assert not missing, f"AsyncMemory lacks {sorted(missing)}"


def test_embedding_cache_is_per_owner_and_forgets_what_is_deleted(tmp_path, embedder):
    from memstrata.model import cache_key, text_hash

    class Counting:
        """The real model, counting the texts it is asked to embed."""

        name, dim = embedder.name, embedder.dim

        def __init__(self) -> None:
            self.texts: list[str] = []

        def embed(self, texts):
            self.texts += list(texts)
            return embedder.embed(texts)

    counting = Counting()
    m = Memory(settings=Settings(db=tmp_path / "c.db", extractor="none"), embedder=counting)
    text = "The vault code is 4471."
    m.add(text, user_id="ana")
    first = len(counting.texts)
    m.add(text, user_id="ana")
    assert len(counting.texts) == first, "the same owner's repeat comes from the cache"
    m.add(text, user_id="bob")
    assert len(counting.texts) == first + 1, "another owner never hits ana's cache (no timing tells bob)"
    keys = {who: cache_key(who, None, text_hash(text)) for who in ("ana", "bob")}
    assert set(m.store.embedding_cache_get(counting.name, list(keys.values()))) == set(keys.values())
    m.delete_all(user_id="ana")
    assert set(m.store.embedding_cache_get(counting.name, list(keys.values()))) == {keys["bob"]}
    m.close()


def test_a_document_is_nobodys_turn(memory: Memory):
    """A message without a role is the user's; a document's statements are nobody's ("The user: ..."
    would say the user stated them), unless it names a role."""
    doc = memory.add({"content": "Maria Lopez owns the backend. The budget is 120,000 euros.", "kind": "document"},
                     user_id="w")
    said = memory.add("I own the mobile app.", user_id="w")
    assert doc.episodes[0].role is None and said.episodes[0].role == "user"
    notes = {n.content for n in memory.list(user_id="w", layers=[1]).items}
    assert {"Maria Lopez owns the backend.", "The user owns the mobile app."} <= notes, notes
    block = memory.context("Who owns the backend?", user_id="w", budget_tokens=100)
    assert "Maria Lopez owns the backend" in block.text and "user: Maria" not in block.text
