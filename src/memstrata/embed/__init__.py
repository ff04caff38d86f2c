"""Embedding providers, chosen by name from settings (`MEMSTRATA_EMBEDDER`)."""

from __future__ import annotations

from typing import Callable

from ..config import Settings
from .base import Embedder


def _minilm(settings: Settings) -> Embedder:
    from .minilm import MiniLMEmbedder

    return MiniLMEmbedder(threads=settings.embed_threads, batch_size=settings.embed_batch_size)


def _openai(settings: Settings) -> Embedder:
    from .openai_compat import OpenAIEmbedder

    return OpenAIEmbedder(
        base_url=settings.openai_base_url, model=settings.openai_embed_model, api_key=settings.openai_api_key
    )


#: Provider name -> factory. Adding a provider is one class plus one line here.
EMBEDDERS: dict[str, Callable[[Settings], Embedder]] = {"minilm": _minilm, "openai": _openai}


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by `settings.embedder`."""
    return EMBEDDERS[settings.embedder](settings)


__all__ = ["Embedder", "EMBEDDERS", "make_embedder"]
