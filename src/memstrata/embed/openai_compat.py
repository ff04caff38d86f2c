"""Embeddings from any OpenAI-compatible ``/embeddings`` endpoint.

Works with OpenAI, Ollama (``http://localhost:11434/v1``), vLLM, llama.cpp's
server and friends: ``POST {base_url}/embeddings`` with
``{"model": ..., "input": [...]}``; the answer's ``data[i].embedding`` are put
back in input order by ``data[i].index``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import httpx
import numpy as np

__all__ = ["EmbeddingRequestFailed", "OpenAIEmbedder"]

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_TRIES = 3
_BACKOFF_S = (0.5, 1.5)  # sleeps before try 2 and try 3


try:  # the package's typed error (the REST server maps it to 503)
    from ..errors import EmbedderUnavailable as _Base
except ImportError:  # pragma: no cover - module used outside the package
    _Base = Exception  # type: ignore[misc,assignment]


class EmbeddingRequestFailed(_Base):
    """The embeddings endpoint failed (HTTP error, transport error or bad payload).

    ``status`` is the HTTP status (None for transport errors), ``body`` the
    start of the response body.
    """

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class OpenAIEmbedder:
    """Embedder backed by an OpenAI-compatible HTTP API.

    Args:
        base_url: API root, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:11434/v1``; ``/embeddings`` is appended.
        model: model name sent in each request.
        api_key: sent as ``Authorization: Bearer ...`` when given.
        dim: expected vector size; if None it is taken from the first response
            (reading :attr:`dim` before that sends one small probe request).
        timeout: per-request timeout in seconds.
        batch_size: texts per request.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dim: int | None = None,
        timeout: float = 30.0,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self._dim: int | None = dim
        self.timeout = timeout
        self.batch_size = batch_size
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._url = f"{self.base_url}/embeddings"
        #: seconds slept before the 2nd and 3rd try (429/5xx/transport errors)
        self.backoff: tuple[float, ...] = _BACKOFF_S

    @property
    def dim(self) -> int:
        """Vector size: as given, else learnt from the first response.

        Reading it before anything was embedded sends one one-word request.
        (On Python 3.11, ``isinstance(x, Embedder)`` reads it too.)
        """
        if self._dim is None:
            self._request(["dimension probe"])
        assert self._dim is not None
        return self._dim

    @property
    def dim_known(self) -> bool:
        """Whether :attr:`dim` is known without a request."""
        return self._dim is not None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "OpenAIEmbedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._request(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        out = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.maximum(norms, np.float32(1e-12), out=norms)
        out /= norms
        return out

    # ------------------------------------------------------------------ #

    def _post(self, batch: list[str]) -> httpx.Response:
        payload = {"model": self.model, "input": batch}
        last: EmbeddingRequestFailed | None = None
        for attempt in range(_MAX_TRIES):
            if attempt:
                time.sleep(self.backoff[min(attempt - 1, len(self.backoff) - 1)])
            try:
                resp = self._client.post(self._url, json=payload)
            except httpx.TransportError as e:  # connect/read errors, timeouts
                last = EmbeddingRequestFailed(
                    f"embeddings request to {self._url} failed: {type(e).__name__}: {e}"
                )
                continue
            if resp.status_code == 200:
                return resp
            body = resp.text
            last = EmbeddingRequestFailed(
                f"embeddings request to {self._url} failed with HTTP {resp.status_code}: "
                f"{_excerpt(body)}",
                status=resp.status_code,
                body=body[:2000],
            )
            if resp.status_code not in _RETRY_STATUS:
                break
        assert last is not None
        raise last

    def _request(self, batch: list[str]) -> np.ndarray:
        resp = self._post(batch)
        try:
            doc: Any = resp.json()
            data = sorted(doc["data"], key=lambda d: int(d["index"]))
            vecs = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as e:
            raise EmbeddingRequestFailed(
                f"malformed embeddings response from {self._url}: {e}: {_excerpt(resp.text)}",
                status=resp.status_code,
                body=resp.text[:2000],
            ) from e
        if vecs.ndim != 2 or vecs.shape[0] != len(batch):
            raise EmbeddingRequestFailed(
                f"embeddings response from {self._url} has shape {vecs.shape}, "
                f"expected {len(batch)} vectors",
                status=resp.status_code,
            )
        if self._dim is None:
            self._dim = int(vecs.shape[1])
        elif vecs.shape[1] != self._dim:
            raise EmbeddingRequestFailed(
                f"embeddings from {self._url} have dimension {vecs.shape[1]}, expected {self._dim}",
                status=resp.status_code,
            )
        return vecs
