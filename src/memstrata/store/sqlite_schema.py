"""The SQLite schema and its migrations. Version N is reached by applying MIGRATIONS[0..N-1]."""

from __future__ import annotations

APP_ID = "memstrata"

MIGRATIONS: list[str] = [
    # v1: records of every layer, sources, links, vectors, lexical index, history, audit, caches
    """
    CREATE TABLE records (
        rid          INTEGER PRIMARY KEY,
        id           TEXT NOT NULL UNIQUE,
        layer        INTEGER NOT NULL CHECK (layer BETWEEN 0 AND 3),
        kind         TEXT NOT NULL,
        user_id      TEXT,
        agent_id     TEXT,
        session_id   TEXT,
        role         TEXT,
        speaker      TEXT,
        content      TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        event_time   REAL NOT NULL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        valid_from   REAL,
        valid_to     REAL,
        status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded', 'archived')),
        importance   REAL NOT NULL DEFAULT 0.5,
        strength     REAL NOT NULL DEFAULT 1.0,
        last_access  REAL,
        pinned       INTEGER NOT NULL DEFAULT 0,
        keywords     TEXT NOT NULL DEFAULT '[]',
        entities     TEXT NOT NULL DEFAULT '[]',
        metadata     TEXT NOT NULL DEFAULT '{}',
        -- identity of the statement (normalised text hash): equal keys are merged, not duplicated
        dedup_key    TEXT,
        -- what the record is about ("Ana|lives_in"): a newer active record with the same slot supersedes it
        slot         TEXT,
        CHECK (user_id IS NOT NULL OR agent_id IS NOT NULL)
    );
    CREATE INDEX records_by_user ON records(user_id, agent_id, layer, rid);
    CREATE INDEX records_by_agent ON records(agent_id, layer, rid);
    CREATE INDEX records_by_hash ON records(content_hash);
    CREATE INDEX records_by_key ON records(dedup_key) WHERE dedup_key IS NOT NULL;
    CREATE INDEX records_by_slot ON records(slot) WHERE slot IS NOT NULL;

    CREATE TABLE sources (
        rid       INTEGER NOT NULL REFERENCES records(rid) ON DELETE CASCADE,
        source_id TEXT NOT NULL,
        position  INTEGER NOT NULL,
        PRIMARY KEY (rid, source_id)
    );
    CREATE INDEX sources_by_source ON sources(source_id);

    CREATE TABLE links (
        src    INTEGER NOT NULL REFERENCES records(rid) ON DELETE CASCADE,
        dst    INTEGER NOT NULL REFERENCES records(rid) ON DELETE CASCADE,
        kind   TEXT NOT NULL,
        weight REAL NOT NULL DEFAULT 1.0,
        PRIMARY KEY (src, dst, kind)
    );
    CREATE INDEX links_by_dst ON links(dst);

    CREATE TABLE vectors (
        rid   INTEGER PRIMARY KEY REFERENCES records(rid) ON DELETE CASCADE,
        model TEXT NOT NULL,
        vec   BLOB NOT NULL
    );

    CREATE VIRTUAL TABLE records_fts USING fts5(
        content, speaker, keywords, entities,
        content='records', content_rowid='rid', tokenize='porter unicode61'
    );
    CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
        INSERT INTO records_fts(rowid, content, speaker, keywords, entities)
        VALUES (new.rid, new.content, new.speaker, new.keywords, new.entities);
    END;
    CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
        INSERT INTO records_fts(records_fts, rowid, content, speaker, keywords, entities)
        VALUES ('delete', old.rid, old.content, old.speaker, old.keywords, old.entities);
    END;
    CREATE TRIGGER records_fts_update AFTER UPDATE OF content, speaker, keywords, entities ON records BEGIN
        INSERT INTO records_fts(records_fts, rowid, content, speaker, keywords, entities)
        VALUES ('delete', old.rid, old.content, old.speaker, old.keywords, old.entities);
        INSERT INTO records_fts(rowid, content, speaker, keywords, entities)
        VALUES (new.rid, new.content, new.speaker, new.keywords, new.entities);
    END;

    CREATE TABLE history (
        hid         INTEGER PRIMARY KEY,
        record_id   TEXT NOT NULL,
        event       TEXT NOT NULL,
        at          REAL NOT NULL,
        old_content TEXT,
        new_content TEXT,
        actor       TEXT NOT NULL DEFAULT 'api',
        detail      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX history_by_record ON history(record_id);

    -- Deletions, by id and time only: never content.
    CREATE TABLE audit (
        aid       INTEGER PRIMARY KEY,
        record_id TEXT NOT NULL,
        event     TEXT NOT NULL,
        at        REAL NOT NULL
    );

    CREATE TABLE embed_cache (
        model     TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        vec       BLOB NOT NULL,
        PRIMARY KEY (model, text_hash)
    ) WITHOUT ROWID;

    -- Bumped on every write to a user's or agent's records; readers use it to validate caches.
    CREATE TABLE scope_versions (
        scope_key TEXT PRIMARY KEY,
        version   INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # v2: a session's turns in the order they happened (the read path's adjacent-turn expansion).
    """
    CREATE INDEX records_by_session ON records(session_id, layer, event_time, rid) WHERE session_id IS NOT NULL;
    """,
    # v3: the lexical index knows each record's user and agent (one token each, `SCOPE_TOKENS`), so a
    # search intersects with its scope inside FTS5 instead of matching every user's records first.
    """
    ALTER TABLE records ADD COLUMN scope_tokens TEXT GENERATED ALWAYS AS (
        coalesce('u' || substr(hex(user_id), 1, 40), '') || ' ' || coalesce('a' || substr(hex(agent_id), 1, 40), '')
    ) VIRTUAL;
    DROP TRIGGER records_fts_insert;
    DROP TRIGGER records_fts_delete;
    DROP TRIGGER records_fts_update;
    DROP TABLE records_fts;
    CREATE VIRTUAL TABLE records_fts USING fts5(
        content, speaker, keywords, entities, scope_tokens,
        content='records', content_rowid='rid', tokenize='porter unicode61'
    );
    CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
        INSERT INTO records_fts(rowid, content, speaker, keywords, entities, scope_tokens)
        VALUES (new.rid, new.content, new.speaker, new.keywords, new.entities, new.scope_tokens);
    END;
    CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
        INSERT INTO records_fts(records_fts, rowid, content, speaker, keywords, entities, scope_tokens)
        VALUES ('delete', old.rid, old.content, old.speaker, old.keywords, old.entities, old.scope_tokens);
    END;
    CREATE TRIGGER records_fts_update AFTER UPDATE OF content, speaker, keywords, entities ON records BEGIN
        INSERT INTO records_fts(records_fts, rowid, content, speaker, keywords, entities, scope_tokens)
        VALUES ('delete', old.rid, old.content, old.speaker, old.keywords, old.entities, old.scope_tokens);
        INSERT INTO records_fts(rowid, content, speaker, keywords, entities, scope_tokens)
        VALUES (new.rid, new.content, new.speaker, new.keywords, new.entities, new.scope_tokens);
    END;
    INSERT INTO records_fts(records_fts) VALUES ('rebuild');
    """,
    # v4: where each organise step got to in a scope (e.g. the merge step's watermark), so a run
    # works on what changed since the last complete one.
    """
    CREATE TABLE organise_state (
        scope_key TEXT NOT NULL,
        step      TEXT NOT NULL,
        value     TEXT NOT NULL,
        PRIMARY KEY (scope_key, step)
    ) WITHOUT ROWID;
    """,
    # v5: the embedding cache is keyed per owner (model.cache_key); the old shared keys are dropped
    # (a cache: the vectors are recomputed on the next write of the same text).
    """
    DELETE FROM embed_cache;
    """,
    # v6: the change log of the vector matrices: a row per record written (added, deleted, re-embedded, or
    # changed in a column a matrix holds), so a process patches its cached matrix of a scope with those
    # rows instead of reading the scope again (store/vecpath.py). A new record enters a matrix with its
    # vector, so the vectors' insert trigger logs it (no trigger on the records' inserts: one log row per
    # new record, not two). Writers take turns, so the log's order is the commit order. `put` keeps the
    # newest CHANGE_LOG_ROWS and notes in meta where it cut.
    """
    CREATE TABLE matrix_changes (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        rid      INTEGER NOT NULL,
        user_id  TEXT,
        agent_id TEXT
    );
    CREATE INDEX matrix_changes_by_user ON matrix_changes(user_id, seq);
    CREATE INDEX matrix_changes_by_agent ON matrix_changes(agent_id, seq) WHERE agent_id IS NOT NULL;
    INSERT INTO meta VALUES ('matrix_changes_cut', '0');
    CREATE TRIGGER records_matrix_delete AFTER DELETE ON records BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id) VALUES (old.rid, old.user_id, old.agent_id);
    END;
    CREATE TRIGGER records_matrix_update
    AFTER UPDATE OF session_id, event_time, layer, status, valid_from, valid_to, kind, user_id, agent_id ON records
    BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id) VALUES (old.rid, old.user_id, old.agent_id);
        INSERT INTO matrix_changes (rid, user_id, agent_id) SELECT new.rid, new.user_id, new.agent_id
        WHERE new.user_id IS NOT old.user_id OR new.agent_id IS NOT old.agent_id;
    END;
    CREATE TRIGGER vectors_matrix_insert AFTER INSERT ON vectors BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id) SELECT rid, user_id, agent_id FROM records WHERE rid = new.rid;
    END;
    CREATE TRIGGER vectors_matrix_update AFTER UPDATE ON vectors BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id) SELECT rid, user_id, agent_id FROM records WHERE rid = new.rid;
    END;
    CREATE TRIGGER vectors_matrix_delete AFTER DELETE ON vectors BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id) SELECT rid, user_id, agent_id FROM records WHERE rid = old.rid;
    END;
    """,
]



def scope_tokens(user_id: str | None, agent_id: str | None) -> list[str]:
    """The lexical index's tokens for a user and an agent (what the `scope_tokens` column holds).

    A token is the hex of the id's first 20 bytes: ids that share those share a token, which only
    widens what FTS5 matches; the SQL scope filter after it keeps results exact."""
    out = []
    if user_id is not None:
        out.append("u" + user_id.encode("utf-8").hex()[:40])
    if agent_id is not None:
        out.append("a" + agent_id.encode("utf-8").hex()[:40])
    return out

CURRENT_VERSION = len(MIGRATIONS)
