"""`Memory` over the Postgres store, end to end with the real embedder; and what only Postgres has
(two processes' caches, the erasure of every row, settings and URL errors).

Needs $MEMSTRATA_TEST_POSTGRES_URL (`eval "$(bash scripts/postgres-test-server)"`); skipped without it
unless MEMSTRATA_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from memstrata import Memory, NotFound, Settings
from memstrata.errors import ConfigError, StoreError
from memstrata.model import Scope, SearchFilters
from memstrata.store import open_store
from test_memory import CHAT

TOKEN = "Qxvzorblatt"


@pytest.fixture
def settings(pg_schema) -> Settings:
    url, schema = pg_schema
    return Settings(store="postgres", postgres_url=url, postgres_schema=schema)


@pytest.fixture
def memory(settings, embedder):
    m = Memory(settings=settings, embedder=embedder)
    yield m
    m.close()


def _rows_holding(memory: Memory, token: str) -> list[str]:
    """Every table.column of the store's schema that still holds `token` in any row."""
    store = memory.store
    found = []
    tables = [t for (t,) in store._read(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [store.schema])]
    for table in tables:
        for (col,) in store._read(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [store.schema, table],
        ):
            hits = store._read(f'SELECT count(*) FROM "{table}" WHERE position(lower(%s) IN lower("{col}"::text)) > 0',
                               [token])
            if hits[0][0]:
                found.append(f"{table}.{col}")
    return found


def test_conversation_search_context_organise_history_delete(memory: Memory):
    added = memory.add(CHAT, user_id="ana", session_id="s1", timestamp="2026-03-02T10:00:00Z")
    memory.add("I prefer tea over coffee", user_id="ana")
    hits = memory.search("Which city did Ana move to?", user_id="ana", limit=3)
    assert hits[0].provenance == [added.episodes[0].id]
    assert {"bm25", "dense"} >= set(hits[0].ranks) and hits[0].score >= hits[-1].score
    block = memory.context("Who is visiting in June?", user_id="ana", budget_tokens=200)
    assert "Marta" in block.text and all(line.provenance for line in block.lines)
    marta = next(line for line in block.lines if "Marta" in line.text)
    assert marta.provenance == [added.episodes[3].id]

    reports = memory.organise(user_id="ana")
    assert reports and reports[0].changed > 0
    assert any(r.layer_value >= 2 for r in memory.list(user_id="ana", limit=1000).items), "topics were built"
    assert memory.organise(user_id="ana")[0].changed == 0, "a second run changes nothing"

    tea = memory.search("tea", user_id="ana", limit=1)[0]
    memory.update(tea.provenance[0], content="I prefer green tea over coffee", user_id="ana")
    events = memory.history(tea.provenance[0], user_id="ana")
    assert [e.event for e in events] == ["created", "updated"]
    assert events[1].old_content == "I prefer tea over coffee"

    secret = memory.add(f"My locker code is {TOKEN} 4471", user_id="ana", session_id="s2")
    assert memory.search(TOKEN, user_id="ana")[0].provenance == secret.ids
    memory.delete_episode(secret.ids[0], user_id="ana")
    assert memory.search(TOKEN, user_id="ana", recipe="bm25") == []
    assert all(TOKEN not in h.content for h in memory.search(TOKEN, user_id="ana", recipe="dense"))
    assert _rows_holding(memory, TOKEN) == []
    with pytest.raises(NotFound):
        memory.history(secret.ids[0], user_id="ana")
    assert memory.delete_all(user_id="ana") > 0
    assert memory.list(user_id="ana").items == [] and memory.store.stats()["records"] == {}
    memory.vacuum()
    assert memory.store.integrity_check() == []


