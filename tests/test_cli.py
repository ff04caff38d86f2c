"""The `memstrata` command, run for real in a subprocess: every command, import/export, and bad input.

Each failing call must exit non-zero with ONE line on stderr starting with "error:" (no traceback)
and leave the stored data exactly as it was.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memstrata import Memory, Settings

_SCRIPT = Path(sys.executable).with_name("memstrata")
_COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "memstrata.cli"]

CHAT = [
    {"role": "user", "speaker": "Ana", "content": "I moved to Lisbon last week, the light here is amazing.",
     "timestamp": "2024-05-01T10:00:00Z", "session_id": "s1"},
    {"role": "assistant", "content": "Congratulations! Have you found a flat yet?", "timestamp": 1714557660,
     "session_id": "s1"},
    {"role": "user", "name": "Ana", "content": "My sister Marta is visiting in June; she loves surfing.",
     "timestamp": "2024-05-02", "metadata": {"mood": "happy"}, "session_id": "s2"},
]


def cli(*args: str, db: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `memstrata ARGS` with MEMSTRATA_DB=db and no inherited scope or config."""
    env = {k: v for k, v in os.environ.items() if k not in ("MEMSTRATA_USER", "MEMSTRATA_AGENT", "MEMSTRATA_CONFIG")}
    env.update(MEMSTRATA_DB=str(db), COLUMNS="200", PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [*_COMMAND, *args], input=stdin if stdin is not None else "", capture_output=True, text=True, env=env,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> object:
    return json.loads(ok(result))


def assert_error(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> str:
    """Exit `code`, one stderr line starting with "error:", containing each of `expected`."""
    lines = result.stderr.splitlines()
    assert result.returncode == code, f"exit {result.returncode}, stderr: {result.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every stored row that matters, read directly from the file."""
    conn = sqlite3.connect(db)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("records", "sources", "vectors", "history", "audit", "meta")
        }
    finally:
        conn.close()


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def episodes(db: Path, **scope: str) -> list:
    with Memory(settings=Settings(db=db)) as m:
        return m.list(**scope, layers=[0], limit=1000).items


# ---------------------------------------------------------------------- happy paths


def test_add_search_context_get_update_history_delete(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    added = as_json(cli("add", "I moved to Lisbon last week", "--user", "ana", "--speaker", "Ana",
                        "--timestamp", "2024-05-01T10:00:00Z", "--meta", "src=chat", "--meta", "n=3", "--json", db=db))
    lisbon = added["ids"][0]
    other = as_json(cli("add", "-", "--user", "ana", "--json", db=db, stdin="I love grilled sardines"))["ids"][0]

    hits = as_json(cli("search", "Which city did Ana move to?", "--user", "ana", "--json", db=db))
    assert hits[0]["id"] == lisbon or lisbon in hits[0]["provenance"]
    assert f"[{lisbon}]" in ok(cli("context", "Which city did Ana move to?", "--user", "ana", db=db))
    table = ok(cli("list", "--user", "ana", db=db))
    assert lisbon in table and other in table and "grilled sardines" in table
    record = as_json(cli("get", lisbon, "--user", "ana", "--json", db=db))
    assert record["metadata"] == {"src": "chat", "n": 3} and record["event_time"] == "2024-05-01T10:00:00Z"
    assert record["speaker"] == "Ana" and record["layer"] == 0

    ok(cli("update", lisbon, "--content", "I moved to Porto", "--user", "ana", db=db))
    events = as_json(cli("history", lisbon, "--user", "ana", "--json", db=db))
    assert [e["event"] for e in events] == ["created", "updated"]
    assert events[1]["old_content"] == "I moved to Lisbon last week" and events[1]["new_content"] == "I moved to Porto"

    ok(cli("delete", other, "--user", "ana", db=db))
    assert_error(cli("get", other, "--user", "ana", db=db), 3, other)

    stats = as_json(cli("stats", "--check", "--json", db=db))
    assert stats["integrity"] == "ok" and stats["records"]["episodes"]["active"] == 1
    settings = as_json(cli("config", "--json", db=db))
    assert settings["db"] == str(db)


def test_export_import_roundtrip(tmp_path: Path) -> None:
    db1, db2 = tmp_path / "one.db", tmp_path / "two.db"
    ok(cli("import", str(write_jsonl(tmp_path / "chat.jsonl", CHAT)), "--user", "ana", db=db1))
    first = episodes(db1, user_id="ana")[0]
    ok(cli("update", first.id, "--content", "I moved to Lisbon in April.", "--user", "ana", db=db1))
    dump1, dump2 = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    ok(cli("export", "--user", "ana", "--out", str(dump1), db=db1))
    ok(cli("import", str(dump1), db=db2))
    ok(cli("export", "--user", "ana", "--out", str(dump2), db=db2))

    def records(path: Path) -> list[dict]:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert lines[0]["type"] == "memstrata-export" and lines[0]["scope"] == {"user_id": "ana"}
        return [{k: v for k, v in r.items() if k != "history"} for r in lines[1:]]

    exported = records(dump1)
    assert exported == records(dump2), "ids, contents, times, layers, sources and metadata all survive"
    assert {r["layer"] for r in exported} >= {0} and len([r for r in exported if r["layer"] == 0]) == 3
    assert json.loads(dump1.read_text().splitlines()[1])["history"][-1]["event"] == "updated"
    query = ("search", "Where does Ana live?", "--user", "ana", "--json")
    ranked = [[(h["id"], round(h["score"], 6)) for h in as_json(cli(*query, db=db))] for db in (db1, db2)]
    assert ranked[0] == ranked[1] and ranked[0]

    before = snapshot(db2)
    assert_error(cli("import", str(dump1), db=db2), 2, "already exists", "--new-ids")
    assert snapshot(db2) == before
    copied = as_json(cli("import", str(dump1), "--user", "bob", "--new-ids", "--json", db=db2))
    assert copied == {"format": "export", "records": len(exported), "scopes": ["user=bob"]}
    bob = episodes(db2, user_id="bob")
    assert sorted(e.content for e in bob) == sorted(r["content"] for r in exported if r["layer"] == 0)
    assert not {e.id for e in bob} & {r["id"] for r in exported}


def test_import_json_jsonl_and_locomo(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    (tmp_path / "chat.json").write_text(json.dumps({"messages": CHAT}), encoding="utf-8")
    (tmp_path / "list.json").write_text(json.dumps(CHAT[:1], indent=2), encoding="utf-8")
    write_jsonl(tmp_path / "chat.jsonl", CHAT)
    for name, user in (("chat.json", "ana"), ("list.json", "ben"), ("chat.jsonl", "cy")):
        ok(cli("import", str(tmp_path / name), "--user", user, db=db))
    for user in ("ana", "cy"):
        got = episodes(db, user_id=user)
        assert [e.content for e in got] == [m["content"] for m in CHAT]
        assert [e.session_id for e in got] == ["s1", "s1", "s2"]
        assert got[1].role == "assistant" and got[2].speaker == "Ana" and got[2].metadata == {"mood": "happy"}
        assert got[0].event_time.isoformat() == "2024-05-01T10:00:00+00:00"
        assert got[1].event_time.timestamp() == 1714557660
    assert [e.content for e in episodes(db, user_id="ben")] == [CHAT[0]["content"]]

    sample = {
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Ann", "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a puppy called Rex."},
                          {"speaker": "Bo", "dia_id": "D1:2", "text": "Lovely! What breed?"}],
            "session_2_date_time": "10:00 am on 20 May, 2023",
            "session_2": [{"speaker": "Bo", "dia_id": "D2:1", "text": "How is Rex doing?",
                           "blip_caption": "a photo of a dog"}],
        },
        "qa": [{"question": "What is the puppy called?", "answer": "Rex", "evidence": ["D1:1"], "category": 4}],
    }
    (tmp_path / "locomo.json").write_text(json.dumps([sample]), encoding="utf-8")
    result = as_json(cli("import", str(tmp_path / "locomo.json"), "--prefix", "lc/", "--json", db=db))
    assert result == {"format": "locomo", "records": 3, "scopes": ["user=lc/conv-x"]}
    turns = episodes(db, user_id="lc/conv-x")
    assert [t.metadata["dia_id"] for t in turns] == ["D1:1", "D1:2", "D2:1"]
    assert [t.session_id for t in turns] == ["conv-x/session-1"] * 2 + ["conv-x/session-2"]
    assert turns[0].speaker == "Ann" and turns[0].event_time.isoformat() == "2023-05-08T13:56:00+00:00"
    assert "a photo of a dog" in turns[2].content


# ---------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding one conversation, and files to import, shared by the bad-input cases."""
    root = tmp_path_factory.mktemp("stocked")
    ok(cli("import", str(write_jsonl(root / "chat.jsonl", CHAT)), "--user", "ana", db=root / "m.db"))
    lines = [json.dumps(m) for m in CHAT[:2]] + ['{"role": "user", "content": "unterminated']
    (root / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_jsonl(root / "badtime.jsonl", [CHAT[0], {"content": "when?", "timestamp": "last Tuesday"}])
    write_jsonl(root / "empty.jsonl", [CHAT[0], {"content": "   "}])
    (root / "notes.txt").write_text("just some text\n", encoding="utf-8")
    return root


BAD_CALLS = {
    "empty text": (["add", "", "--user", "ana"], 2, ["TEXT is empty"]),
    "no scope": (["add", "hello"], 2, ["--user", "--agent"]),
    "bad timestamp": (["add", "hello", "--user", "ana", "--timestamp", "yesterday"], 2, ["yesterday", "ISO 8601"]),
    "bad meta": (["add", "hello", "--user", "ana", "--meta", "novalue"], 2, ["key=value"]),
    "unknown id": (["get", "ep_01NOPE", "--user", "ana"], 3, ["ep_01NOPE"]),
    "update unknown id": (["update", "ep_01NOPE", "--content", "x", "--user", "ana"], 3, ["ep_01NOPE"]),
    "bad limit": (["list", "--user", "ana", "--limit", "0"], 2, ["limit"]),
    "usage error": (["search"], 2, ["query"]),
    "delete-all without --yes": (["delete-all", "--user", "ana"], 2, ["--yes"]),
    "export without scope": (["export"], 2, ["--user"]),
    "malformed JSONL line": (["import", "{root}/bad.jsonl", "--user", "ana"], 2, ["bad.jsonl line 3", "not valid JSON"]),
    "bad timestamp in file": (["import", "{root}/badtime.jsonl", "--user", "ana"], 2, ["line 2", "last Tuesday"]),
    "empty content in file": (["import", "{root}/empty.jsonl", "--user", "ana"], 2, ["line 2", "empty"]),
    "import without scope": (["import", "{root}/badtime.jsonl"], 2, ["--user"]),
    "unknown file format": (["import", "{root}/notes.txt", "--user", "ana"], 2, ["notes.txt", "JSONL"]),
    "missing file": (["import", "{root}/nope.json", "--user", "ana"], 2, ["does not exist"]),
    "bad format name": (["import", "{root}/bad.jsonl", "--format", "csv", "--user", "ana"], 2, ["csv"]),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_is_one_line_and_changes_nothing(stocked: Path, case: str) -> None:
    args, code, expected = BAD_CALLS[case]
    db = stocked / "m.db"
    before = snapshot(db)
    assert_error(cli(*(a.format(root=stocked) for a in args), db=db), code, *expected)
    assert snapshot(db) == before


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("INSERT INTO t VALUES ('precious')")
    conn.commit()
    conn.close()


def _too_new(path: Path) -> None:
    ok(cli("add", "kept safe", "--user", "ana", db=path))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def _file_state(path: Path) -> object:
    if path.read_bytes()[:16] != b"SQLite format 3\x00":
        return path.read_bytes()
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: conn.execute(f"SELECT * FROM [{t}]").fetchall() for t in tables if not t.startswith("records_fts")}
    finally:
        conn.close()


@pytest.mark.parametrize(
    "make, expected",
    [(_random_bytes, "not a SQLite database"), (_foreign_sqlite, "not a memstrata one"), (_too_new, "newer")],
    ids=["random-bytes", "foreign-sqlite", "schema-too-new"],
)
def test_bad_database_is_one_line_and_untouched(tmp_path: Path, make, expected: str) -> None:
    db = tmp_path / "x.db"
    make(db)
    before = _file_state(db)
    result = cli("--db", str(db), "add", "hello", "--user", "ana", db=tmp_path / "env.db")  # --db beats the env
    assert_error(result, 4, str(db), expected)
    assert _file_state(db) == before


def test_foreign_database_file_is_byte_identical(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _foreign_sqlite(db)
    before = db.read_bytes()
    assert_error(cli("--db", str(db), "list", "--user", "ana", db=tmp_path / "env.db"), 4, "not a memstrata one")
    assert db.read_bytes() == before


def test_pin_archive_restore(memory, db_path):
    memory_id = memory.add("I keep bees on the roof", user_id="ana").ids[0]
    ok(cli("archive", memory_id, "--user", "ana", db=db_path))
    assert memory.get(memory_id, user_id="ana").status == "archived"
    assert memory_id not in [h.id for h in memory.search("bees", user_id="ana")]
    ok(cli("restore", memory_id, "--user", "ana", db=db_path))
    assert memory.get(memory_id, user_id="ana").status == "active"
    ok(cli("pin", memory_id, "--user", "ana", db=db_path))
    assert memory.get(memory_id, user_id="ana").pinned
    assert_error(cli("archive", "ep_nope", "--user", "ana", db=db_path), 3, "ep_nope")
