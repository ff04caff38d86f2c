"""The web page: browse, search and inspect a memory store in a browser, served by the REST server.

The page is three static files (`web/index.html`, `web/app.js`, `web/app.css`) with no build
step and no third-party code. It holds no data and no key of its own: the browser asks the
same `/v1` endpoints as any client, with the API key the user pastes in (kept in the tab's
sessionStorage only), so tenant isolation, limits and errors are the server's, unchanged.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

#: The page's path on the server.
PAGE_PATH = "/ui"

_ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}

#: Only the page's own files run; nothing is framed, nothing is sent anywhere but this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("web", name).read_bytes()


def web_router() -> APIRouter:
    """Routes for the page (left out of the OpenAPI schema: they are not part of the API)."""
    router = APIRouter(include_in_schema=False)
    files = {suffix: (_asset(name), media) for suffix, (name, media) in _ASSETS.items()}

    def serve(suffix: str):
        body, media = files[suffix]

        def endpoint() -> Response:
            return Response(body, media_type=media, headers=SECURITY_HEADERS)

        return endpoint

    for suffix in files:
        router.add_api_route(PAGE_PATH + suffix, serve(suffix), methods=["GET"])

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse(PAGE_PATH, status_code=307)

    return router
