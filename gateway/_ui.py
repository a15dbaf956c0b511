"""A cluster's live view at ``/ui``: workers, objects, calls/s and the daemon's log, as they change.

For one user with no registry: the gateway's own token signs a browser in (``/ui/signin``
exchanges it for a session cookie, :mod:`rhzmq.wire.websession`), and every change the page makes
(delete an object or an env, tear the cluster down) carries the session's CSRF token from the
gateway's own origin. The routes under ``/ui`` are the only ones a session cookie opens: calls
to objects still need the bearer token.

================================  =====================================================
route                             does
================================  =====================================================
``GET /ui``                       the page (signed out: 303 to ``/ui/signin``)
``GET /ui/signin``                the sign-in page; ``GET /ui/static/{file}`` its files
``POST|GET|DELETE /ui/session``   sign in with ``{"token"}``; who and the CSRF token; out
``GET /ui/events``                server-sent events: ``status`` every second (STATUS with
                                  calls/s and CPU % worked out, and the calls/s of the
                                  last five minutes), ``log`` with new lines of the log
``POST /ui/delete`` ``{"name"}``  delete an object or an env (not ``default``)
``POST /ui/teardown``             shut the cluster down
================================  =====================================================

An object named ``ui`` is shadowed for ``GET /ui`` and these routes (its other methods, and
POST calls to it, still reach it).

The calls/s history is sampled while someone watches (each open page asks for STATUS once a
second; samples closer than that are shared), so a view opened later shows the minutes seen
since then, and gaps while nobody watched. The log is the daemon's (``$RHZMQ_HOME/local/
daemon.log``, what ``rhzmq logs`` reads: the daemon's and workers' own output, and output outside
calls; a call's prints go to its caller), read by following the file as it grows.
"""

from __future__ import annotations

import hmac
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from rhzmq.wire.exceptions import RhzmqError
from rhzmq.wire.protocol import Cmd, is_internal
from rhzmq.wire.websession import (
    SAFE_METHODS,
    SECURITY_HEADERS,
    SHARED_FILES,
    SHARED_STATIC,
    Sessions,
    csrf_ok,
    same_origin,
)

from ._codec import is_json

if TYPE_CHECKING:
    from ._app import Gateway

STATIC = Path(__file__).resolve().parent / "static"
#: The files served under ``/ui/static/``: name -> (media type, folder).
FILES = {
    "live.js": ("text/javascript", STATIC),
    **{name: (kind, SHARED_STATIC) for name, kind in SHARED_FILES.items()},
}
#: The calls/s history: one sample a second, five minutes of them.
SAMPLE_EVERY = 1.0
HISTORY = 300
#: How often the log file is looked at for new lines (nothing to wait on but it growing), and
#: how much of its end a newly opened page starts with.
LOG_POLL = 0.25
LOG_TAIL_BYTES = 16 * 1024
#: The largest body the live view's routes read (a name, a token).
MAX_BODY = 4096
#: How long teardown waits for the broker's answer before saying it has begun (the daemon stops
#: this gateway as part of it, so the answer may never come).
TEARDOWN_WAIT = 2.0


