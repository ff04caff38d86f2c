"""Memory over time (issue 5): "as of" queries, strength and forgetting, merging, organise under
SIGKILL, and complete deletion. Time is an injected clock: nothing sleeps."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memstrata import InvalidInput, Memory, NotFound, Settings
from memstrata.model import Scope
from memstrata.organise.lifecycle import strength_at
from memstrata.store.sqlite import SQLiteStore

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
ANA = {"user_id": "ana"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def open_memory(path: Path, embedder, clock: Clock, **settings) -> Memory:
    return Memory(settings=Settings(db=path, **settings), embedder=embedder, clock=clock)


def say(m: Memory, text: str, **kw):
    return m.add({"role": "user", "speaker": "Ana", "content": text}, user_id="ana", **kw)


def organise_until_done(m: Memory, **kw) -> list:
    reports = []
    for _ in range(50):
        reports = m.organise(user_id="ana", **kw)
        if all(r.complete for r in reports):
            return reports
    raise AssertionError("organise never completed")


# ---------------------------------------------------------------------- time: versions and "as of"


def test_stamps_and_history_follow_the_injected_clock(tmp_path, embedder):
    clock = Clock()
    m = open_memory(tmp_path / "m.db", embedder, clock)
    note = say(m, "I live in Lisbon.").notes[0]
    clock.advance(days=30)
    say(m, "I moved to Porto.")
    stored = m.get(note.id, **ANA)
    assert stored.created_at == T0 and stored.updated_at == T0 + timedelta(days=30)
    events = m.history(note.id, **ANA)
    assert [(e.event, e.at) for e in events] == [("created", T0), ("superseded", T0 + timedelta(days=30))]


def test_fact_changed_three_times_answers_now_and_as_of(tmp_path, embedder):
    clock = Clock()
    m = open_memory(tmp_path / "m.db", embedder, clock)
    moves = [(0, "I live in Lisbon."), (100, "I moved to Porto."), (200, "I live in Berlin now.")]
    notes = []
    for day, text in moves:
        clock.at = T0 + timedelta(days=day)
        notes.append(say(m, text).notes[0])
    clock.at = T0 + timedelta(days=400)
    city = {notes[0].id: "Lisbon", notes[1].id: "Porto", notes[2].id: "Berlin"}

    def answer(as_of=None) -> list[str]:
        hits = m.search("Where does Ana live?", **ANA, layers=[1], limit=5, as_of=as_of)
        return [city[h.id] for h in hits if h.id in city]

    assert answer() == ["Berlin"], "now: only the current fact"
    assert answer(T0 + timedelta(days=50)) == ["Lisbon"]
    assert answer(T0 + timedelta(days=150)) == ["Porto"]
    assert answer(T0 + timedelta(days=250)) == ["Berlin"]
    assert answer(T0 - timedelta(days=1)) == [], "before anything was said, nothing was valid"
    # every retriever honours as_of; episodes count from their event time
    for recipe in ("bm25", "dense", "hybrid"):
        hits = m.search("Where does Ana live?", **ANA, limit=10, as_of=T0 + timedelta(days=150), recipe=recipe)
        texts = " ".join(h.content for h in hits)
        assert "Berlin" not in texts and "Porto" in texts, recipe
    block = m.context("Where does Ana live?", **ANA, budget_tokens=100, as_of=T0 + timedelta(days=50))
    assert "Lisbon" in block.text and "Berlin" not in block.text

    # superseded versions stay, with their history, and can be asked for explicitly
    old = m.get(notes[0].id, **ANA)
    assert old.status == "superseded" and old.valid_to == T0 + timedelta(days=100)
    assert [e.event for e in m.history(notes[0].id, **ANA)] == ["created", "superseded"]
    assert {r.id for r in m.list(**ANA, layers=[1]).items} >= set(city)
    assert m.get(notes[2].id, **ANA).valid_from == T0 + timedelta(days=200)
    assert old.created_at == T0 and old.event_time == T0, "ingestion time and event time come from the clock"


# ---------------------------------------------------------------------- repeats and near-duplicates


def test_duplicates_added_ten_times_yield_one_note_with_ten_sources(tmp_path, embedder):
    m = open_memory(tmp_path / "m.db", embedder, Clock())
    episode_ids = []
    for i in range(10):
        episode_ids += say(m, "I have a golden retriever named Max.", session_id=f"s{i}").ids
    notes = [n for n in m.list(**ANA, layers=[1]).items if "retriever" in n.content]
    assert len(notes) == 1
    assert notes[0].sources == episode_ids
    assert [e.event for e in m.history(notes[0].id, **ANA)] == ["created"] + ["merged"] * 9


def test_merge_near_duplicates_keeps_the_older_and_is_idempotent(tmp_path, embedder):
    clock = Clock()
    m = open_memory(tmp_path / "m.db", embedder, clock)
    first = say(m, "I have a golden retriever named Max.").notes[0]
    clock.advance(days=1)
    second = say(m, "I have a golden retriever called Max.").notes[0]
    five = say(m, "I ran 5 km this morning.").notes[0]
    ten = say(m, "I ran 10 km this morning.").notes[0]
    assert first.dedup_key != second.dedup_key

    report = m.organise(user_id="ana")[0]
    assert report.steps["merge"]["merged"] == 1
    kept, closed = m.get(first.id, **ANA), m.get(second.id, **ANA)
    assert kept.status == "active" and kept.sources == first.sources + second.sources
    assert closed.status == "superseded" and closed.valid_to is None
    assert m.history(second.id, **ANA)[-1].detail == {"merged_into": first.id}
    assert m.history(first.id, **ANA)[-1].event == "merged"
    assert {m.get(five.id, **ANA).status, m.get(ten.id, **ANA).status} == {"active"}, "5 km is not 10 km"
    hits = m.search("golden retriever", **ANA, layers=[1], limit=5, as_of=clock() + timedelta(days=1))
    assert second.id not in [h.id for h in hits], "a merged duplicate is never valid on its own"

    again = m.organise(user_id="ana")[0]
    assert again.steps["merge"] == {"merged": 0, "pending": 0, "compared": 0}  # nothing changed since
    assert again.changed == 0, again.steps

    # a later run compares only what changed since the last complete one, against everything
    clock.advance(days=1)
    third = say(m, "I have a golden retriever, his name is Max.").notes[0]
    later = m.organise(user_id="ana")[0]
    assert later.steps["merge"]["compared"] == 1 and later.steps["merge"]["merged"] == 1
    assert m.get(third.id, **ANA).status == "superseded" and third.sources[0] in m.get(first.id, **ANA).sources


def test_organise_is_bounded_and_resumable(tmp_path, embedder):
    m = open_memory(tmp_path / "m.db", embedder, Clock())
    for i in range(4):
        say(m, f"I have a golden retriever named Max{i}.")
        say(m, f"I have a golden retriever called Max{i}.")
    first = m.organise(user_id="ana", max_work=1)[0]
    assert first.steps["merge"] == {"merged": 1, "pending": 3, "compared": 8}
    assert not first.complete
    for expected_pending in (2, 1, 0):  # no watermark until a run completes: every note is compared again
        step = m.organise(user_id="ana", max_work=1)[0].steps["merge"]
        assert (step["merged"], step["pending"]) == (1, expected_pending)
    active = [n for n in m.list(**ANA, layers=[1]).items if n.status == "active"]
    assert len(active) == 4
    m.organise(user_id="ana")
    assert m.organise(user_id="ana")[0].changed == 0


# ---------------------------------------------------------------------- strength and forgetting


def test_forgetting_archives_and_search_can_restore(tmp_path, embedder):
    clock = Clock()
    m = open_memory(tmp_path / "m.db", embedder, clock, extractor="none", half_life_days=30, archive_threshold=0.1)
    faded = say(m, "I keep my passport in the blue drawer.").ids[0]
    used = say(m, "My bank is Caixa Geral de Depositos.").ids[0]
    pinned = say(m, "My blood type is O negative.").ids[0]
    m.pin(pinned, **ANA)
    clock.advance(days=30)
    assert strength_at(m.get(faded, **ANA), clock(), m.settings) == pytest.approx(0.5)
    for _ in range(3):  # used every 40 days: reinforced each time
        clock.advance(days=40 if clock() > T0 + timedelta(days=30) else 10)
        hit = m.search("Which bank do I use?", **ANA, limit=1)[0]
        assert hit.id == used
        rec = m.get(used, **ANA)
        assert rec.last_access == clock() and rec.strength > 0.5
    assert m.get(faded, **ANA).last_access is None
    assert clock() == T0 + timedelta(days=120)

    report = m.organise(user_id="ana")[0]
    assert report.steps["decay"]["archived"] == 1
    assert m.get(faded, **ANA).status == "archived"
    assert m.get(used, **ANA).status == "active" and m.get(pinned, **ANA).status == "active"
    assert m.history(faded, **ANA)[-1].event == "archived"
    assert m.organise(user_id="ana")[0].changed == 0, "idempotent at the same time"

    query = "Where is my passport?"
    assert faded not in [h.id for h in m.search(query, **ANA, reinforce=False)], "archived: out of default search"
    found = m.search(query, **ANA, include_archived=True, limit=1)
    assert found[0].id == faded and found[0].record.status == "archived"
    restored = m.restore(faded, **ANA)
    assert restored.status == "active" and restored.strength == 1.0 and restored.last_access == clock()
    assert m.search(query, **ANA, limit=1)[0].id == faded
    assert [e.event for e in m.history(faded, **ANA)][-2:] == ["archived", "restored"]
    assert m.organise(user_id="ana")[0].steps["decay"]["archived"] == 0

    clock.advance(days=3650)  # ten years on: all fade but the pinned one
    m.organise(user_id="ana")
    statuses = {r.id: r.status for r in m.list(**ANA).items}
    assert statuses == {faded: "archived", used: "archived", pinned: "active"}
    m.archive(pinned, **ANA)
    assert m.get(pinned, **ANA).status == "archived"
    with pytest.raises(NotFound):
        m.restore("ep_nope", **ANA)


def test_ttl_policy_and_importance(tmp_path, embedder):
    clock = Clock()
    m = open_memory(
        tmp_path / "m.db", embedder, clock, extractor="none", half_life_days=30, archive_threshold=0.1,
        ttl_days={"episode": 365, "reminder": 7},
    )
    note = m.add({"content": "Buy milk on the way home", "kind": "reminder"}, **ANA).ids[0]
    vital = say(m, "I am allergic to penicillin.", importance=1.0).ids[0]
    minor = say(m, "The cafe had blue chairs.", importance=0.0).ids[0]
    clock.advance(days=30)  # a quarter of the vital memory's half-life (120 days); four of the minor one's (7.5)
    report = m.organise(user_id="ana")[0]
    assert report.steps["decay"] == {"archived": 1, "expired": 1, "pending": 0}
    assert m.get(note, **ANA).status == "archived"
    assert m.history(note, **ANA)[-1].detail == {"reason": "ttl"}
    assert m.get(minor, **ANA).status == "archived", "importance 0 halves the half-life twice"
    assert m.get(vital, **ANA).status == "active", "importance 1 doubles it twice"
    m.pin(vital, **ANA)
    clock.advance(days=400)
    m.organise(user_id="ana")
    assert m.get(vital, **ANA).status == "active", "pinned: never fades, never expires"
    with pytest.raises(InvalidInput):
        say(m, "x y z", importance=2)


# ---------------------------------------------------------------------- organise under SIGKILL

ORGANISER = r"""
import sys
from memstrata import Memory
m = Memory(sys.argv[1])
i = 0
while True:
    reports = m.organise(user_id="ana", max_work=int(sys.argv[2]))
    print(i, sum(r.changed for r in reports), flush=True)
    i += 1
