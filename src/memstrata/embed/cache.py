"""An embedder wrapper that remembers vectors by (model, text hash) in the store."""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

import numpy as np

from ..model import text_hash
from .base import Embedder


class VectorCache(Protocol):
    """Where cached vectors live (the store implements this)."""

    def embedding_cache_get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def embedding_cache_put(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None: ...


class CachedEmbedder:
    """Embeds only the texts the cache has not seen; duplicates within a batch are embedded once.

    Meant for stored texts; queries go to `inner` directly so a read never writes.
    """

    def __init__(self, inner: Embedder, cache: VectorCache) -> None:
        self.inner = inner
        self.cache = cache

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        found = self.cache.embedding_cache_get(self.name, list(set(hashes)))
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts):
            if h not in found and h not in missing:
                missing[h] = t
        if missing:
            vectors = self.inner.embed(list(missing.values()))
            new = dict(zip(missing.keys(), vectors))
            self.cache.embedding_cache_put(self.name, new.items())
            found.update(new)
        return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
