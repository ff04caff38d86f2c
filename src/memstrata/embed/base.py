"""The embedding protocol every provider implements."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    #: Stable identifier of the model; part of the embedding-cache key.
    name: str
    #: Vector dimension.
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array, each row L2-normalised."""
        ...
