"""Typed errors. Every error memstrata raises on purpose derives from `MemstrataError`.

Each message says what was wrong and what to do about it; the CLI prints it as one line.
"""

from __future__ import annotations


class MemstrataError(Exception):
    """Base class of every error memstrata raises on purpose."""

    #: Stable machine-readable code (used by the CLI and the REST server).
    code: str = "memstrata_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(MemstrataError, ValueError):
    """An argument has the wrong type or value."""

    code = "invalid_input"


class ScopeRequired(InvalidInput):
    """A read or write named neither a user_id nor an agent_id."""

    code = "scope_required"


class EmptyContent(InvalidInput):
    """A memory's text is empty or only whitespace."""

    code = "empty_content"


class ContentTooLarge(InvalidInput):
    """A text, a batch or a metadata object exceeds a documented limit."""

    code = "content_too_large"


class InvalidTimestamp(InvalidInput):
    """A timestamp could not be parsed."""

    code = "invalid_timestamp"


class NotFound(MemstrataError, KeyError):
    """No memory with that id exists in the given scope."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class StoreError(MemstrataError):
    """The storage backend failed."""

    code = "store_error"


class StoreCorrupt(StoreError):
    """The database file is damaged, or is not a memstrata database."""

    code = "store_corrupt"


class SchemaTooNew(StoreError):
    """The database was written by a newer memstrata; upgrade memstrata to open it."""

    code = "schema_too_new"


class EmbedderUnavailable(MemstrataError):
    """The configured embedding model cannot be loaded or reached."""

    code = "embedder_unavailable"


class ConfigError(MemstrataError):
    """The settings are invalid."""

    code = "config_error"
