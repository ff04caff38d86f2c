"""Chat completions from any OpenAI-compatible ``/chat/completions`` endpoint.

Works with OpenAI, Ollama (``http://127.0.0.1:11434/v1``), vLLM, llama.cpp's
server and friends: ``POST {base_url}/chat/completions`` with
``{"model", "messages", "temperature", ...}``; the reply is
``choices[0].message.content`` and token counts come from ``usage``.

Every structured answer is a typed model: `complete_json` validates the reply
against a pydantic class and asks once more (with the validation error) before
giving up, so callers never parse JSON themselves.

Configuration: ``MEMSTRATA_LLM_BASE_URL``, ``MEMSTRATA_LLM_MODEL`` and optionally
``MEMSTRATA_LLM_API_KEY`` (the same names `Settings` reads); see `llm_from_env`.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ..errors import MemstrataError

__all__ = ["ChatReply", "LLMNotConfigured", "LLMRequestFailed", "OpenAIChat", "llm_from_env"]

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
M = TypeVar("M", bound=BaseModel)


class LLMRequestFailed(MemstrataError):
    """The chat endpoint failed (HTTP error, transport error, bad payload or unusable answer)."""

    code = "llm_request_failed"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMNotConfigured(MemstrataError):
    """No LLM is configured (MEMSTRATA_LLM_BASE_URL / MEMSTRATA_LLM_MODEL are unset)."""

    code = "llm_not_configured"


@dataclass(frozen=True)
class ChatReply:
    """One completion: its text and the tokens it cost (as the server counted them, else None)."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class OpenAIChat:
    """An LLM behind an OpenAI-compatible chat API.

    Args:
        base_url: API root, e.g. ``https://api.openai.com/v1``; ``/chat/completions`` is appended.
        model: model name sent in each request.
        api_key: sent as ``Authorization: Bearer ...`` when given.
        timeout: per-request timeout in seconds.
        max_tries: attempts per request on transport errors and HTTP 408/409/429/5xx.
        backoff: seconds slept before the 2nd, 3rd, ... try (the last value repeats).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_tries: int = 4,
        backoff: Sequence[float] = (0.5, 2.0, 5.0),
    ) -> None:
        if max_tries < 1:
            raise ValueError("max_tries must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.max_tries = max_tries
        self.backoff = tuple(backoff) or (0.0,)
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._url = f"{self.base_url}/chat/completions"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "OpenAIChat":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> ChatReply:
        """One chat completion. `json_mode` asks the server for a JSON object (``response_format``)."""
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages), "temperature": temperature}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if json_mode:
            payload["response_format"] = {"type": "json_object"}
        resp = self._post(payload)
        try:
            doc = resp.json()
            text = doc["choices"][0]["message"]["content"]
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}, not a string")
            usage = doc.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMRequestFailed(
                f"malformed chat response from {self._url}: {exc}: {_excerpt(resp.text)}", status=resp.status_code
            ) from None
        return ChatReply(
            text=text,
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
        )

    def complete_json(
        self,
        messages: Sequence[Mapping[str, str]],
        model: type[M],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        json_mode: bool = True,
    ) -> tuple[M, list[ChatReply]]:
        """A completion validated as `model`; one repair round-trip on invalid output.

        Returns the parsed answer and every reply it took (for token accounting).
        """
        history = list(messages)
        replies: list[ChatReply] = []
        error = ""
        for attempt in range(2):
            reply = self.complete(history, temperature=temperature, max_tokens=max_tokens, json_mode=json_mode)
            replies.append(reply)
            try:
                return model.model_validate(_json_object(reply.text)), replies
            except (ValueError, ValidationError) as exc:
                error = str(exc).splitlines()[0]
                history = [
                    *history,
                    {"role": "assistant", "content": reply.text},
                    {
                        "role": "user",
                        "content": f"That was not valid ({error}). Reply with only a JSON object with the "
                        f"fields {sorted(model.model_fields)}.",
                    },
                ]
        raise LLMRequestFailed(f"{self._url} gave no valid {model.__name__} after a retry: {error}")

    # ------------------------------------------------------------------ transport

    def _post(self, payload: dict[str, Any]) -> httpx.Response:
        last: LLMRequestFailed | None = None
        for attempt in range(self.max_tries):
            if attempt:
                time.sleep(self.backoff[min(attempt - 1, len(self.backoff) - 1)])
            try:
                resp = self._client.post(self._url, json=payload)
            except httpx.TransportError as exc:
                last = LLMRequestFailed(f"chat request to {self._url} failed: {type(exc).__name__}: {exc}")
                continue
            if resp.status_code == 200:
                return resp
            last = LLMRequestFailed(
                f"chat request to {self._url} failed with HTTP {resp.status_code}: {_excerpt(resp.text)}",
                status=resp.status_code,
            )
            if resp.status_code not in _RETRY_STATUS:
                break
        assert last is not None
        raise last


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _json_object(text: str) -> Any:
    """Parse a JSON object from a reply, tolerating a Markdown code fence or text around it."""
    text = text.strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            return json.loads(text[start : end + 1])
        raise ValueError(f"not JSON: {_excerpt(text, 120)!r}") from None


def llm_from_env(environ: Mapping[str, str] | None = None) -> OpenAIChat:
    """The LLM named by ``MEMSTRATA_LLM_BASE_URL`` and ``MEMSTRATA_LLM_MODEL`` (and ``MEMSTRATA_LLM_API_KEY``).

    Raises `LLMNotConfigured` with a one-line explanation when either is unset.
    """
    env = os.environ if environ is None else environ
    base_url = (env.get("MEMSTRATA_LLM_BASE_URL") or "").strip()
    model = (env.get("MEMSTRATA_LLM_MODEL") or "").strip()
    missing = [n for n, v in (("MEMSTRATA_LLM_BASE_URL", base_url), ("MEMSTRATA_LLM_MODEL", model)) if not v]
    if missing:
        raise LLMNotConfigured(
            f"no LLM configured: set {' and '.join(missing)} (an OpenAI-compatible endpoint, e.g. "
            "MEMSTRATA_LLM_BASE_URL=http://127.0.0.1:11434/v1 MEMSTRATA_LLM_MODEL=llama3.1)"
        )
    return OpenAIChat(base_url, model, api_key=(env.get("MEMSTRATA_LLM_API_KEY") or None))
