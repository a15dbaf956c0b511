"""Browser sign-in for the servers' web UIs (the registry's at ``/``, a gateway's at ``/ui``).

A browser cannot be trusted with a bearer token in script-readable storage, and must not be able
to be made to act by another site. So a token is typed into a sign-in page once and exchanged
for a **session**: a random id in an ``HttpOnly; SameSite=Strict`` cookie (script cannot read it;
the browser sends it on no request another site starts), held in this process's memory only,
with a per-session **CSRF token** the page reads from its own HTML and sends back in the
``X-CSRF-Token`` header of every request that changes something. Those requests must also come
from the server's own origin (``Origin``, else ``Sec-Fetch-Site``): a cross-site form or
``fetch`` fails three ways at once (no cookie, no CSRF token, foreign origin).

The cookie's name carries the server's port: cookies are scoped by host, not port, so a registry
and several gateways on ``127.0.0.1`` would otherwise overwrite each other's session. A session
ends at sign-out, after :data:`~rhzmq.wire.settings.UI_SESSION_TTL` seconds, or when the process
restarts (sign in again). What a session stands for (the registry keeps the token it was made
from, so a revoked token ends its sessions on the next request) is the caller's ``subject``.

Both servers import this module (a server may import only itself and ``rhzmq.wire``), so the
rules are written once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .settings import UI_MAX_SESSIONS, UI_SESSION_TTL

#: Files both UIs serve from here (``static/``: the stylesheet and the sign-in script), besides
#: their own pages; name -> media type.
SHARED_STATIC = Path(__file__).resolve().parent / "static"
SHARED_FILES = {"ui.css": "text/css", "signin.js": "text/javascript"}

#: Headers on every page and file of both UIs: no inline script or style, nothing loaded from
#: elsewhere, never framed (clickjacking), no Referer leaving the page, no type sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

T = TypeVar("T")
#: An ASGI connection scope (as Starlette's; this layer imports no web framework).
Scope = Mapping[str, Any]

#: The header a page sends its CSRF token in.
CSRF_HEADER = b"x-csrf-token"
#: Methods that change nothing, so need no CSRF token (every route keeps them read-only).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Session(Generic[T]):
    """One signed-in browser: its cookie value, CSRF token, what it stands for, and its end."""

    id: str
    csrf: str
    subject: T
    expires: float


class Sessions(Generic[T]):
    """The sessions of one server process (memory only; at most :data:`UI_MAX_SESSIONS`, the
    oldest dropped first)."""

    def __init__(self, prefix: str, ttl: float = UI_SESSION_TTL) -> None:
        self.prefix = prefix
        self.ttl = ttl
        self._by_id: OrderedDict[str, Session[T]] = OrderedDict()

    def cookie_name(self, scope: Scope) -> str:
        server = scope.get("server") or ("", 0)
        return f"{self.prefix}_{server[1] or 0}"

    def create(self, subject: T) -> Session[T]:
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), subject, time.time() + self.ttl
        )
        self._by_id[session.id] = session
        while len(self._by_id) > UI_MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session

    def get(self, scope: Scope) -> Session[T] | None:
        """The live session whose cookie the request carries, or None."""
        value = cookie(scope, self.cookie_name(scope))
        if not value:
            return None
        session = self._by_id.get(value)
        if session is None:
            return None
        if session.expires < time.time():
            del self._by_id[value]
            return None
        return session

    def drop(self, session: Session[T]) -> None:
        self._by_id.pop(session.id, None)

    def drop_subject(self, subject: T) -> None:
        """End every session standing for ``subject`` (e.g. a token found revoked)."""
        for sid in [sid for sid, s in self._by_id.items() if s.subject == subject]:
            del self._by_id[sid]

    def set_cookie(self, scope: Scope, session: Session[T], path: str = "/") -> str:
        """The ``Set-Cookie`` value that starts ``session`` in the browser."""
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        return (
            f"{self.cookie_name(scope)}={session.id}; Path={path}; Max-Age={int(self.ttl)}; "
            f"HttpOnly; SameSite=Strict{secure}"
        )

    def clear_cookie(self, scope: Scope, path: str = "/") -> str:
        return f"{self.cookie_name(scope)}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict"

    def sign_out(self, scope: Scope, path: str = "/") -> str:
        """End the request's session, if any; the ``Set-Cookie`` value that clears it."""
        session = self.get(scope)
        if session is not None:
            self.drop(session)
        return self.clear_cookie(scope, path)


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def cookie(scope: Scope, name: str) -> str | None:
    """The value of cookie ``name`` in the request (the first one sent)."""
    raw = header(scope, b"cookie")
    if raw is None:
        return None
    for part in raw.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def same_origin(scope: Scope) -> bool:
    """Whether the request comes from a page of this server (checked on every change).

    ``Origin`` must be this request's own scheme and ``Host``; without one (some browsers omit
    it on same-origin requests) ``Sec-Fetch-Site`` must say ``same-origin``; a request with
    neither is not from a browser page, and a bearer token is how non-browsers sign in.
    """
    origin = header(scope, b"origin")
    host = header(scope, b"host")
    if origin is not None:
        if host is None:
            return False
        scheme = scope.get("scheme", "http")
        return origin.decode("latin-1") == f"{scheme}://{host.decode('latin-1')}"
    site = header(scope, b"sec-fetch-site")
    return site == b"same-origin"


def csrf_ok(scope: Scope, session: Session[T]) -> bool:
    """Whether a changing request carries the session's CSRF token and comes from our origin."""
    given = header(scope, CSRF_HEADER) or b""
    return hmac.compare_digest(given, session.csrf.encode()) and same_origin(scope)


__all__ = [
    "CSRF_HEADER",
    "SAFE_METHODS",
    "Session",
    "Sessions",
    "cookie",
    "csrf_ok",
    "header",
    "same_origin",
]
