"""An embedder wrapper that remembers vectors in the store, per model and per owner (user/agent)."""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

import numpy as np

from ..model import Scope, cache_key, text_hash
from .base import Embedder


class VectorCache(Protocol):
    """Where cached vectors live (the store implements this)."""

    def embedding_cache_get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def embedding_cache_put(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None: ...


class CachedEmbedder:
    """Embeds only the texts the cache has not seen; duplicates within a batch are embedded once.

    The cache is per owner: `for_scope(scope)` gives the embedder a user's or agent's writes go
    through. Without an owner nothing is cached (queries, re-embedding across scopes), so a read
    never writes and one tenant's texts never warm another's cache.
    """

    def __init__(self, inner: Embedder, cache: VectorCache, owner: tuple[str | None, str | None] | None = None) -> None:
        self.inner = inner
        self.cache = cache
        self.owner = owner

    def for_scope(self, scope: Scope) -> "CachedEmbedder":
        """This embedder, caching under the scope's user/agent."""
        return CachedEmbedder(self.inner, self.cache, (scope.user_id, scope.agent_id))

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.owner is None:
            return np.asarray(self.inner.embed(list(texts)), dtype=np.float32)
        user_id, agent_id = self.owner
        keys = [cache_key(user_id, agent_id, text_hash(t)) for t in texts]
        found = self.cache.embedding_cache_get(self.name, list(set(keys)))
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in found and k not in missing:
                missing[k] = t
        if missing:
            vectors = self.inner.embed(list(missing.values()))
            new = dict(zip(missing.keys(), vectors))
            self.cache.embedding_cache_put(self.name, new.items())
            found.update(new)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