def test_two_processes_see_each_others_writes(settings, embedder):
    """Two Memory objects are two pools of connections (as two server processes): each one's cached
    vector matrix is invalidated by the version stamp the other's writes bump."""
    a, b = Memory(settings=settings, embedder=embedder), Memory(settings=settings, embedder=embedder)
    try:
        a.add("I went sailing on the Tagus", user_id="ana")
        assert len(b.search("sailing", user_id="ana", recipe="dense")) >= 1
        cached = b.store._matrices.get(("ana", None, embedder.name), b.store._scope_version(Scope(user_id="ana")))
        assert cached is not None, "b cached the scope's matrix"
        second = a.add("Sailing again, this time to Cascais", user_id="ana")
        dense = b.search("sailing to Cascais", user_id="ana", recipe="dense", limit=10)
        assert second.ids[0] in [i for h in dense for i in h.provenance]
        b.delete(second.ids[0], user_id="ana")
        assert all(second.ids[0] not in h.provenance for h in a.search("Cascais", user_id="ana", recipe="dense"))
    finally:
        a.close()
        b.close()


def test_another_users_memory_is_never_returned(memory: Memory):
    mine = memory.add("My bank PIN hint is the year of the flood", user_id="ana")
    memory.add("My bank PIN hint is my dog's birthday", user_id="bob")
    memory.add("Agent scratchpad about bank PIN hints", agent_id="helper")
    for recipe in ("bm25", "dense", "hybrid", "strata"):
        hits = memory.search("bank PIN hint", user_id="ana", recipe=recipe, limit=20)
        assert hits and {h.record.user_id for h in hits} == {"ana"}, recipe
    block = memory.context("bank PIN hint", user_id="ana", budget_tokens=300)
    assert "dog" not in block.text and "scratchpad" not in block.text
    with pytest.raises(NotFound):
        memory.get(mine.ids[0], user_id="bob")
    bobs = len(memory.list(user_id="bob", limit=1000).items)
    assert memory.delete_all(user_id="bob") == bobs and memory.search("dog", user_id="bob") == []
    assert [h.provenance for h in memory.search("flood", user_id="ana", limit=1)] == [mine.ids]


def test_settings_and_url_errors_name_the_problem_without_the_password(pg_schema, monkeypatch):
    url, _ = pg_schema
    with pytest.raises(ConfigError, match="needs postgres_url"):
        open_store(Settings(store="postgres"))
    with pytest.raises(ConfigError, match="must be a postgresql://"):
        open_store(Settings(store="postgres", postgres_url="mysql://u:hunter2@h/db"))
    bad = "postgresql://memstrata:hunter2-secret@127.0.0.1:1/memstrata_test?connect_timeout=2"
    with pytest.raises(StoreError, match="cannot connect") as err:
        open_store(Settings(store="postgres", postgres_url=bad))
    assert "hunter2" not in str(err.value) and "***" in str(err.value)
    wrong = url.replace("//memstrata:memstrata@", "//memstrata:not-the-password@")
    with pytest.raises(StoreError) as err:
        open_store(Settings(store="postgres", postgres_url=wrong))
    assert "not-the-password" not in str(err.value)
    monkeypatch.setenv("MEMSTRATA_STORE", "postgres")
    monkeypatch.setenv("MEMSTRATA_POSTGRES_URL", url)
    loaded = Settings.load()
    assert loaded.store == "postgres" and loaded.postgres_url == url
    with pytest.raises(ConfigError, match="postgres_schema"):
        Settings.load(postgres_schema="Robert'); DROP")


