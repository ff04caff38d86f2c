"""The Postgres schema and its migrations. Version N is reached by applying MIGRATIONS[0..N-1].

The same tables as the SQLite schema (store/sqlite_schema.py), with Postgres types: times are epoch
seconds (double precision), JSON fields are text as SQLite keeps them (metadata filters cast to
jsonb), vectors are float32 bytes (bytea; pgvector is not required), and the lexical index is a
stored tsvector column, and a posting table (one row per record and lexeme, kept by
triggers) that BM25 ranks from (store/postgres_bm25.py).
"""

from __future__ import annotations

#: Text search configuration of the lexical index (stemming; English stop words are not indexed).
TS_CONFIG = "english"

#: BM25 weight of a term occurrence by tsvector weight: content, keywords and entities are A (1.0),
#: the speaker B (0.5), as the SQLite backend weighs its FTS5 columns in bm25().
TS_WEIGHT_B = 0.5

MIGRATIONS: list[str] = [
    # v1: records of every layer, sources, links, vectors, lexical index, history, audit, caches,
    # organise progress (the SQLite schema's v1-v5 in one step)
    f"""
    CREATE TABLE records (
        rid          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id           text NOT NULL UNIQUE,
        layer        smallint NOT NULL CHECK (layer BETWEEN 0 AND 3),
        kind         text NOT NULL,
        user_id      text,
        agent_id     text,
        session_id   text,
        role         text,
        speaker      text,
        content      text NOT NULL,
        content_hash text NOT NULL,
        event_time   double precision NOT NULL,
        created_at   double precision NOT NULL,
        updated_at   double precision NOT NULL,
        valid_from   double precision,
        valid_to     double precision,
        status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded', 'archived')),
        importance   double precision NOT NULL DEFAULT 0.5,
        strength     double precision NOT NULL DEFAULT 1.0,
        last_access  double precision,
        pinned       boolean NOT NULL DEFAULT false,
        keywords     text NOT NULL DEFAULT '[]',
        entities     text NOT NULL DEFAULT '[]',
        metadata     text NOT NULL DEFAULT '{{}}',
        dedup_key    text,
        slot         text,
        tsv          tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('{TS_CONFIG}', content), 'A')
            || setweight(to_tsvector('{TS_CONFIG}', coalesce(speaker, '')), 'B')
            || setweight(to_tsvector('{TS_CONFIG}', keywords), 'A')
            || setweight(to_tsvector('{TS_CONFIG}', entities), 'A')
        ) STORED,
        -- words in the indexed fields: BM25's document length
        doc_len      integer GENERATED ALWAYS AS (coalesce(array_length(regexp_split_to_array(btrim(regexp_replace(
            content || ' ' || coalesce(speaker, '') || ' ' || keywords || ' ' || entities,
            '[^[:alnum:]]+', ' ', 'g')), ' '), 1), 0)) STORED,
        CHECK (user_id IS NOT NULL OR agent_id IS NOT NULL)
    );
    CREATE INDEX records_by_user ON records(user_id, agent_id, layer, rid);
    CREATE INDEX records_by_agent ON records(agent_id, layer, rid);
    CREATE INDEX records_by_hash ON records(content_hash);
    CREATE INDEX records_by_key ON records(dedup_key) WHERE dedup_key IS NOT NULL;
    CREATE INDEX records_by_slot ON records(slot) WHERE slot IS NOT NULL;
    CREATE INDEX records_by_session ON records(session_id, layer, event_time, rid) WHERE session_id IS NOT NULL;
    CREATE INDEX records_tsv ON records USING gin (tsv);

    CREATE TABLE sources (
        rid       bigint NOT NULL REFERENCES records(rid) ON DELETE CASCADE,
        source_id text NOT NULL,
        position  integer NOT NULL,
        PRIMARY KEY (rid, source_id)
    );
    CREATE INDEX sources_by_source ON sources(source_id);

    CREATE TABLE links (
        src    bigint NOT NULL REFERENCES records(rid) ON DELETE CASCADE,
        dst    bigint NOT NULL REFERENCES records(rid) ON DELETE CASCADE,
        kind   text NOT NULL,
        weight double precision NOT NULL DEFAULT 1.0,
        PRIMARY KEY (src, dst, kind)
    );
    CREATE INDEX links_by_dst ON links(dst);

    CREATE TABLE vectors (
        rid   bigint PRIMARY KEY REFERENCES records(rid) ON DELETE CASCADE,
        model text NOT NULL,
        vec   bytea NOT NULL
    );

    CREATE TABLE history (
        hid         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        record_id   text NOT NULL,
        event       text NOT NULL,
        at          double precision NOT NULL,
        old_content text,
        new_content text,
        actor       text NOT NULL DEFAULT 'api',
        detail      text NOT NULL DEFAULT '{{}}'
    );
    CREATE INDEX history_by_record ON history(record_id);

    -- Deletions, by id and time only: never content.
    CREATE TABLE audit (
        aid       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        record_id text NOT NULL,
        event     text NOT NULL,
        at        double precision NOT NULL
    );

    CREATE TABLE embed_cache (
        model     text NOT NULL,
        text_hash text NOT NULL,
        vec       bytea NOT NULL,
        PRIMARY KEY (model, text_hash)
    );
    CREATE INDEX embed_cache_by_hash ON embed_cache(text_hash);

    -- Bumped on every write to a user's or agent's records; every process validates its cached
    -- vector matrices against it.
    CREATE TABLE scope_versions (
        scope_key text PRIMARY KEY,
        version   bigint NOT NULL
    );

    CREATE TABLE organise_state (
        scope_key text NOT NULL,
        step      text NOT NULL,
        value     text NOT NULL,
        PRIMARY KEY (scope_key, step)
    );
    """,
    # v2: the API keys of the REST and MCP servers (server/keys.py: SHA-256 hashes, never tokens), so every
    # server on this schema accepts the same keys; not memories: reset, vacuum and exports leave them alone
    """
    CREATE TABLE api_keys (
        id         text PRIMARY KEY,
        hash       text NOT NULL UNIQUE,
        tenant     text,
        role       text NOT NULL CHECK (role IN ('tenant', 'admin')),
        label      text,
        created_at double precision NOT NULL,
        revoked_at double precision
    );
    """,
    # v3: postings, the lexical index as BM25 reads it: one row per (record, lexeme) with the lexeme's
    # weighted term frequency and the record's length, its owner copied so one index range holds a user's
    # (or agent's) postings of a lexeme. Triggers keep it: inserts and deletes a statement at a time, an
    # update when the indexed text changes (not the strength and access updates every search makes). No
    # foreign key: its check of every posting row slowed bulk puts, and the delete trigger does its work.
    # The GIN index on tsv goes: no query reads it any more.
    f"""
    DROP INDEX records_tsv;
    CREATE TABLE postings (
        rid      bigint NOT NULL,
        user_id  text,
        agent_id text,
        lexeme   text NOT NULL,
        tf       real NOT NULL,
        doc_len  integer NOT NULL
    );
    CREATE INDEX postings_by_record ON postings(rid);
    CREATE INDEX postings_by_user ON postings(user_id, lexeme) INCLUDE (rid, tf, doc_len);
    CREATE INDEX postings_by_agent ON postings(agent_id, lexeme) INCLUDE (rid, tf, doc_len)
        WHERE agent_id IS NOT NULL;

    CREATE FUNCTION postings_of_new_records() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        INSERT INTO postings
        SELECT n.rid, n.user_id, n.agent_id, u.lexeme,
               cardinality(u.weights) - {1 - TS_WEIGHT_B} * cardinality(array_positions(u.weights, 'B')), n.doc_len
        FROM new_records n CROSS JOIN LATERAL unnest(n.tsv) AS u;
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_postings_insert AFTER INSERT ON records
        REFERENCING NEW TABLE AS new_records FOR EACH STATEMENT EXECUTE FUNCTION postings_of_new_records();

    CREATE FUNCTION postings_of_changed_record() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        DELETE FROM postings WHERE rid = NEW.rid;
        INSERT INTO postings
        SELECT NEW.rid, NEW.user_id, NEW.agent_id, u.lexeme,
               cardinality(u.weights) - {1 - TS_WEIGHT_B} * cardinality(array_positions(u.weights, 'B')), NEW.doc_len
        FROM unnest(NEW.tsv) AS u;
        RETURN NULL;
    END $$;
    CREATE FUNCTION postings_of_deleted_records() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        DELETE FROM postings WHERE rid IN (SELECT o.rid FROM old_records o);
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_postings_delete AFTER DELETE ON records
        REFERENCING OLD TABLE AS old_records FOR EACH STATEMENT EXECUTE FUNCTION postings_of_deleted_records();

    CREATE TRIGGER records_postings_update AFTER UPDATE OF content, speaker, keywords, entities, user_id, agent_id
        ON records FOR EACH ROW WHEN (OLD.tsv IS DISTINCT FROM NEW.tsv OR OLD.user_id IS DISTINCT FROM NEW.user_id
        OR OLD.agent_id IS DISTINCT FROM NEW.agent_id) EXECUTE FUNCTION postings_of_changed_record();

    INSERT INTO postings
    SELECT r.rid, r.user_id, r.agent_id, u.lexeme,
           cardinality(u.weights) - {1 - TS_WEIGHT_B} * cardinality(array_positions(u.weights, 'B')), r.doc_len
    FROM records r CROSS JOIN LATERAL unnest(r.tsv) AS u;
    """,
    # v4: record_lengths, BM25's document count and total length per owner (user_id, agent_id), kept by
    # triggers as the postings are. Counting them over the owner's records made the first search after each
    # write grow with the owner's records; summing an owner's rows here takes one index range. A missing user or
    # agent is '' (no scope id is empty), so the key is a plain primary key on any Postgres version.
    """
    CREATE TABLE record_lengths (
        user_id   text NOT NULL,
        agent_id  text NOT NULL,
        docs      bigint NOT NULL,
        total_len bigint NOT NULL,
        PRIMARY KEY (user_id, agent_id)
    );
    CREATE INDEX record_lengths_by_agent ON record_lengths(agent_id) WHERE agent_id <> '';

    CREATE FUNCTION record_lengths_add(owners jsonb) RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
        INSERT INTO record_lengths AS l
        SELECT coalesce(d.user_id, ''), coalesce(d.agent_id, ''), sum(d.docs), sum(d.total_len)
        FROM jsonb_to_recordset(owners) AS d(user_id text, agent_id text, docs bigint, total_len bigint)
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (user_id, agent_id)
        DO UPDATE SET docs = l.docs + excluded.docs, total_len = l.total_len + excluded.total_len
    $$;
    CREATE FUNCTION record_lengths_of_new_records() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM record_lengths_add((SELECT jsonb_agg(d) FROM (SELECT n.user_id, n.agent_id, count(*) AS docs,
            sum(n.doc_len) AS total_len FROM new_records n GROUP BY n.user_id, n.agent_id) d));
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_lengths_insert AFTER INSERT ON records
        REFERENCING NEW TABLE AS new_records FOR EACH STATEMENT EXECUTE FUNCTION record_lengths_of_new_records();
    CREATE FUNCTION record_lengths_of_deleted_records() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM record_lengths_add((SELECT jsonb_agg(d) FROM (SELECT o.user_id, o.agent_id, -count(*) AS docs,
            -sum(o.doc_len) AS total_len FROM old_records o GROUP BY o.user_id, o.agent_id) d));
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_lengths_delete AFTER DELETE ON records
        REFERENCING OLD TABLE AS old_records FOR EACH STATEMENT EXECUTE FUNCTION record_lengths_of_deleted_records();
    CREATE FUNCTION record_lengths_of_changed_record() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM record_lengths_add(jsonb_build_array(
            jsonb_build_object('user_id', OLD.user_id, 'agent_id', OLD.agent_id, 'docs', -1, 'total_len', -OLD.doc_len),
            jsonb_build_object('user_id', NEW.user_id, 'agent_id', NEW.agent_id, 'docs', 1, 'total_len', NEW.doc_len)));
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_lengths_update AFTER UPDATE OF content, speaker, keywords, entities, user_id, agent_id
        ON records FOR EACH ROW WHEN (OLD.doc_len IS DISTINCT FROM NEW.doc_len
        OR OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.agent_id IS DISTINCT FROM NEW.agent_id)
        EXECUTE FUNCTION record_lengths_of_changed_record();

    INSERT INTO record_lengths SELECT coalesce(r.user_id, ''), coalesce(r.agent_id, ''), count(*), sum(r.doc_len)
    FROM records r GROUP BY 1, 2;
    """,
    # v5: the change log of the vector matrices, as SQLite's v6 (a row per record added, deleted,
    # re-embedded or changed in a column a matrix holds), each row with its writer's transaction id.
    # Transactions commit out of order here, so a reader's mark is the oldest transaction its snapshot
    # did not see (xmin), and a patch reads every change from that transaction on (store/vecpath.py).
    # A new record is logged by its vector's insert, as in SQLite.
    # `put` keeps the newest CHANGE_LOG_ROWS; meta notes the newest transaction whose rows were cut.
    """
    CREATE TABLE matrix_changes (
        seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        xid      bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
        rid      bigint NOT NULL,
        user_id  text,
        agent_id text
    );
    CREATE INDEX matrix_changes_by_user ON matrix_changes(user_id, xid);
    CREATE INDEX matrix_changes_by_agent ON matrix_changes(agent_id, xid) WHERE agent_id IS NOT NULL;
    INSERT INTO meta VALUES ('matrix_changes_cut', '0');

    CREATE FUNCTION matrix_changes_of_deleted_records() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id) SELECT g.rid, g.user_id, g.agent_id FROM gone g;
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_matrix_delete AFTER DELETE ON records
        REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION matrix_changes_of_deleted_records();
    CREATE FUNCTION matrix_changes_of_changed_record() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id) VALUES (OLD.rid, OLD.user_id, OLD.agent_id);
        IF OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.agent_id IS DISTINCT FROM NEW.agent_id THEN
            INSERT INTO matrix_changes (rid, user_id, agent_id) VALUES (NEW.rid, NEW.user_id, NEW.agent_id);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER records_matrix_update
        AFTER UPDATE OF session_id, event_time, layer, status, valid_from, valid_to, kind, user_id, agent_id ON records
        FOR EACH ROW EXECUTE FUNCTION matrix_changes_of_changed_record();

    CREATE FUNCTION matrix_changes_of_vectors() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        INSERT INTO matrix_changes (rid, user_id, agent_id)
        SELECT r.rid, r.user_id, r.agent_id FROM records r WHERE r.rid IN (SELECT v.rid FROM changed_vectors v);
        RETURN NULL;
    END $$;
    CREATE TRIGGER vectors_matrix_insert AFTER INSERT ON vectors
        REFERENCING NEW TABLE AS changed_vectors FOR EACH STATEMENT EXECUTE FUNCTION matrix_changes_of_vectors();
    CREATE TRIGGER vectors_matrix_update AFTER UPDATE ON vectors
        REFERENCING NEW TABLE AS changed_vectors FOR EACH STATEMENT EXECUTE FUNCTION matrix_changes_of_vectors();
    CREATE TRIGGER vectors_matrix_delete AFTER DELETE ON vectors
        REFERENCING OLD TABLE AS changed_vectors FOR EACH STATEMENT EXECUTE FUNCTION matrix_changes_of_vectors();
    """,
]


#: Every table of memories and their indexes, children first (the order `reset` empties them in); not
#: meta, scope_versions (bumped, never emptied) nor api_keys.
TABLES = ("links", "sources", "vectors", "postings", "record_lengths", "matrix_changes", "records", "history", "audit",
          "embed_cache", "organise_state")

CURRENT_VERSION = len(MIGRATIONS)
