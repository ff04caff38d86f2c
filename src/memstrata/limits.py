"""Documented limits on inputs (see docs/limits.md). Exceeding one raises a typed error."""

from __future__ import annotations

#: Characters in one episode/note text.
MAX_CONTENT_CHARS = 32_000
#: Messages (episodes) in one `add` call.
MAX_ITEMS_PER_ADD = 1_000
#: Bytes of one record's metadata, serialised as JSON.
MAX_METADATA_BYTES = 16_384
#: Characters in a search query.
MAX_QUERY_CHARS = 4_000
#: Results per search call and per listed page.
MAX_LIMIT = 1_000
#: Token budget of one context block.
MAX_BUDGET_TOKENS = 100_000
#: Characters of a role or speaker name.
MAX_NAME_CHARS = 256