@pytest.mark.parametrize("processes", [2, 1])
def test_concurrent_writers_of_one_statement_store_it_once(pg_schema, embedder, processes):
    """Four threads put the same statement at once, through two stores (as two processes) or one store's
    pool: one inserts, the others merge."""
    import threading
    from datetime import datetime, timezone

    from memstrata.ids import new_id
    from memstrata.model import Episode, Note
    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    stores = [PostgresStore(url, schema=schema) for _ in range(processes)] * (4 // processes)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    vec = embedder.embed(["ana adopted a dog"])
    barrier, results = threading.Barrier(4), []

    def write(store: PostgresStore) -> None:
        ep = Episode(id=new_id("episode"), user_id="ana", content="I adopted a dog", event_time=t0,
                     created_at=t0, updated_at=t0)
        note = Note(id=new_id("note"), user_id="ana", content="ana adopted a dog", event_time=t0, created_at=t0,
                    updated_at=t0, sources=[ep.id], dedup_key="k-dog")
        barrier.wait()
        results.append(store.put([ep, note], np.vstack([vec, vec]), embedder.name))

    try:
        threads = [threading.Thread(target=write, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        notes = [r for r in stores[0].list(Scope(user_id="ana")).items if r.layer_value == 1]
        assert len(notes) == 1 and len(notes[0].sources) == 4
        assert sorted(len(r) for r in results) == [0, 1, 1, 1]
    finally:
        for s in set(stores):
            s.close()


def test_export_from_sqlite_import_into_postgres_and_back(tmp_path, settings, embedder):
    """Every layer, history, links and lifecycle fields move between the backends losslessly."""
    from test_export_roundtrip import ANA, Clock, build, results, snapshot

    from memstrata.transfer import export_jsonl, import_file

    clock = Clock()
    src = Memory(settings=Settings(db=tmp_path / "src.db"), embedder=embedder, clock=clock)
    pg = Memory(settings=settings, embedder=embedder, clock=clock)
    back = Memory(settings=Settings(db=tmp_path / "back.db"), embedder=embedder, clock=clock)
    try:
        build(src, clock)
        before = snapshot(src)
        count = export_jsonl(src, tmp_path / "ana.jsonl", **ANA)
        assert import_file(pg, tmp_path / "ana.jsonl").records == count
        assert snapshot(pg) == before
        dense = [hits for i, hits in enumerate(results(pg)) if i // 3 % 3 == 1]  # the dense recipe: same scan
        assert dense == [hits for i, hits in enumerate(results(src)) if i // 3 % 3 == 1]
        assert pg.organise(**ANA)[0].changed == 0, "an imported store is already organised"
        assert export_jsonl(pg, tmp_path / "again.jsonl", **ANA) == count
        import_file(back, tmp_path / "again.jsonl")
        assert snapshot(back) == before
    finally:
        for m in (src, pg, back):
            m.close()


def test_an_import_leaves_the_planner_statistics_fresh(tmp_path, settings, embedder, monkeypatch):
    """A bulk import ANALYZEs the tables: a new schema's estimates (never analysed) pick bad plans."""
    import memstrata.transfer as transfer

    src = Memory(settings=Settings(db=tmp_path / "src.db"), embedder=embedder)
    pg = Memory(settings=settings, embedder=embedder)
    try:
        src.add(CHAT, user_id="ana", session_id="s1")
        count = transfer.export_jsonl(src, tmp_path / "ana.jsonl", user_id="ana")

        def estimated_rows() -> float:
            return pg.store._read("SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE n.nspname = %s AND c.relname = 'records'", [pg.store.schema])[0][0]

        assert estimated_rows() < 0  # never analysed
        monkeypatch.setattr(transfer, "ANALYZE_AFTER", count + 1)
        transfer.import_jsonl(pg, tmp_path / "ana.jsonl", user_id="ben")  # below the threshold
        assert estimated_rows() < 0
        monkeypatch.setattr(transfer, "ANALYZE_AFTER", count)
        transfer.import_jsonl(pg, tmp_path / "ana.jsonl", user_id="cy", new_ids=True)
        assert estimated_rows() == 2 * count
    finally:
        src.close()
        pg.close()


def test_a_foreign_or_newer_schema_is_refused(pg_schema):
    import psycopg

    from memstrata.errors import SchemaTooNew, StoreCorrupt
    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (x int)")
    with pytest.raises(StoreCorrupt, match="not a memstrata store"):
        PostgresStore(url, schema=schema)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {schema}.orders")
    PostgresStore(url, schema=schema).close()
    PostgresStore(url, schema=schema).close()  # opening again migrates nothing
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(SchemaTooNew, match="upgrade memstrata"):
        PostgresStore(url, schema=schema)


# ---------------------------------------------------------------------- the pool, retries, API keys


def _with(url: str, **params: str) -> str:
    """`url` with libpq query parameters added."""
    from urllib.parse import quote, urlencode

    return url + ("&" if "?" in url else "?") + urlencode(params, quote_via=quote)


def _wait_until_blocked_by(url: str, blocker) -> None:
    """Wait until some session waits for a lock that the connection `blocker` holds."""
    import time

    import psycopg

    pid = blocker.info.backend_pid
    with psycopg.connect(url, autocommit=True) as watch:
        for _ in range(200):
            if watch.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                             [pid]).fetchone()[0]:
                return
            time.sleep(0.025)
    raise AssertionError("the store never waited for the other connection's lock")


def _two_notes(store) -> tuple[str, str]:
    """Two active notes of user ana, the first with the smaller row id."""
    from datetime import datetime, timezone

    from memstrata.ids import new_id
    from memstrata.model import Note

    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    notes = [Note(id=new_id("note"), user_id="ana", content=text, event_time=t0, created_at=t0, updated_at=t0)
             for text in ("ana likes tea", "ana likes green tea")]
    store.put(notes)
    return notes[0].id, notes[1].id


def test_reads_run_concurrently_on_the_pool(pg_schema):
    import threading
    import time

    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    took = {}
    for size in (4, 1):
        store = PostgresStore(url, schema=schema, pool_max=size)
        threads = [threading.Thread(target=store.execute, args=("SELECT pg_sleep(0.3)",)) for _ in range(4)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took[size] = time.perf_counter() - start
        store.close()
    assert took[4] < 0.9 and took[1] >= 1.2, took


def test_pool_settings_are_checked(pg_schema):
    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    with pytest.raises(ConfigError, match="postgres_pool_min 0-postgres_pool_max, got min 5, max 2"):
        PostgresStore(url, schema=schema, pool_min=5, pool_max=2)
    with pytest.raises(ConfigError, match="postgres_pool_max"):
        Settings.load(postgres_pool_max=0)
    loaded = Settings.load(postgres_pool_min=0, postgres_pool_max=3)
    assert (loaded.postgres_pool_min, loaded.postgres_pool_max) == (0, 3)


def test_a_full_pool_says_so(pg_schema):
    import threading
    import time

    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    store = PostgresStore(_with(url, connect_timeout="1"), schema=schema, pool_max=1)

    def hold() -> None:
        with store._write() as cur:
            cur.execute("SELECT pg_sleep(2)")

    holder = threading.Thread(target=hold)
    try:
        holder.start()
        time.sleep(0.3)
        with pytest.raises(StoreError, match=r"came free within 1 s: all 1 of this process's are busy"):
            store.stats()
    finally:
        holder.join()
        store.close()


def test_the_pool_reconnects_after_the_server_dropped_its_connections(pg_schema):
    """A server restart breaks every pooled connection: the call that meets the break fails, the next
    ones get new connections."""
    import psycopg

    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    name = f"memstrata-{schema}"
    store = PostgresStore(_with(url, application_name=name), schema=schema, pool_min=3)
    try:
        store._db._pool.wait(10)
        with psycopg.connect(url, autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE application_name = %s", [name]).fetchone()[0]
        assert killed >= 3  # (the pool may have grown while the store opened)
        with pytest.raises(StoreError, match="Postgres database postgresql://"):
            store.stats()
        for _ in range(5):
            assert store.stats()["records"] == {}
    finally:
        store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.stats()


def test_a_transaction_that_loses_a_deadlock_is_run_again(pg_schema, caplog):
    """The store's merge locks its two rows in row-id order; another connection holds the second and then
    asks for the first. Postgres aborts the merge (it waited first); the store runs it again."""
    import threading
    import time

    import psycopg

    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    store = PostgresStore(url, schema=schema)
    keep, drop = _two_notes(store)
    result: dict = {}
    try:
        with psycopg.connect(url) as other, caplog.at_level("WARNING", logger="memstrata.store.postgres_conn"):
            other.execute(f"SET search_path TO {schema}")
            other.execute("SELECT 1 FROM records WHERE id = %s FOR UPDATE", [drop])
            merge = threading.Thread(target=lambda: result.update(
                merged=store.merge_records(keep, drop, Scope(user_id="ana"), at=1.0)))
            merge.start()
            _wait_until_blocked_by(url, other)
            time.sleep(0.3)  # the merge's deadlock check fires first, so the merge is the one aborted
            other.execute("SELECT 1 FROM records WHERE id = %s FOR UPDATE", [keep])  # the deadlock
            other.commit()
            merge.join(30)
        assert result == {"merged": True}
        assert any("deadlock detected" in r.getMessage() for r in caplog.records), "the merge was run again"
        states = {r.id: r.status for r in store.get([keep, drop], Scope(user_id="ana"))}
        assert states == {keep: "active", drop: "superseded"}
        assert [e.event for e in store.history(drop, Scope(user_id="ana"))] == ["created", "superseded"]
    finally:
        store.close()


def test_a_serialization_failure_is_run_again(pg_schema, caplog):
    """Under `default_transaction_isolation = serializable` (a server may be set so), a row changed by a
    transaction that committed after the store's began fails the store's with 40001: it is run again."""
    import threading

    import psycopg

    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    store = PostgresStore(_with(url, options="-c default_transaction_isolation=serializable"), schema=schema)
    note, _ = _two_notes(store)
    result: dict = {}
    try:
        with psycopg.connect(url) as other, caplog.at_level("WARNING", logger="memstrata.store.postgres_conn"):
            other.execute(f"UPDATE {schema}.records SET importance = 0.9 WHERE id = %s", [note])
            archive = threading.Thread(target=lambda: result.update(changed=store.set_status(
                [note], Scope(user_id="ana"), "archived", at=1.0, event="archived")))
            archive.start()
            _wait_until_blocked_by(url, other)
            other.commit()
            archive.join(30)
        assert result == {"changed": [note]}
        assert any("could not serialize" in r.getMessage() for r in caplog.records), "the archive was run again"
        [record] = store.get([note], Scope(user_id="ana"))
        assert (record.status, record.importance) == ("archived", 0.9)
    finally:
        store.close()


def test_api_keys_live_in_the_schema_and_every_server_on_it_accepts_them(pg_schema, settings, tmp_path,
                                                                          monkeypatch):
    """Keys made by one process are accepted by a server (two worker processes) on the same schema, and
    a revocation made elsewhere stops them at the next request. No key file is written."""
    import httpx

    from memstrata.server.keys import PostgresKeyStore, open_key_store
    from memstrata.server.launch import server_process
    from test_server_keys import _cli
    from typer.testing import CliRunner

    url, schema = pg_schema
    here, there = open_key_store(settings, tmp_path / "k.db"), open_key_store(settings, tmp_path / "k2.db")
    try:
        assert isinstance(here, PostgresKeyStore)
        created = here.create(tenant="acme", label="ci")
        assert there.verify(created.token).id == created.key.id and there.has_active_keys()
        raw = here._store.execute("SELECT hash FROM api_keys")
        assert created.token not in str(raw) and len(raw[0][0]) == 64
        here._store.reset()  # erasing the memories leaves the keys
        assert there.verify(created.token) is not None

        env = {"MEMSTRATA_STORE": "postgres", "MEMSTRATA_POSTGRES_URL": url, "MEMSTRATA_POSTGRES_SCHEMA": schema}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        out = CliRunner().invoke(_cli(), ["--db", str(tmp_path / "m.db"), "keys", "list", "--json"])
        assert out.exit_code == 0 and [k["id"] for k in json.loads(out.output)] == [created.key.id], out.output
        with server_process(db=tmp_path / "m.db", workers=2, extra_env=env) as server:
            auth = {"Authorization": f"Bearer {created.token}"}
            get = lambda: httpx.get(server.url + "/v1/memories", params={"user_id": "ana"}, headers=auth, timeout=30)
            assert [get().status_code for _ in range(4)] == [200] * 4
            there.revoke(created.key.id)
            assert here.verify(created.token) is None
            assert [get().status_code for _ in range(4)] == [401] * 4
        assert not list(tmp_path.glob("*.keys.db")) and not (tmp_path / "k.db").exists()
    finally:
        here.close()
        there.close()


def test_the_keys_of_a_key_file_move_into_the_schema(settings, tmp_path, caplog):
    """A server moving to store = postgres keeps its keys: the file's keys are copied in once, revoked
    ones stay revoked, and keys made since in the schema are kept."""
    from memstrata.server.keys import KeyStore, open_key_store

    file = KeyStore(tmp_path / "m.db.keys.db")
    kept, gone = file.create(tenant="acme"), file.create(tenant=None, admin=True)
    file.revoke(gone.key.id)
    file.close()
    with caplog.at_level("WARNING", logger="memstrata.server"):
        keys = open_key_store(settings, tmp_path / "m.db.keys.db")
    try:
        assert "copied 2 API key(s)" in caplog.text
        assert keys.verify(kept.token).tenant == "acme" and keys.verify(gone.token) is None
        newer = keys.create(tenant="beta")
        assert keys.import_file(tmp_path / "m.db.keys.db") == 0
        assert [k.id for k in keys.list()] == [kept.key.id, gone.key.id, newer.key.id]
    finally:
        keys.close()


def test_touch_gives_way_to_a_writer_holding_the_row(pg_schema):
    """Reinforcement is best effort: a row another transaction has locked is left alone (0 rows), the
    reader does not wait for the lock."""
    import psycopg

    from memstrata.model import Scope
    from memstrata.store.postgres import PostgresStore

    url, schema = pg_schema
    store = PostgresStore(url, schema=schema)
    try:
        first, second = _two_notes(store)
        with psycopg.connect(url) as holder:
            holder.execute(f'SELECT 1 FROM "{schema}".records WHERE id = %s FOR UPDATE', [first])
            assert store.touch({first: 0.5}, Scope(user_id="ana"), 1.0) == 0
            assert store.touch({second: 0.5}, Scope(user_id="ana"), 1.0) == 1, "an unlocked row is touched"
            holder.rollback()
        assert store.touch({first: 0.5}, Scope(user_id="ana"), 1.0) == 1
    finally:
        store.close()


# ---------------------------------------------------------------------- the posting table (schema v3)


def _postings(store) -> set[tuple[str, str, float]]:
    """(record id, lexeme, tf) of every posting."""
    return {(i, lex, float(tf)) for i, lex, tf in store._read(
        "SELECT r.id, p.lexeme, p.tf FROM postings p JOIN records r ON r.rid = p.rid")}


def _postings_from_tsv(store) -> set[tuple[str, str, float]]:
    """The postings the records' tsvectors call for (a speaker's occurrence counts half)."""
    return {(i, lex, float(tf)) for i, lex, tf in store._read(
        "SELECT r.id, u.lexeme, cardinality(u.weights) - 0.5 * cardinality(array_positions(u.weights, 'B')) "
        "FROM records r CROSS JOIN LATERAL unnest(r.tsv) AS u")}


def _lengths(store) -> set[tuple[str | None, str | None, int, int]]:
    """(user_id, agent_id, documents, total length) per owner as `record_lengths` keeps them (owners with none left out)."""
    return {(u or None, a or None, int(d), int(t)) for u, a, d, t in store._read(
        "SELECT user_id, agent_id, docs, total_len FROM record_lengths WHERE docs <> 0")}


def _lengths_from_records(store) -> set[tuple[str | None, str | None, int, int]]:
    return {(u, a, int(d), int(t)) for u, a, d, t in store._read(
        "SELECT user_id, agent_id, count(*), sum(doc_len) FROM records GROUP BY user_id, agent_id")}


def _index_agrees(store) -> bool:
    """Postings and per-owner lengths are what the records call for."""
    return _postings(store) == _postings_from_tsv(store) and _lengths(store) == _lengths_from_records(store)


def test_postings_follow_every_write_and_not_the_reads(memory: Memory):
    """Triggers keep the posting table and the per-owner lengths equal to what the records' text calls
    for, through adds, an update and deletes; the strength and access updates of reads leave their rows
    in place."""
    store = memory.store
    first = memory.add([{"role": "user", "speaker": "Ana", "content": "Pottery class on Saturday, pottery is fun"},
                        {"role": "user", "speaker": "Bo", "content": "I repaired the kiln with Ana"}], user_id="ana")
    memory.add("The garden needs water", user_id="ana", agent_id="helper")
    memory.add("The helper waters the garden at dawn", agent_id="helper")
    assert _postings(store) and _index_agrees(store)
    assert {(u, a) for u, a, _, _ in _lengths(store)} == {("ana", None), ("ana", "helper"), (None, "helper")}
    assert ("potteri", 2.0) in {(lex, tf) for i, lex, tf in _postings(store) if i == first.ids[0]}
    assert ("ana", 0.5) in {(lex, tf) for i, lex, tf in _postings(store) if i == first.ids[0]}

    rows = sorted(store._read("SELECT ctid::text, rid, lexeme FROM postings"))
    lengths = sorted(store._read("SELECT ctid::text, docs FROM record_lengths"))
    memory.context("pottery kiln", user_id="ana", budget_tokens=200)  # reinforces what it shows
    assert sorted(store._read("SELECT ctid::text, rid, lexeme FROM postings")) == rows, "a read rewrote postings"
    assert sorted(store._read("SELECT ctid::text, docs FROM record_lengths")) == lengths, "a read rewrote lengths"

    memory.update(first.ids[1], user_id="ana", content="I glazed the vase with Ana, twice, in the morning")
    assert _index_agrees(store)
    assert [i for i, _ in store.lexical_search(["kiln"], Scope(user_id="ana"), SearchFilters(layers=[0]), 5)] == []
    assert [i for i, _ in store.lexical_search(["glazed"], Scope(user_id="ana"), SearchFilters(layers=[0]), 5)] \
        == [first.ids[1]]

    memory.delete(first.ids[0], user_id="ana")
    assert _index_agrees(store)
    assert not [p for p in _postings(store) if p[0] == first.ids[0]]
    memory.delete_all(user_id="ana")
    assert _index_agrees(store) and {(u, a) for u, a, _, _ in _lengths(store)} == {(None, "helper")}
    memory.delete_all(agent_id="helper")
    assert _postings(store) == set() and _lengths(store) == set()


def test_a_version_2_schema_gets_its_postings_and_lengths_when_opened(pg_schema, embedder, monkeypatch):
    """A store written before the posting table (schema v2) is migrated on open: its records' postings
    and per-owner lengths are filled in, and lexical search finds them (the one with both words first)."""
    import memstrata.store.postgres as pg
    from memstrata.store.postgres import PostgresStore
    from test_store import episode, put

    url, schema = pg_schema
    records = [episode("pottery class on saturday, pottery is fun", speaker="Ana"),
               episode("the garden needs water", speaker="Bo"), episode("water the pottery", speaker="Ana")]
    monkeypatch.setattr(pg, "CURRENT_VERSION", 2)
    monkeypatch.setattr(PostgresStore, "_cut_change_log", staticmethod(lambda cur, keep=0: None))  # (no log yet)
    monkeypatch.setattr(PostgresStore, "_change_mark", lambda self: None)
    old = PostgresStore(url, schema=schema)
    try:
        put(old, embedder, records)
        tables = {t for (t,) in old._read(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])}
        assert "postings" not in tables
    finally:
        old.close()
    monkeypatch.undo()
    store = PostgresStore(url, schema=schema)
    try:
        assert store._read("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(pg.CURRENT_VERSION),)]
        assert _index_agrees(store) and len(_postings(store)) > 0 and [l[:3] for l in _lengths(store)] == [("ana", None, 3)]
        got = store.lexical_search(["pottery", "water"], Scope(user_id="ana"), SearchFilters(), 10)
        assert got[0][0] == records[2].id and {i for i, _ in got} == {r.id for r in records}
    finally:
        store.close()
