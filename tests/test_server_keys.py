"""API keys (hashed at rest, tenant-bound, revocable), the tenant namespace mapping, and the
server's commands (`keys`, `serve --print-openapi`) mounted the way the main CLI mounts them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import pytest
import typer
from typer.testing import CliRunner

from memstrata import InvalidInput, NotFound
from memstrata.errors import ConfigError
from memstrata.server.auth import Namespace, authenticate
from memstrata.server.errors import Forbidden, Unauthorized
from memstrata.server.keys import KeyStore
from memstrata.server.serve import check_bind, openapi_text
from memstrata.server.settings import is_loopback, keys_path_for


def test_keys_are_random_shown_once_and_hashed_at_rest(tmp_path):
    path = tmp_path / "k.db"
    store = KeyStore(path)
    a, b = store.create(tenant="acme"), store.create(tenant="acme")
    assert a.token.startswith("ms_") and len(a.token) >= 40 and a.token != b.token
    assert store.verify(a.token).tenant == "acme" and store.verify(a.token).role == "tenant"
    assert store.verify("ms_" + "x" * 43) is None and store.verify("not-a-key") is None
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert a.token.encode() not in raw and a.token[3:].encode() not in raw

    store = KeyStore(path)
    assert [k.id for k in store.list()] == [a.key.id, b.key.id]
    assert store.revoke(a.key.id).revoked_at is not None
    assert store.verify(a.token) is None and store.verify(b.token) is not None
    assert [k.id for k in store.list(include_revoked=False)] == [b.key.id]
    store.revoke(a.key.id)  # twice is harmless
    with pytest.raises(NotFound):
        store.revoke("key_nope")
    with pytest.raises(InvalidInput):
        store.create(tenant=None)
    for bad in ("a/b", "", "x" * 65, "-lead", "sp ace"):
        with pytest.raises(InvalidInput):
            store.create(tenant=bad)
    admin = store.create(tenant=None, admin=True)
    assert store.verify(admin.token).role == "admin"
    store.close()


def test_authentication_rules(tmp_path):
    store = KeyStore(tmp_path / "k.db")
    # No keys: anonymous only over loopback, in the root namespace.
    assert authenticate(store, authorization=None, tenant_header=None, local_host="127.0.0.1").tenant is None
    with pytest.raises(Unauthorized):
        authenticate(store, authorization=None, tenant_header=None, local_host="192.168.1.5")
    with pytest.raises(Forbidden):
        authenticate(store, authorization=None, tenant_header="acme", local_host="127.0.0.1")
    tenant, admin = store.create(tenant="acme"), store.create(tenant="ops", admin=True)
    with pytest.raises(Unauthorized):
        authenticate(store, authorization=None, tenant_header=None, local_host="127.0.0.1")
    who = authenticate(store, authorization=f"Bearer {tenant.token}", tenant_header="acme", local_host="10.0.0.1")
    assert who.tenant == "acme" and not who.is_admin
    with pytest.raises(Forbidden):
        authenticate(store, authorization=f"Bearer {tenant.token}", tenant_header="beta", local_host="127.0.0.1")
    assert authenticate(store, authorization=f"bearer {admin.token}", tenant_header=None, local_host="::1").tenant == "ops"
    assert authenticate(store, authorization=f"Bearer {admin.token}", tenant_header="beta", local_host="::1").tenant == "beta"
    store.close()


def test_namespace_mapping_cannot_collide():
    acme, root = Namespace("acme"), Namespace(None)
    assert acme.scope("ana", None) == {"user_id": "acme/ana", "agent_id": None}
    assert acme.scope_id("x/y", "user_id") == "acme/x/y"  # '/' is fine inside a tenant: the first '/' separates
    assert Namespace("acme.x").scope_id("y", "user_id") != acme.scope_id("x/y", "user_id")  # no '/' in tenants
    with pytest.raises(InvalidInput):
        root.scope_id("acme/ana", "user_id")
    for bad in ("", "  ", "a\x00b", "tab\there", "u" * 252):
        with pytest.raises(InvalidInput):
            acme.scope_id(bad, "user_id")
    assert acme.message("no memory 'x' in scope user=acme/ana") == "no memory 'x' in scope user=ana"
    assert Namespace("a").message("user=a/b in data/x") == "user=b in data/x"
    # Which stored scopes an admin's "organise every scope" may touch: its namespace's alone.
    from memstrata.model import Scope

    assert acme.owns(Scope(user_id="acme/ana")) and acme.owns(Scope(user_id="acme/ana", agent_id="acme/bot"))
    assert not acme.owns(Scope(user_id="acme.x/ana")) and not acme.owns(Scope(user_id="acme/ana", agent_id="bot"))
    assert not acme.owns(Scope(user_id="beta/ana")) and not acme.owns(Scope(user_id="acme"))
    assert root.owns(Scope(user_id="ana")) and not root.owns(Scope(user_id="acme/ana"))
    assert not root.owns(Scope(user_id="ana", agent_id="acme/bot"))
    assert acme.out_id("acme/ana") == "ana" and root.out_id("ana") == "ana"


def test_bind_rules(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.9.9.9")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("example.com")
    keys = tmp_path / "k.db"
    check_bind("127.0.0.1", keys)
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0"):
        check_bind("0.0.0.0", keys)
    store = KeyStore(keys)
    key = store.create(tenant="acme")
    check_bind("0.0.0.0", keys)
    store.revoke(key.key.id)
    store.close()
    with pytest.raises(ConfigError):
        check_bind("0.0.0.0", keys)
    assert keys_path_for(Path("/data/m.db")) == Path("/data/m.db.keys.db")
    assert keys_path_for(Path("/data/m.db"), "/k/keys.db") == Path("/k/keys.db")


def _cli() -> typer.Typer:
    """A root app shaped like the main CLI (global --db/--config), with the server's groups mounted."""
    from memstrata.server.cli import keys_app, mcp_app, serve_app

    app = typer.Typer()

    @app.callback()
    def root(
        db: Annotated[Optional[Path], typer.Option("--db")] = None,
        config: Annotated[Optional[Path], typer.Option("--config")] = None,
    ) -> None:
        pass

    app.add_typer(keys_app, name="keys")
    app.add_typer(serve_app, name="serve")
    app.add_typer(mcp_app, name="mcp")
    return app


