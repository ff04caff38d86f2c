"""The server's error vocabulary: HTTP status per error code, the JSON error shape, auth errors.

Every error response of the REST server has the same body::

    {"error": {"code": "not_found", "message": "no memory 'ep_1' in scope user=ana", "field": null}}

`code` is stable (the `.code` of the typed error); `message` says what to do; `field`
names the offending argument when there is one. This module imports nothing from a
web framework, so the client can share it.
"""

from __future__ import annotations

from typing import Any

from .. import errors as core
from ..errors import MemstrataError


class Unauthorized(MemstrataError):
    """The request carried no API key, or one that is unknown or revoked (HTTP 401)."""

    code = "unauthorized"


class Forbidden(MemstrataError):
    """The API key is valid but may not do this (HTTP 403): an admin-only call, or another tenant."""

    code = "forbidden"


class MalformedRequest(core.InvalidInput):
    """The request body is not valid JSON (HTTP 400)."""

    code = "malformed_json"


class MethodNotAllowed(MemstrataError):
    """The path exists but not with this HTTP method (HTTP 405)."""

    code = "method_not_allowed"


class ServerError(MemstrataError):
    """The server failed in a way it did not expect (HTTP 500); the server log has the details."""

    code = "internal_error"


#: Error code -> HTTP status. Codes not listed fall back by class (see `status_for`).
STATUS_BY_CODE: dict[str, int] = {
    Unauthorized.code: 401,
    Forbidden.code: 403,
    MalformedRequest.code: 400,
    core.NotFound.code: 404,
    MethodNotAllowed.code: 405,
    core.ContentTooLarge.code: 413,
    core.InvalidInput.code: 422,
    core.ScopeRequired.code: 422,
    core.EmptyContent.code: 422,
    core.InvalidTimestamp.code: 422,
    core.StoreError.code: 503,
    core.StoreCorrupt.code: 503,
    core.SchemaTooNew.code: 503,
    core.EmbedderUnavailable.code: 503,
    ServerError.code: 500,
}


def status_for(exc: MemstrataError) -> int:
    """The HTTP status that answers `exc`."""
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    for cls, status in (
        (core.ContentTooLarge, 413),
        (core.InvalidInput, 422),
        (core.NotFound, 404),
        (core.StoreError, 503),
        (core.EmbedderUnavailable, 503),
    ):
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message, "field": field}}


def _all_error_classes() -> dict[str, type[MemstrataError]]:
    found: dict[str, type[MemstrataError]] = {}
    stack: list[type[MemstrataError]] = [MemstrataError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


def error_from_body(status: int, body: Any) -> MemstrataError:
    """Rebuild the typed error a server answered with (used by the client).

    Unknown codes become a plain `MemstrataError` carrying the server's code; a body
    that is not in the error shape becomes `ServerError` (5xx) or `InvalidInput` (4xx).
    """
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str):
        cls: type[MemstrataError] = ServerError if status >= 500 else core.InvalidInput
        text = str(body)[:500] if body else ""
        return cls(f"HTTP {status} from the server{': ' + text if text else ''}")
    code, message, field = err["code"], str(err.get("message") or err["code"]), err.get("field")
    cls = _all_error_classes().get(code, MemstrataError)
    exc = cls(message, field=field if isinstance(field, str) else None)
    if exc.code != code:
        exc.code = code  # keep the server's code even when the class is a fallback
    exc.status = status  # type: ignore[attr-defined]
    return exc
