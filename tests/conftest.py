"""Shared fixtures: one real embedding model per test session, a fresh store per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from memstrata import Memory, Settings

LOCOMO = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "locomo" / "locomo_dev.json"
LOCOMO = Path(os.environ.get("MEMSTRATA_LOCOMO", LOCOMO))


@pytest.fixture(scope="session")
def embedder():
    """The real bundled MiniLM model, loaded once."""
    from memstrata.embed.minilm import MiniLMEmbedder

    return MiniLMEmbedder(threads=1)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memstrata.db"


@pytest.fixture
def memory(db_path: Path, embedder) -> Memory:
    m = Memory(settings=Settings(db=db_path), embedder=embedder)
    yield m
    m.close()


@pytest.fixture(scope="session")
def locomo_path() -> Path:
    if not LOCOMO.exists():
        pytest.skip(f"LoCoMo data not found at {LOCOMO} (set MEMSTRATA_LOCOMO)")
    return LOCOMO


@pytest.fixture
def pg_schema():
    """(URL, schema) of a fresh, empty schema in the Postgres database at $MEMSTRATA_TEST_POSTGRES_URL,
    dropped afterwards. Skipped without that variable, unless MEMSTRATA_REQUIRE_POSTGRES=1 (CI)."""
    url = os.environ.get("MEMSTRATA_TEST_POSTGRES_URL")
    missing = None
    if not url:
        missing = "MEMSTRATA_TEST_POSTGRES_URL is not set (eval \"$(bash scripts/postgres-test-server)\" starts one)"
    else:
        try:
            import psycopg
        except ImportError:
            missing = "psycopg is not installed (pip install -e '.[postgres]')"
    if missing:
        if os.environ.get("MEMSTRATA_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"MEMSTRATA_REQUIRE_POSTGRES=1 but {missing}")
        pytest.skip(f"Postgres tests skipped: {missing}")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    yield url, schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
