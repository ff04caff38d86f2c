"""Who is calling (API key -> principal) and whose memory they may touch (tenant namespaces).

Tenant isolation is done here, in the server, before `Memory` is called: every
user_id / agent_id a request names is mapped into its tenant's namespace
(``"<tenant>/<id>"``), and mapped back on the way out. Tenant names cannot
contain '/', so the mapping is injective: no choice of user_id by one tenant
can name an id inside another tenant's namespace.

The root namespace (ids stored as given, as the embedded `Memory` stores them)
is reached by admin keys that name no tenant and by anonymous calls on a
keyless loopback server; there '/' is refused in ids, so the root namespace
cannot reach into a tenant's either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidInput
from ..model import MAX_SCOPE_ID_CHARS, Record, Scope
from .errors import Forbidden, Unauthorized
from .keys import ApiKey, KeyStore, check_tenant
from .settings import is_loopback

TENANT_HEADER = "X-Memstrata-Tenant"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a key (or nobody, on a keyless loopback server) and its namespace."""

    role: Literal["tenant", "admin", "anonymous"]
    tenant: str | None
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Admin keys, and anonymous callers of a keyless loopback server (the machine's owner)."""
        return self.role in ("admin", "anonymous")

    @property
    def namespace(self) -> "Namespace":
        return Namespace(self.tenant)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(
    keys: KeyStore,
    *,
    authorization: str | None,
    tenant_header: str | None,
    local_host: str | None,
) -> Principal:
    """Resolve the caller. `local_host` is the server-side address the connection arrived on.

    No key: allowed only while the key store has no active key AND the connection came in
    over loopback (then the caller acts in the root namespace). A tenant key acts in its
    tenant; naming another tenant in the header is refused (403). An admin key acts in the
    tenant the header names, else its own default tenant, else the root namespace.
    """
    token = bearer_token(authorization)
    if token is None:
        if authorization:
            raise Unauthorized(
                "the Authorization header must be 'Bearer ms_...'; create a key with `memstrata keys create`"
            )
        if keys.has_active_keys():
            raise Unauthorized("this server requires an API key: send 'Authorization: Bearer ms_...'")
        if local_host is None or not is_loopback(local_host):
            raise Unauthorized(
                "this server has no API keys, so it only answers over loopback; create one with `memstrata keys create`"
            )
        if tenant_header:
            raise Forbidden(f"{TENANT_HEADER} needs an admin key; this server has no keys", field=TENANT_HEADER)
        return Principal(role="anonymous", tenant=None)
    key = keys.verify(token)
    if key is None:
        raise Unauthorized("the API key is unknown or revoked")
    return principal_for_key(key, tenant_header)


def principal_for_key(key: ApiKey, tenant_header: str | None) -> Principal:
    """The principal of a verified key, honouring the tenant header for admin keys only."""
    if key.role == "tenant":
        if tenant_header and tenant_header != key.tenant:
            raise Forbidden(
                "this API key belongs to another tenant; it cannot act for the tenant named", field=TENANT_HEADER
            )
        return Principal(role="tenant", tenant=key.tenant, key_id=key.id)
    tenant = check_tenant(tenant_header, TENANT_HEADER) if tenant_header else key.tenant
    return Principal(role="admin", tenant=tenant, key_id=key.id)


class Namespace:
    """Maps a tenant's ids to stored ids and back."""

    def __init__(self, tenant: str | None) -> None:
        self.tenant = tenant
        self.prefix = f"{tenant}/" if tenant else ""

    def scope_id(self, value: Any, field: str) -> str | None:
        """The stored form of a user_id / agent_id the caller gave (None stays None)."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
        if not value.strip():
            raise InvalidInput(f"{field} must not be empty", field=field)
        if _CONTROL.search(value):
            raise InvalidInput(f"{field} contains control characters", field=field)
        limit = MAX_SCOPE_ID_CHARS - len(self.prefix)
        if len(value) > limit:
            raise InvalidInput(f"{field} is {len(value)} characters; the limit here is {limit}", field=field)
        if not self.tenant and "/" in value:
            raise InvalidInput(f"{field} may not contain '/' outside a tenant (it separates tenant and id)", field=field)
        return self.prefix + value

    def scope(self, user_id: Any = None, agent_id: Any = None) -> dict[str, str | None]:
        """`user_id=` and `agent_id=` keyword arguments for `Memory`, in stored form."""
        return {"user_id": self.scope_id(user_id, "user_id"), "agent_id": self.scope_id(agent_id, "agent_id")}

    def owns(self, scope: Scope) -> bool:
        """Whether every id of a stored scope lies in this namespace (a tenant's, or the root one)."""
        ids = [i for i in (scope.user_id, scope.agent_id) if i is not None]
        if self.prefix:
            return bool(ids) and all(i.startswith(self.prefix) for i in ids)
        return bool(ids) and not any("/" in i for i in ids)

    def out_id(self, value: str | None) -> str | None:
        """A stored user_id / agent_id as the caller knows it (the tenant prefix taken off)."""
        if value is None or not self.prefix:
            return value
        if not value.startswith(self.prefix):  # cannot happen: the store filtered by a namespaced id
            raise RuntimeError("a record outside the caller's tenant reached the response; refusing to send it")
        return value[len(self.prefix) :]

    def record(self, record: Record) -> dict[str, Any]:
        """A record as the caller sees it (ids unmapped), with its layer, ready for JSON."""
        data = record.model_dump(mode="json")
        data["user_id"] = self.out_id(record.user_id)
        data["agent_id"] = self.out_id(record.agent_id)
        data["layer"] = record.layer_value
        return data

    def message(self, text: str) -> str:
        """An error message with stored ids turned back into the caller's ids."""
        if not self.prefix:
            return text
        return re.sub(r"(?<![A-Za-z0-9_.\-])" + re.escape(self.prefix), "", text)
