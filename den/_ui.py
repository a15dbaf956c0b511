"""The registry's web UI: the pages at ``/`` and their static files (``den/static/``).

The UI is plain HTML, CSS and JavaScript shipped in the package (no build step, no CDN): one page,
``/``, whose script draws every view (my resources, shared with me, a group's, a resource with
its history, diff, rollback and shares, groups, secrets, tokens, users) from the registry's own
JSON API (``den._app``: the same routes, rules and queries as every other client). The browser
signs in at ``/signin`` by exchanging a token for a session cookie (``POST /session``;
:mod:`rhzmq.wire.websession` has the rules: HttpOnly, SameSite=Strict, a CSRF token on every
change, same-origin only).

Every answer here carries a strict Content-Security-Policy (scripts and styles from this server
only, no inline script, no framing): the page renders every value as text, never as markup, and
a secret's values never reach it (it loads secrets redacted: ``GET /secrets``,
``?redact=true``).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from rhzmq.wire.websession import SECURITY_HEADERS, SHARED_FILES, SHARED_STATIC

STATIC = Path(__file__).resolve().parent / "static"

#: Pages a signed-out browser is sent from to ``/signin`` (303) rather than answered 401.
PAGES = frozenset({"/"})

#: Every static file the UI serves, by name -> (media type, folder); nothing else under
#: ``/static/`` is answered.
FILES = {
    "app.js": ("text/javascript", STATIC),
    **{name: (kind, SHARED_STATIC) for name, kind in SHARED_FILES.items()},
}


def is_public(path: str) -> bool:
    """Paths a signed-out browser may GET: the sign-in page and the static files."""
    return path == "/signin" or (path.startswith("/static/") and path[8:] in FILES)


def _file(name: str, media_type: str, folder: Path = STATIC) -> Response:
    return FileResponse(folder / name, media_type=media_type, headers=SECURITY_HEADERS)


async def index(request: Request) -> Response:
    return _file("index.html", "text/html; charset=utf-8")


async def sign_in_page(request: Request) -> Response:
    return _file("signin.html", "text/html; charset=utf-8")


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    found = FILES.get(name)
    if found is None:
        return Response("not found", 404, media_type="text/plain")
    return _file(name, *found)


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/signin", sign_in_page, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
