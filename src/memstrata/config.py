"""One settings object, read from code, a TOML file or MEMSTRATA_* environment variables."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError


def redact_url(url: str) -> str:
    """`url` with its password replaced by '***' (for messages, logs and `memstrata config`)."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        return re.sub(r"(?i)(password=)[^&]*", r"\1***", urlunsplit(parts))
    except ValueError:
        return "<unparsable URL>"


def default_db_path() -> Path:
    """`$MEMSTRATA_HOME/memstrata.db`, by default `~/.memstrata/memstrata.db`."""
    home = os.environ.get("MEMSTRATA_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".memstrata"
    return base / "memstrata.db"


class Settings(BaseSettings):
    """All of memstrata's settings. Environment variables are `MEMSTRATA_<NAME>` (e.g. MEMSTRATA_DB)."""

    model_config = SettingsConfigDict(env_prefix="MEMSTRATA_", extra="forbid")

    # storage
    store: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="sqlite: one file (`db`); postgres: a shared database (`postgres_url`, docs/postgres.md)"
    )
    db: Path = Field(default_factory=default_db_path, description="SQLite database file")
    postgres_url: str | None = Field(
        None, description="with store = 'postgres': postgresql://user:password@host:port/dbname"
    )
    postgres_schema: str = Field(
        "public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="with store = 'postgres': the schema holding the tables"
    )
    postgres_pool_min: int = Field(
        1, ge=0, le=100, description="with store = 'postgres': connections each process keeps open while idle"
    )
    postgres_pool_max: int = Field(
        8, ge=1, le=100, description="with store = 'postgres': most connections one process opens (concurrent calls "
        "beyond it wait for one to come free); at least postgres_pool_min"
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="FULL: an acknowledged add survives power loss; NORMAL: survives a process crash only"
    )
    busy_timeout_ms: int = Field(5_000, ge=0, description="wait this long for another writer before retrying")
    vector_cache_mb: int = Field(512, ge=0, description="memory for per-scope vector matrices kept between searches")
    search_threads: int = Field(1, ge=1, le=256, description="BLAS threads for the exact vector scan (1 is fastest on a busy 2-core machine)")
    ann_min_vectors: int = Field(
        50_000, description="a scope with at least this many vectors is searched through an HNSW index (usearch) "
        "once it is built in the background; 0 or negative: always the exact scan"
    )
    ann_expansion_search: int = Field(128, ge=1, le=4096, description="HNSW search beam (ef): higher is slower and closer to exact")
    ann_cache_mb: int = Field(1024, ge=0, description="memory for the HNSW indexes of large scopes (about 1.7 KB per 384-d vector)")
    ann_dir: str | None = Field(
        "auto", description="directory where HNSW indexes are saved, so a new process loads them instead of building "
        "them again; 'auto': `<db>.ann` beside the SQLite file, and none with store = 'postgres' (a delete made on "
        "another machine could not remove this machine's copy); a directory given is used per database "
        "(a subdirectory named by a hash of it); '': not saved"
    )
    ann_disk_mb: int = Field(4096, ge=0, description="disk for the saved HNSW indexes (about 1.7 KB per 384-d vector; "
                             "the least recently used go first; 0: not saved)")

    # embeddings
    embedder: Literal["minilm", "openai"] = "minilm"
    embed_threads: int = Field(1, ge=1, le=256, description="BLAS threads for the local model (1 is fastest on a busy 2-core machine)")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    openai_base_url: str = Field("http://127.0.0.1:11434/v1", description="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp, OpenAI)")
    openai_api_key: str | None = None
    openai_embed_model: str = "nomic-embed-text"

    # write path
    extractor: Literal["rules", "llm", "none"] = Field(
        "rules", description="how L1 notes are derived from episodes: offline rules, an LLM (falls back to the rules), or not at all"
    )
    extract_window: int = Field(20, ge=1, le=200, description="turns per LLM extraction call")
    summariser: Literal["extractive", "llm"] = Field(
        "extractive", description="how organise() writes topic summaries: chosen notes verbatim, or written by the LLM "
        "from the topic's notes (falls back to extractive per topic)"
    )

    # LLM (optional): any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp, OpenAI)
    llm_base_url: str | None = Field(None, description="e.g. http://127.0.0.1:11434/v1; unset means no LLM")
    llm_model: str | None = None
    llm_api_key: str | None = None

    # retrieval
    recipe: str = Field("hybrid", description="default retrieval recipe (see memstrata.read.recipes)")

    # lifecycle
    half_life_days: float = Field(
        90.0, gt=0, description="days for an unused memory of importance 0.5 to lose half its strength"
    )
    reinforcement: float = Field(
        0.5, ge=0, le=1, description="share of lost strength a retrieval gives back (0: searches never reinforce)"
    )
    archive_threshold: float = Field(
        0.05, ge=0, lt=1, description="organise archives memories whose strength fell below this (0: never)"
    )
    decay_layers: list[int] = Field(
        [0, 1], description="layers that fade (topics and profile are rebuilt by consolidation instead)"
    )
    ttl_days: dict[str, float] = Field(
        {}, description='expire (archive) by age: record kind or layer name -> days, e.g. {"question": 30, "episode": 365}'
    )
    merge_threshold: float = Field(
        0.95, gt=0, le=1, description="cosine similarity at which organise merges two notes as near-duplicates"
    )

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> "Settings":
        """Settings from a TOML file (if given or `MEMSTRATA_CONFIG` is set), then env vars, then `overrides`."""
        file_values: dict[str, Any] = {}
        path = path or os.environ.get("MEMSTRATA_CONFIG")
        if path:
            p = Path(path).expanduser()
            try:
                file_values = tomllib.loads(p.read_text())
            except FileNotFoundError:
                raise ConfigError(f"config file {p} does not exist") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
            file_values = file_values.get("memstrata", file_values)
        try:
            env_only = cls()  # env vars and defaults
            merged = {**file_values, **{k: v for k, v in env_only.model_dump().items() if k in env_only.model_fields_set}}
            merged.update({k: v for k, v in overrides.items() if v is not None})
            return cls.model_validate(merged) if merged else env_only
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"setting {loc}: {err['msg']}", field=loc) from None
