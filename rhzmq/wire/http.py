"""What both HTTP servers — the cluster's gateway and the registry (Den) — do the same way: the
error body, the ``Host`` allow-list that keeps web pages out (DNS rebinding), and the uvicorn
protocol that cuts off slow request heads. One copy here, in the shared layer, since neither
server may import the other."""

from __future__ import annotations

import asyncio
import json
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


#: Largest request head (request line and headers) a server reads, as h11 allowed: uvicorn's
#: httptools protocol has no limit, and it and httptools copy a growing head again on every read,
#: so a head sent in small pieces costs time quadratic in its size (measured: 0.85 s of the event
#: loop for 4 MiB in 2 KiB pieces, from any client, before the token is looked at).
MAX_HEAD_BYTES = 16 * 1024


def _raw_error(status: bytes, type_: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer with the JSON error body of :func:`error_response`, closing the
    connection: for the protocol, which answers before any app runs."""
    body = json.dumps({"error": {"type": type_, "message": message}}).encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, len(body)) + body
    )


_HEAD_TOO_LARGE = _raw_error(
    b"431 Request Header Fields Too Large",
    "RequestHeaderFieldsTooLarge",
    f"the request line and headers exceed {MAX_HEAD_BYTES} bytes",
)
_NOT_HTTP = _raw_error(
    b"400 Bad Request",
    "BadRequest",
    "the request is not valid HTTP/1.1: check its request line, its headers and its Content-Length",
)


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (a C parser: the request rate of a bare Starlette app went
    from ~9,900 to ~14,400 requests/s over h11's pure-Python one, measured here), closing a
    connection whose request head is not complete within ``seconds``
    (RHZMQ_HTTP_HEADER_TIMEOUT), and answering 431 to one whose head grows past
    :data:`MAX_HEAD_BYTES`. uvicorn has no time limit: a client sending a header byte now and
    then, or nothing at all, held its connection forever, and the connection cap let 256 of them
    shut everyone else out."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        # Heads parsed and responses finished on this connection: equal when it waits for a
        # new request head (pipelined requests keep them apart while one is answered).
        _heads = 0
        _answered = 0
        _head_timer: asyncio.TimerHandle | None = None
        # A head under way, and its bytes read after the read it began in (that read may end
        # with the body: only later reads are wholly head).
        _in_head = False
        _head_bytes = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def data_received(self, data: bytes) -> None:
            counting = self._in_head
            super().data_received(data)
            if counting and self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self.transport.write(_HEAD_TOO_LARGE)
                    self.transport.close()

        def send_400_response(self, msg: str) -> None:
            # What the parser refuses (an empty Content-Length, a bad request line) gets the
            # JSON error every other answer has, not uvicorn's text/plain one.
            self.transport.write(_NOT_HTTP)
            self.transport.close()

        def on_message_begin(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._heads += 1
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            self._answered += 1
            super().on_response_complete()
            if self._heads == self._answered and not self.transport.is_closing():
                self._arm()  # keep-alive: the next request's head has ``seconds`` too

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._expired)

        def _expired(self) -> None:
            self._head_timer = None
            if self._heads == self._answered and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