def test_keys_commands(tmp_path):
    runner, app, db = CliRunner(), _cli(), str(tmp_path / "m.db")
    out = runner.invoke(app, ["--db", db, "keys", "create", "--tenant", "acme", "--json"])
    assert out.exit_code == 0, out.output
    created = json.loads(out.output)
    assert created["token"].startswith("ms_") and created["tenant"] == "acme"
    assert (tmp_path / "m.db.keys.db").exists()
    out = runner.invoke(app, ["--db", db, "keys", "create", "--admin", "--label", "ops"])
    assert out.exit_code == 0 and "shown this once" in out.output
    listed = json.loads(runner.invoke(app, ["--db", db, "keys", "list", "--json"]).output)
    assert [k["role"] for k in listed] == ["tenant", "admin"] and all("token" not in k for k in listed)
    assert "ms_" not in runner.invoke(app, ["--db", db, "keys", "list"]).output
    out = runner.invoke(app, ["--db", db, "keys", "revoke", created["id"]])
    assert out.exit_code == 0 and "Revoked" in out.output
    assert len(json.loads(runner.invoke(app, ["--db", db, "keys", "list", "--active", "--json"]).output)) == 1


def test_print_openapi_matches_committed_file():
    out = CliRunner().invoke(_cli(), ["serve", "--print-openapi"])
    assert out.exit_code == 0, out.output
    committed = (Path(__file__).parents[1] / "docs" / "openapi.json").read_text()
    assert out.output == committed == openapi_text(), (
        "docs/openapi.json is stale: python -m memstrata.server.serve --print-openapi > docs/openapi.json"
    )
    assert set(json.loads(committed)["paths"]) >= {
        "/v1/health", "/v1/version", "/v1/memories", "/v1/memories/{memory_id}", "/v1/memories/{memory_id}/history",
        "/v1/search", "/v1/context", "/v1/stats", "/v1/reset", "/v1/memories/{memory_id}/pin",
        "/v1/memories/{memory_id}/archive", "/v1/memories/{memory_id}/restore", "/v1/episodes/{episode_id}",
        "/v1/organise", "/v1/export", "/v1/experiences", "/v1/experiences/search", "/v1/reembed", "/v1/vacuum",
    }