"""

_PETS = ["dog", "cat", "parrot", "horse", "rabbit", "turtle", "hamster", "goat", "pony", "ferret"]
_CITIES = ["Lisbon", "Porto", "Madrid", "Paris", "Rome", "Vienna", "Prague", "Oslo", "Dublin", "Zurich"]


def test_organise_survives_sigkill_and_second_run_changes_nothing(tmp_path, embedder):
    db = tmp_path / "kill.db"
    clock = Clock(datetime.now(timezone.utc) - timedelta(days=3 * 365))
    m = open_memory(db, embedder, clock)
    for i in range(60):  # near-duplicate pairs (merge), half of them faded by now (decay)
        pet, city = _PETS[i % 10], _CITIES[i // 10 % 10]
        weight = 0.1 if i % 2 else 1.0
        say(m, f"I have a {pet} named Bobo{i} from {city}.", importance=weight, session_id=f"s{i % 7}")
        say(m, f"I have a {pet} called Bobo{i} from {city}.", importance=weight, session_id=f"s{i % 7}")
        say(m, f"I visited {city} with my {pet} Bobo{i} in spring.", importance=weight, session_id=f"s{i % 7}")
    m.close()

    env = {**os.environ, "MEMSTRATA_EMBED_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", ORGANISER, str(db), "3"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # one bounded run finished: the next one is under way
        assert line, "organiser produced no output"
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    store = SQLiteStore(db)
    assert store.integrity_check() == []
    store.close()
    m = Memory(settings=Settings(db=db), embedder=embedder)
    assert any(r.status != "active" for r in m.list(**ANA, limit=1000).items), "it had done some work"
    finish = organise_until_done(m)[0]
    assert finish.changed > 0, "the killed organiser had left work, which the next run finished"
    again = m.organise(user_id="ana")[0]
    assert again.changed == 0, again.steps

    records = m.list(**ANA, limit=1000).items
    by_id = {r.id: r for r in records}
    closed = [r for r in records if r.status == "superseded"]
    assert closed, "near-duplicates were merged"
    for r in closed:
        into = m.history(r.id, **ANA)[-1].detail["merged_into"]
        assert by_id[into].status == "active" and set(r.sources) <= set(by_id[into].sources)
    archived = [r for r in records if r.status == "archived"]
    assert archived and all(r.importance < 0.5 for r in archived)


# ---------------------------------------------------------------------- complete deletion

TOKEN = "Qxvzorblatt"


def _every_search(m: Memory, query: str) -> list:
    hits = []
    for recipe in ("bm25", "dense", "hybrid"):
        for layers in ([0], [1], [2], [3], None):
            for as_of in (None, datetime.now(timezone.utc) + timedelta(days=1)):
                hits += m.search(query, **ANA, recipe=recipe, layers=layers, limit=50, include_archived=True,
                                 as_of=as_of, reinforce=False)
    return hits


def _traces(db: Path, token: str, *, fts_segments: bool = True) -> list[str]:
    """Every table row (of any text column) that still holds the token.

    The lexical index's segments keep a deleted row's terms (marked deleted: no search finds them)
    until they are merged; `vacuum()` merges them, so `fts_segments=False` skips them before it.
    """
    conn = sqlite3.connect(db)
    found = []
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if not fts_segments:
        tables.remove("records_fts_data")
    for table in tables:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info('{table}')")]
        for row in conn.execute(f"SELECT * FROM '{table}'"):
            for col, value in zip(cols, row):
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                if isinstance(value, str) and token.lower() in value.lower():
                    found.append(f"{table}.{col}")
    found += [f"fts:{r[0]}" for r in conn.execute("SELECT rowid FROM records_fts WHERE records_fts MATCH ?", (token,))]
    conn.close()
    return found


def test_delete_episode_leaves_no_trace_in_any_layer_or_index(tmp_path, embedder):
    db = tmp_path / "m.db"
    m = open_memory(db, embedder, Clock(datetime.now(timezone.utc)))
    chat = [
        "I love hiking in the mountains near Sintra.",
        "I love swimming in the ocean at Cascais.",
        "I love cooking seafood rice on Sundays.",
        f"I love {TOKEN} pastries from the corner bakery.",
        "I adopted a cat named Whiskers.",
    ]
    added = m.add([{"role": "user", "speaker": "Ana", "content": c} for c in chat], **ANA, session_id="s1")
    secret = added.episodes[3].id
    # the same statement from two episodes; the first carries the token in its metadata
    cat_a = m.add({"speaker": "Ana", "content": "I adopted a cat named Whiskers.", "metadata": {"code": TOKEN}}, **ANA).ids[0]
    shared = [n for n in m.list(**ANA, layers=[1]).items if "Whiskers" in n.content][0]
    assert shared.sources == [added.episodes[4].id, cat_a]
    m.organise(user_id="ana")
    layers_with_token = {h.record.layer_value for h in _every_search(m, TOKEN) if TOKEN in json.dumps(h.record.model_dump(mode="json"))}
    assert {0, 1, 3} <= layers_with_token, "the token reached episodes, notes and the profile"

    with pytest.raises(InvalidInput, match="not an episode"):
        m.delete_episode(shared.id, **ANA)
    m.delete_episode(secret, **ANA)
    m.delete_episode(cat_a, **ANA)

    for hit in _every_search(m, TOKEN) + _every_search(m, f"{TOKEN} pastries from the corner bakery"):
        assert TOKEN.lower() not in json.dumps(hit.record.model_dump(mode="json")).lower(), hit.record
    for record in m.list(**ANA, limit=1000).items:
        assert TOKEN.lower() not in json.dumps(record.model_dump(mode="json")).lower()
        assert TOKEN.lower() not in json.dumps([e.model_dump(mode="json") for e in m.history(record.id, **ANA)]).lower()
    cat = m.get(shared.id, **ANA)
    assert cat.sources == [added.episodes[4].id] and cat.metadata == {}, "re-derived from the remaining source"
    assert _traces(db, TOKEN, fts_segments=False) == []
    conn = sqlite3.connect(db)
    audit = conn.execute("SELECT * FROM audit WHERE record_id = ?", (secret,)).fetchall()
    assert len(audit) == 1 and len(audit[0]) == 4, "the audit keeps the id and the time only"
    conn.close()
    m.organise(user_id="ana")  # rebuilds topics and profile from what remains
    assert _traces(db, TOKEN, fts_segments=False) == []

    m.vacuum()
    assert _traces(db, TOKEN) == []
    assert m.store.integrity_check() == []
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            data = path.read_bytes()
            assert TOKEN[2:].lower().encode() not in data.lower(), path
    with pytest.raises(NotFound):
        m.delete_episode(secret, **ANA)


def test_delete_all_of_a_session_rederives_notes_it_shared(tmp_path, embedder):
    m = open_memory(tmp_path / "m.db", embedder, Clock())
    say(m, "I play the cello in an orchestra!", session_id="b", metadata={"tag": TOKEN})
    say(m, f"My {TOKEN} code is secret.", session_id="b")
    kept = say(m, "I play the cello in an orchestra.", session_id="a").ids[0]
    assert m.delete_all(user_id="ana", session_id="b") == 3, "two episodes and the note only they supported"
    notes = m.list(**ANA, layers=[1]).items
    assert len(notes) == 1 and notes[0].sources == [kept] and notes[0].session_id == "a"
    assert TOKEN not in json.dumps(notes[0].model_dump(mode="json"))
    assert m.list(user_id="ana", session_id="b").items == []
    assert m.delete_all(**ANA) == 2
    assert m.list(**ANA).items == []


def test_store_filters_as_of_archived_and_kinds(tmp_path, embedder):
    from memstrata.ids import new_id
    from memstrata.model import Note, SearchFilters

    store = SQLiteStore(tmp_path / "s.db")
    day = timedelta(days=1)

    def note(text, *, start, end=None, status="active", kind="fact"):
        return Note(id=new_id("note"), kind=kind, user_id="ana", content=text, event_time=T0 + start * day,
                    created_at=T0, updated_at=T0, valid_from=T0 + start * day,
                    valid_to=T0 + end * day if end is not None else None, status=status)

    old = note("ana lives in lisbon", start=0, end=10, status="superseded")
    new = note("ana lives in porto", start=10)
    faded = note("ana lives near a park", start=0, status="archived")
    merged = note("ana lives in lisbon town", start=0, status="superseded")  # closed without valid_to
    task = note("ana lives task", start=0, kind="experience")
    records = [old, new, faded, merged, task]
    store.put(records, embedder.embed([r.content for r in records]), embedder.name)
    ana = Scope(user_id="ana")
    query = embedder.embed(["where does ana live"])[0]

    def ids(filters):
        lexical = {i for i, _ in store.lexical_search(["lives"], ana, filters, 10)}
        dense = {i for i, _ in store.vector_search(query, embedder.name, ana, filters, 10)}
        listed = {r.id for r in store.list(ana, filters).items}
        assert lexical == dense == listed, (lexical, dense, listed)
        return lexical

    assert ids(SearchFilters()) == {new.id, task.id}
    assert ids(SearchFilters(include_archived=True)) == {new.id, task.id, faded.id}
    assert ids(SearchFilters(as_of=T0 + 5 * day)) == {old.id, task.id}
    assert ids(SearchFilters(as_of=T0 + 10 * day)) == {new.id, task.id}
    assert ids(SearchFilters(as_of=T0 + 5 * day, include_archived=True)) == {old.id, task.id, faded.id}
    assert ids(SearchFilters(kinds=["experience"])) == {task.id}
    assert ids(SearchFilters(include_inactive=True)) == {r.id for r in records}
    assert all(SearchFilters(as_of=T0 + 5 * day).admits(r) == (r.id in {old.id, task.id}) for r in records)
    store.close()
