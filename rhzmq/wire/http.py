"""What both HTTP servers — the cluster's gateway and the registry (Den) — answer the same way:
the error body, and the ``Host`` allow-list that keeps web pages out (DNS rebinding). One copy
here, in the shared layer, since neither server may import the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .net import LOOPBACK_NAMES


def error_response(status: int, type_: str, message: str, **extra: Any) -> Response:
    """``{"error": {"type", "message", ...}}`` with ``status`` (a 401 names the Bearer scheme)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"type": type_, "message": message, **extra}}, status, headers=headers
    )


class HostCheck:
    """Pure ASGI middleware: only requests whose ``Host`` names this server get in.

    A web page can point a name it controls at 127.0.0.1 (DNS rebinding) and then talk to a
    loopback gateway as its own origin; its requests still say ``Host: <its name>``. So a
    gateway bound to loopback answers only ``localhost``, ``127.0.0.1`` and ``[::1]`` (any
    port: SSH forwards move it); one bound to an address answers it and the names given with
    ``--allowed-hosts``; one bound to every address (``0.0.0.0``) answers any name unless
    ``--allowed-hosts`` narrows it (``*`` allows any, for a gateway behind a proxy).
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str], server: str = "gateway") -> None:
        self.app = app
        self.allowed = allowed
        self.server = server  # named in the refusal: "gateway", "registry"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "*" in self.allowed:
            return await self.app(scope, receive, send)
        host = ""
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
                break
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.strip("[]").lower() in self.allowed:
            return await self.app(scope, receive, send)
        response = error_response(
            403,
            "Forbidden",
            f"Host {host!r} is not this {self.server}'s; allowed: "
            f"{', '.join(sorted(self.allowed))} (start the {self.server} with --allowed-hosts "
            "to add names)",
        )
        await response(scope, receive, send)


def allowed_hosts(bind: str, extra: Sequence[str] = ()) -> frozenset[str]:
    """The Host names a server bound to ``bind`` answers (see :class:`HostCheck`)."""
    given = {h.strip().lower() for h in extra if h.strip()}
    if bind in ("0.0.0.0", "::", "") and not given:
        # Bound to every address: callers use names we cannot know (and an explicit token was
        # required for this bind); --allowed-hosts narrows it.
        return frozenset({"*"})
    names = set(LOOPBACK_NAMES) | given
    if bind not in ("0.0.0.0", "::", ""):
        names.add(bind.strip("[]").lower())
    return frozenset(names)