class LiveUI:
    """The live view's handlers, sessions and calls/s history for one gateway."""

    def __init__(self, gw: Gateway, token: str, log_file: Path | None) -> None:
        self.gw = gw
        self.token = token.encode()
        self.log_file = log_file
        self.sessions: Sessions[bool] = Sessions("rhzmq_ui")
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY)
        self._last: tuple[float, int] | None = None  # (time, calls_routed) of the last sample
        self._cpu: dict[int, tuple[float, float]] = {}  # pid -> (time, cpu seconds)

    # -- auth ---------------------------------------------------------------------------------

    def refusal(self, scope: Scope, bearer_ok: bool) -> Response | None:
        """None if a request under ``/ui`` may go on, else the answer that refuses it."""
        path, method = scope["path"], scope["method"]
        if method in ("GET", "HEAD") and (
            path == "/ui/signin" or (path.startswith("/ui/static/") and path[11:] in FILES)
        ):
            return None
        if path == "/ui/session" and method == "POST":
            return None  # the sign-in checks the token in its body
        if bearer_ok:
            return None
        session = self.sessions.get(scope)
        if session is None:
            if method in ("GET", "HEAD") and path == "/ui":
                return RedirectResponse("/ui/signin", 303)
            return _error(401, "Unauthorized", "sign in at /ui/signin, or send the bearer token")
        if method not in SAFE_METHODS and not csrf_ok(scope, session):
            return _error(
                403,
                "Forbidden",
                "a change made with the live view's session needs its CSRF token (X-CSRF-Token) "
                "and must come from this gateway's own pages",
            )
        return None

    # -- pages --------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "live.html", media_type="text/html", headers=SECURITY_HEADERS)

    async def sign_in_page(self, request: Request) -> Response:
        return FileResponse(
            STATIC / "signin.html", media_type="text/html", headers=SECURITY_HEADERS
        )

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            return _error(404, "NotFound", f"no file {name!r}")
        kind, folder = FILES[name]
        return FileResponse(folder / name, media_type=kind, headers=SECURITY_HEADERS)

    async def sign_in(self, request: Request) -> Response:
        if not same_origin(request.scope):
            return _error(403, "Forbidden", "sign in from this gateway's own sign-in page")
        try:
            body = await self._json(request)
        except Refused as exc:
            return exc.response
        token = body.get("token")
        # compare_digest: the time taken does not reveal how much of the token matched.
        if not isinstance(token, str) or not hmac.compare_digest(
            token.strip().encode(), self.token
        ):
            return _error(401, "Unauthorized", "that is not this gateway's token")
        session = self.sessions.create(True)
        response = JSONResponse({"csrf": session.csrf}, 201, headers={"Cache-Control": "no-store"})
        response.headers["Set-Cookie"] = self.sessions.set_cookie(request.scope, session, "/ui")
        return response

    async def session(self, request: Request) -> Response:
        session = self.sessions.get(request.scope)
        return JSONResponse(
            {"csrf": session.csrf if session is not None else None},
            headers={"Cache-Control": "no-store"},
        )

    async def sign_out(self, request: Request) -> Response:
        cleared = self.sessions.sign_out(request.scope, "/ui")
        return Response(status_code=204, headers={"Set-Cookie": cleared})

    # -- actions ------------------------------------------------------------------------------

    async def _json(self, request: Request) -> dict[str, Any]:
        """A small JSON object body (the page's); anything else raises :class:`Refused`."""
        if not is_json(request.headers.get("content-type", "")):
            raise Refused(415, "UnsupportedMediaType", "the live view's bodies are JSON")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise Refused(413, "PayloadTooLarge", f"at most {MAX_BODY} bytes here")
        try:
            value = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            raise Refused(400, "BadRequest", "the body is not valid JSON") from None
        if not isinstance(value, dict):
            raise Refused(400, "BadRequest", "the body must be a JSON object")
        return value

    async def delete(self, request: Request) -> Response:
        try:
            body = await self._json(request)
        except Refused as exc:
            return exc.response
        name = body.get("name")
        if not isinstance(name, str) or not name or is_internal(name):
            # The cluster's own machinery (node agents, the run keeper, cluster.run's runner)
            # is not the live view's to delete.
            return _error(422, "Invalid", "name an object or an env of this cluster")
        if name == "default":
            return _error(
                422,
                "Invalid",
                "the default worker cannot be deleted: it is where objects go without an env",
            )
        await self.gw.client().control(Cmd.DELETE, name, timeout=30)
        return JSONResponse({"deleted": name})

    async def teardown(self, request: Request) -> Response:
        with anyio.move_on_after(TEARDOWN_WAIT):
            await self.gw.client().control(Cmd.SHUTDOWN, timeout=30)
        return JSONResponse({"status": "shutting down"}, 202)

    # -- the stream ---------------------------------------------------------------------------

    def sample(self, status: dict[str, Any]) -> dict[str, Any]:
        """STATUS with calls/s and each worker's CPU % worked out; records the history."""
        now = time.time()
        routed = int(status.get("calls_routed") or 0)
        rate = None
        if self._last is not None and now - self._last[0] >= SAMPLE_EVERY * 0.9:
            dt = now - self._last[0]
            rate = max(0.0, (routed - self._last[1]) / dt)
            self.history.append((round(now, 3), round(rate, 2)))
            self._last = (now, routed)
        elif self._last is None:
            self._last = (now, routed)
        for w in status.get("workers", []):
            cpu, pid = w.get("cpu_seconds"), w.get("pid")
            w["cpu_percent"] = None
            if isinstance(cpu, (int, float)) and isinstance(pid, int):
                seen = self._cpu.get(pid)
                if seen is not None and now > seen[0]:
                    w["cpu_percent"] = round(max(0.0, (cpu - seen[1]) / (now - seen[0]) * 100), 1)
                self._cpu[pid] = (now, float(cpu))
        status["calls_per_second"] = self.history[-1][1] if self.history else 0.0
        status["history"] = list(self.history)
        return status

    async def events(self, request: Request) -> Response:
        return StreamingResponse(
            self._events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(self) -> AsyncIterator[bytes]:
        offset = None
        next_status = 0.0
        while True:
            now = time.monotonic()
            if now >= next_status:
                next_status = now + SAMPLE_EVERY
                try:
                    with anyio.fail_after(5):
                        status = await self.gw.client().control(Cmd.STATUS)
                    yield _event("status", self.sample(status))
                except (RhzmqError, TimeoutError) as exc:
                    yield _event("down", {"message": f"the broker does not answer: {exc}"})
            lines, offset = await anyio.to_thread.run_sync(self._read_log, offset)
            if lines:
                yield _event("log", {"lines": lines})
            await anyio.sleep(LOG_POLL)

    def _read_log(self, offset: int | None) -> tuple[list[str], int | None]:
        """New whole lines of the log since ``offset`` (None: its last few KiB)."""
        if self.log_file is None:
            return [], offset
        try:
            with open(self.log_file, "rb") as f:
                size = f.seek(0, 2)
                if offset is None or size < offset:  # first look, or the file was replaced
                    offset = max(0, size - LOG_TAIL_BYTES)
                    skip_partial = offset > 0
                else:
                    skip_partial = False
                f.seek(offset)
                data = f.read(size - offset)
        except OSError:
            return [], offset
        end = data.rfind(b"\n") + 1  # whole lines only: the rest comes with the next read
        text = data[:end].decode(errors="replace").splitlines()
        if skip_partial and text:
            text = text[1:]
        return text, offset + end

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ui", self.page, methods=["GET"]),
            Route("/ui/signin", self.sign_in_page, methods=["GET"]),
            Route("/ui/static/{name}", self.static, methods=["GET"]),
            Route("/ui/session", self.sign_in, methods=["POST"]),
            Route("/ui/session", self.session, methods=["GET"]),
            Route("/ui/session", self.sign_out, methods=["DELETE"]),
            Route("/ui/events", self.events, methods=["GET"]),
            Route("/ui/delete", self.delete, methods=["POST"]),
            Route("/ui/teardown", self.teardown, methods=["POST"]),
        ]


class Refused(Exception):
    """Ends a live-view request with a JSON error."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, type_, message)


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def _error(status: int, type_: str, message: str) -> Response:
    return JSONResponse({"error": {"type": type_, "message": message}}, status)
