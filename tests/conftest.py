"""Shared fixtures: one real embedding model per test session, a fresh store per test."""

from __future__ import annotations

import os
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
