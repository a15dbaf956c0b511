"""The HTTP gateway: Runhouse-style ``/{name}/{method}`` routes onto the broker, for any language.

================================  =====================================================
route                             does
================================  =====================================================
``GET /health``                   200 when the broker answers (no auth, for probes)
``GET /keys`` ``GET /status``     object names; workers, objects, calls in flight
``GET /openapi.json``             OpenAPI 3.1 from the live objects' signatures/docs
``GET /{name}/openapi.json``      the same for one object
``POST /{name}``                  call a function object: ``{"args": [], "kwargs": {}}``
``POST /{name}/call``             the same (Runhouse's route; its body ``{"data": {"args",
                                  "kwargs"}}`` is accepted everywhere too)
``GET /{name}``                   describe the object (never calls it)
``POST /{name}/{method}``         call a method
``GET /{name}/{attribute}``       read a plain attribute (never calls a method)
``GET /ui`` and ``/ui/...``       the cluster's live view in a browser (``gateway._ui``)
================================  =====================================================

Query parameters ``timeout`` (seconds) and ``stream`` are options. Only POST calls, and only with
a JSON or msgpack body type: a web page can make a browser send a GET, or a POST of a form or of
``text/plain``, to any address without asking, but a JSON POST with a bearer token needs a CORS
preflight this gateway never grants (see docs/security.md). With
``Accept: application/x-ndjson`` or ``?stream=true`` (and always for generators) the answer is
NDJSON: one line per stdout/stderr chunk, log record and generator item as they happen, then one
``result`` or ``error`` line. ``Accept: application/msgpack`` gets msgpack bodies (bytes welcome).

Errors are ``{"error": {"type", "message", "traceback"?}}``: 400 bad body, 401/403 auth,
404 unknown name/method, 405, 406 result not representable, 413 body too large, 422 wrong
arguments, 500 remote exception (with the remote type and traceback), 503 worker died or broker
down, 504 timeout, 415 a POST body that is not JSON or msgpack, 408 a body that took too long.
A request never shows a traceback of the gateway itself.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rhzmq.wire.client import STREAM_CREDIT, Client, call_meta, get_client
from rhzmq.wire.curve import GATEWAY, client_keys
from rhzmq.wire.exceptions import (
    AccessDenied,
    AuthenticationError,
    CallCancelled,
    CallError,
    CallTimeout,
    ClusterError,
    ClusterNotRunning,
    Conflict,
    DataError,
    DataNotFound,
    DataPermissionError,
    EnvError,
    InvalidToken,
    LimitExceeded,
    NoCredentials,
    ObjectNotFound,
    PermissionDenied,
    ProtocolError,
    RegistryError,
    RegistryUnavailable,
    RemoteError,
    ResourceNotFound,
    RhzmqError,
    RunError,
    SecretError,
    SerializationError,
    StaleWrite,
    SyncCallInEventLoop,
    VersionMismatch,
    WorkerDiedError,
)
from rhzmq.wire.http import HostCheck, allowed_hosts, error_response
from rhzmq.wire.limits import Limits
from rhzmq.wire.protocol import (
    RH_DESCRIBE,
    RH_GETATTR,
    STATUS_ERRORS,
    Cmd,
    Partial,
    Status,
    is_internal,
)
from rhzmq.wire.serialization import dumps_call
from rhzmq.wire.settings import DESCRIBE_TTL, MAX_HTTP_BODY
from rhzmq.wire.version import __version__

from ._codec import (
    JSON,
    MSGPACK,
    NDJSON,
    BadRequest,
    NotPlainData,
    decode_plain,
    is_json,
    is_msgpack,
    parse_body,
    to_json,
)
from ._openapi import build_openapi
from ._ui import LiveUI

log = logging.getLogger("rhzmq.gateway")

MAX_BODY = MAX_HTTP_BODY

#: The HTTP status of every error rhzmq raises (the most specific class in an exception's MRO
#: wins), and so of every FINAL status through ``STATUS_ERRORS``. One table: request handlers,
#: NDJSON error lines and the tests all read it.
HTTP_STATUS: dict[type[BaseException], int] = {
    RhzmqError: 502,  # something between the gateway and the object went wrong
    ClusterError: 503,
    ClusterNotRunning: 503,
    AuthenticationError: 502,
    EnvError: 500,  # the object's environment could not be built: the server's side
    ProtocolError: 502,
    VersionMismatch: 502,
    SerializationError: 500,
    ObjectNotFound: 404,
    LimitExceeded: 429,
    PermissionDenied: 403,  # the broker refused the gateway's key this command
    CallError: 500,
    RemoteError: 500,  # the remote code raised (type and traceback in the body)
    WorkerDiedError: 503,
    CallTimeout: 504,
    CallCancelled: 503,
    RunError: 409,  # a run's name is taken by one still running, or it has no answer
    SecretError: 422,  # a secret could not be read or delivered
    DataError: 500,  # a data resource could not be used (server side, as called)
    DataNotFound: 404,
    NoCredentials: 500,
    DataPermissionError: 403,
    RegistryError: 502,  # the resource registry (Den) failed us
    RegistryUnavailable: 503,
    InvalidToken: 401,
    AccessDenied: 403,
    ResourceNotFound: 404,
    Conflict: 409,
    StaleWrite: 412,
    SyncCallInEventLoop: 500,
}


def http_status(exc: type[BaseException]) -> int:
    """The HTTP status of an exception class (its nearest mapped base)."""
    for cls in exc.__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 500


class HTTPError(Exception):
    """Ends a request with a JSON error body."""

    def __init__(self, status: int, type_: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        return error_response(self.status, self.type, self.message, **self.extra)


def _final_error(status: int, frames: list[bytes]) -> HTTPError:
    try:
        body = msgpack.unpackb(frames[0]) if frames else {}
    except Exception:
        body = {}
    type_ = str(body.get("type", Status(status).name))
    message = str(body.get("message", ""))
    extra: dict[str, Any] = {}
    if body.get("traceback"):
        extra["traceback"] = body["traceback"]
    code = http_status(STATUS_ERRORS.get(status, RhzmqError))
    if status == Status.REMOTE and body.get("args_error"):
        code = 422
    if status == Status.NOT_FOUND and body.get("matches"):
        extra["matches"] = body["matches"]
    return HTTPError(code, type_, message, **extra)


@dataclass(frozen=True, slots=True)
class CallHead:
    """The three headers a call reads, from one pass over the request's raw headers (the first
    of each wins, as Starlette's ``Headers.get``: the server lowercased the names)."""

    content_type: str = ""
    content_length: str | None = None
    accept: str = ""

    @classmethod
    def of(cls, scope: Scope) -> CallHead:
        found: dict[bytes, str] = {}
        for key, value in scope["headers"]:
            if key in _CALL_HEADERS and key not in found:
                found[key] = value.decode("latin-1")
        return cls(
            found.get(b"content-type", ""), found.get(b"content-length"), found.get(b"accept", "")
        )


_CALL_HEADERS = frozenset({b"content-type", b"content-length", b"accept"})
_JSON_BYTES = JSON.encode()
_MSGPACK_BYTES = MSGPACK.encode()


class Ready(Response):
    """A 200 with a body already encoded: Starlette's ``Response`` sent as is, with the two
    headers its ``init_headers`` would make (content-length, content-type), built directly."""

    def __init__(self, body: bytes, content_type: bytes) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", content_type),
        ]


class Gateway:
    """Request handlers; one instance per app, one broker client per event loop."""

    def __init__(self, broker: str, max_body: int = MAX_BODY, curve_dir: str | None = None) -> None:
        self.broker = broker
        # Its own key: the broker lets the gateway's role call objects only (rhzmq.wire.curve).
        self.curve = client_keys(Path(curve_dir), who=GATEWAY) if curve_dir else None
        self.max_body = max_body
        self.body_timeout = Limits.from_env().http_body_timeout
        self._describe_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._meta: dict[str, bytes] = {}

    def client(self) -> Client:
        return get_client(self.broker, self.curve)

    def meta(self, method: str) -> bytes:
        meta = self._meta.get(method)
        if meta is None:
            meta = self._meta[method] = call_meta(method, stream_logs=False)
        return meta

    # -- fixed routes --------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        try:
            await self.client().control(Cmd.PING, timeout=2.0)
        except RhzmqError as exc:
            return error_response(503, type(exc).__name__, f"the broker does not answer: {exc}")
        return JSONResponse({"status": "ok", "version": __version__})

    async def keys(self, request: Request) -> Response:
        return JSONResponse({"keys": await self.client().control(Cmd.KEYS)})

    async def status(self, request: Request) -> Response:
        return JSONResponse(await self.client().control(Cmd.STATUS))

    async def openapi(self, request: Request) -> Response:
        names = await self.client().control(Cmd.KEYS)
        infos = {}
        for name in names:
            try:
                infos[name] = await self.describe(name)
            except HTTPError:
                continue  # deleted meanwhile
        return JSONResponse(build_openapi(infos))

    async def object_openapi(self, request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse(build_openapi({name: await self.describe(name)}, fixed_routes=False))

    # -- calls ---------------------------------------------------------------------------------

    async def describe(self, name: str) -> dict[str, Any]:
        if is_internal(name):
            # The cluster's own machinery (node agents: spawn, shutdown; the built-in objects
            # that run commands, write files, keep runs), never reachable over HTTP.
            raise HTTPError(404, "ObjectNotFound", f"{name!r} is internal to the cluster")
        cached = self._describe_cache.get(name)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        status, frames = await self.client().call_raw(name.encode(), self.meta(RH_DESCRIBE), ())
        if status != Status.OK:
            raise _final_error(status, frames)
        info = decode_plain(frames)
        self._describe_cache[name] = (now + DESCRIBE_TTL, info)
        return info  # type: ignore[no-any-return]

    def cached_post_target(self, path: str) -> tuple[str, str, str] | None:
        """``(name, method, kind)`` a ``POST path`` calls, decided from a fresh describe-cache
        entry alone; None if that needs more (no entry, a refusal to explain, no such route)."""
        name, sep, method = path[1:].partition("/")
        if not name or "/" in method or (sep and not method):
            return None
        cached = self._describe_cache.get(name)
        if cached is None or cached[0] <= time.monotonic():
            return None
        target = post_target(cached[1], method if sep else None)
        return None if target is None else (name, *target)

    async def call_object(self, request: Request) -> Response:
        name = request.path_params["name"]
        info = await self.describe(name)
        if request.method in _READS:
            keys = ("type", "qualname", "doc", "signature", "methods", "attributes", "call")
            return self.respond(
                request.headers.get("accept", ""), {k: info[k] for k in keys if k in info}
            )
        target = post_target(info, None)
        if target is not None:
            return await self.invoke(request.scope, request.receive, name, *target)
        methods = ", ".join(sorted(info.get("methods", {}))) or "none"
        raise HTTPError(
            405,
            "MethodNotAllowed",
            f"{name!r} is a {info.get('qualname')} object, not callable; call one of its methods with POST /{name}/<method> (methods: {methods})",
        )

    async def call_method(self, request: Request) -> Response:
        name, method = request.path_params["name"], request.path_params["method"]
        info = await self.describe(name)
        methods: dict[str, str] = info.get("methods") or {}
        if info.get("type") == "function" and method == "call":
            # Runhouse's route for calling a function: POST /{name}/call. Runhouse also called
            # on GET with the query as string arguments; a GET here never calls (a web page
            # can make a browser send one: docs/security.md).
            if request.method in _READS:
                raise HTTPError(
                    405,
                    "MethodNotAllowed",
                    f"{name!r} is a function: call it with POST /{name}/call (or POST /{name}) "
                    'and a JSON body {"args": [...], "kwargs": {...}}; a GET never calls',
                )
            return await self.invoke(request.scope, request.receive, name, "", _function_kind(info))
        if info.get("type") == "function":
            raise HTTPError(
                404,
                "ObjectNotFound",
                f"{name!r} is a function: call it with POST /{name}, it has no method {method!r}",
            )
        kind = methods.get(method)
        if kind is not None:
            if request.method in _READS:
                raise HTTPError(
                    405,
                    "MethodNotAllowed",
                    f"{name}.{method} is a method: call it with POST /{name}/{method} and a JSON "
                    'body {"args": [...], "kwargs": {...}} (GET only reads attributes)',
                )
            return await self.invoke(request.scope, request.receive, name, method, kind)
        if request.method in _READS and not method.startswith("_"):
            status, frames = await self.client().call_raw(
                name.encode(),
                self.meta(RH_GETATTR),
                dumps_call([method], {}),
                timeout=self.timeout(request.scope),
            )
            if status == Status.OK:
                return self.respond(request.headers.get("accept", ""), _plain(frames))
            err = _final_error(status, frames)
            if err.type != "AttributeError":
                raise err
        raise HTTPError(
            404,
            "ObjectNotFound",
            f"{name!r} ({info.get('qualname')}) has no method or attribute {method!r}; methods: {', '.join(sorted(methods)) or 'none'}",
        )

    def timeout(self, scope: Scope) -> float | None:
        if not scope["query_string"]:
            return None  # the usual call: no query to parse
        raw = QueryParams(scope["query_string"]).get("timeout")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise HTTPError(
                400, "BadRequest", f"timeout must be a number of seconds, got {raw!r}"
            ) from None
        if not 0 < value <= 86400:
            raise HTTPError(
                400, "BadRequest", f"timeout must be between 0 and 86400 seconds, got {value}"
            )
        return value

    async def body(self, receive: Receive, head: CallHead) -> bytes:
        """The request body, checked: its type (415), size (413) and arrival time (408)."""
        if not (is_json(head.content_type) or is_msgpack(head.content_type)):
            raise HTTPError(
                415,
                "UnsupportedMediaType",
                f"a call's body must be JSON ('Content-Type: {JSON}') or msgpack "
                f"('Content-Type: {MSGPACK}'), got {head.content_type or 'no Content-Type'}: a "
                "browser sends forms and text/plain from any web page, so they call nothing",
            )
        length = head.content_length
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise HTTPError(
                413, "PayloadTooLarge", f"the body is {length} bytes; the limit is {self.max_body}"
            )
        chunks = []
        size = 0
        try:
            # asyncio's timeout, not anyio's cancel scope: this runs once per call, and the
            # scope's bookkeeping measured several times the cost (the gateway runs on uvloop).
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise ClientDisconnect()  # http.disconnect: as Request.stream() does
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        raise HTTPError(
                            413,
                            "PayloadTooLarge",
                            f"the body exceeds the {self.max_body}-byte limit",
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise HTTPError(
                408,
                "RequestTimeout",
                f"the body did not arrive within {self.body_timeout:g} s",
            ) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def invoke(
        self, scope: Scope, receive: Receive, name: str, method: str, kind: str
    ) -> Response:
        """Call ``name.method`` (``kind``: sync, async, gen, agen) with the request's body as
        its arguments: the one handler of both the routed path and :class:`FastCalls`."""
        timeout = self.timeout(scope)
        head = CallHead.of(scope)
        args, kwargs = parse_body(await self.body(receive, head), head.content_type)
        try:
            payload = dumps_call(args, kwargs)
        except RhzmqError as exc:
            raise HTTPError(400, "BadRequest", str(exc)) from None
        stream = (
            kind in ("gen", "agen")
            or NDJSON in head.accept
            or (
                bool(scope["query_string"])
                and QueryParams(scope["query_string"]).get("stream", "").lower()
                in ("1", "true", "yes")
            )
        )
        if stream:
            return StreamingResponse(self.ndjson(name, method, payload, timeout), media_type=NDJSON)
        status, frames = await self.client().call_raw(
            name.encode(), self.meta(method), payload, timeout=timeout
        )
        if status != Status.OK:
            raise _final_error(status, frames)
        return self.respond(head.accept, _plain(frames))

    def respond(self, accept: str, result: Any) -> Response:
        """``{"result": ...}`` as msgpack if ``accept`` asks for it, else JSON (406 if the
        result is not JSON's)."""
        if is_msgpack(accept):
            return Ready(msgpack.packb({"result": result}), _MSGPACK_BYTES)
        try:
            return Ready(b'{"result":' + to_json(result) + b"}", _JSON_BYTES)
        except NotPlainData as exc:
            raise HTTPError(
                406, "NotAcceptable", f"{exc}. Ask for msgpack with 'Accept: {MSGPACK}'."
            ) from None

    async def ndjson(
        self, name: str, method: str, payload: list[Any], timeout: float | None
    ) -> AsyncIterator[bytes]:
        # With output (streaming is what the caller asked for) and flow control: items leave the
        # worker only as fast as the HTTP client reads them.
        meta = call_meta(method, credit=STREAM_CREDIT)
        try:
            async for kind, data in self.client().events(
                name.encode(), meta, payload, timeout=timeout
            ):
                if kind == -1:
                    status, frames = data
                    if status == Status.OK:
                        yield _line({"type": "result", "data": decode_plain(frames)})
                    else:
                        err = _final_error(status, frames)
                        yield _line(
                            {
                                "type": "error",
                                "status": err.status,
                                "error": {"type": err.type, "message": err.message, **err.extra},
                            }
                        )
                elif kind == Partial.ITEM:
                    yield _line({"type": "item", "data": decode_plain(data)})
                elif kind == Partial.STDOUT or kind == Partial.STDERR:
                    yield _line(
                        {
                            "type": "stdout" if kind == Partial.STDOUT else "stderr",
                            "data": data[0].decode(errors="replace"),
                        }
                    )
                elif kind == Partial.LOG:
                    rec = msgpack.unpackb(data[0])
                    yield _line(
                        {
                            "type": "log",
                            "level": logging.getLevelName(rec.get("levelno", 20)),
                            "name": rec.get("name"),
                            "message": rec.get("msg"),
                        }
                    )
        except (NotPlainData, RhzmqError) as exc:
            code = 406 if isinstance(exc, NotPlainData) else http_status(type(exc))
            yield _line(
                {
                    "type": "error",
                    "status": code,
                    "error": {"type": type(exc).__name__, "message": str(exc)},
                }
            )


def _line(obj: dict[str, Any]) -> bytes:
    try:
        return to_json(obj) + b"\n"
    except NotPlainData as exc:
        return (
            to_json(
                {
                    "type": "error",
                    "status": 406,
                    "error": {"type": "NotAcceptable", "message": str(exc)},
                }
            )
            + b"\n"
        )


class BearerAuth:
    """Pure ASGI middleware: every route but /health needs ``Authorization: Bearer <token>``.

    The live view's routes under ``/ui`` (``gateway._ui``) also take its browser session, which
    opens nothing else: a call to an object always needs the token.
    """

    def __init__(
        self, app: ASGIApp, token: str, ui: LiveUI | None = None, ui_app: ASGIApp | None = None
    ) -> None:
        self.app = app
        self.token = token.encode()
        self.ui = ui
        # The live view is its own app: its routes are never tried for an object call.
        self.ui_app = ui_app or app

    def _bearer_ok(self, auth: bytes) -> bool:
        scheme, _, given = auth.partition(b" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"] == "/health" and scope["method"] == "GET"):
            return await self.app(scope, receive, send)
        auth = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                auth = value
                break
        path = scope["path"]
        if self.ui is not None and (path == "/ui" or path.startswith("/ui/")):
            refusal = self.ui.refusal(scope, bool(auth) and self._bearer_ok(auth))
            if refusal is None:
                return await self.ui_app(scope, receive, send)
            return await refusal(scope, receive, send)
        if not auth:
            response = error_response(
                401, "Unauthorized", "this gateway needs 'Authorization: Bearer <token>'"
            )
        else:
            if self._bearer_ok(auth):
                return await self.app(scope, receive, send)
            response = error_response(403, "Forbidden", "the bearer token is wrong")
        await response(scope, receive, send)


#: Methods that read: Starlette answers HEAD on every GET route, and a HEAD once ran the call a
#: POST makes. Only a POST calls.
_READS = frozenset({"GET", "HEAD"})


def _function_kind(info: dict[str, Any]) -> str:
    return str(info.get("call") or "sync")


def post_target(info: dict[str, Any], method: str | None) -> tuple[str, str] | None:
    """``(method, kind)`` a POST calls on the object ``info`` describes: ``method`` is None for
    ``POST /{name}``, else the path's second part. None when it calls nothing (the routed
    handlers say why: 404, 405)."""
    if info.get("type") == "function":
        return ("", _function_kind(info)) if method in (None, "call") else None
    if method is None:
        return ("__call__", str(info["call"])) if info.get("call") else None
    kind = (info.get("methods") or {}).get(method)
    return None if kind is None else (method, str(kind))


class FastCalls:
    """Pure ASGI: a ``POST`` without a query string that calls an object whose description is
    cached goes straight to :meth:`Gateway.invoke`, past Starlette's middleware stack and its
    seven routes (measured: ~20 % of the gateway's time per call went there). The same handler
    and the same error table as the routed path; anything else (GETs, options in the query, the
    first call of an object, a refusal to explain) takes the routed path."""

    def __init__(self, app: ASGIApp, gw: Gateway) -> None:
        self.app = app
        self.gw = gw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope["query_string"]:
            target = self.gw.cached_post_target(scope["path"])
            if target is not None:
                try:
                    response = await self.gw.invoke(scope, receive, *target)
                except Exception as exc:
                    response = await error_for(Request(scope, receive), exc)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _plain(frames: list[bytes]) -> Any:
    """A result as plain data, or a 406 (a pickled value: only a Python client could read it)."""
    try:
        return decode_plain(frames)
    except NotPlainData as exc:
        raise HTTPError(
            406,
            "NotAcceptable",
            f"{exc}; results over HTTP must be plain data (numbers, strings, lists, dicts, bytes with msgpack)",
        ) from None


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    return exc.response()


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error_response(400, "BadRequest", str(exc))


async def _rhzmq_error(request: Request, exc: Exception) -> Response:
    return error_response(http_status(type(exc)), type(exc).__name__, str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}"
        )
    return error_response(
        exc.status_code, "NotFound", f"no route {request.url.path}; see GET /openapi.json"
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client closed its connection before its body arrived: nobody reads this answer, and it
    # is no gateway error (it was logged as one, with a traceback).
    return error_response(
        400, "ClientDisconnect", "the connection closed before the request body arrived"
    )


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("gateway error on %s %s", request.method, request.url.path)
    return error_response(
        500, "GatewayError", "the gateway failed on this request; details are in the daemon log"
    )


# Errors become JSON at the edge, by type (the handler of the nearest class in the exception's
# MRO, as Starlette picks them); anything else is a gateway bug, logged, never shown to the caller.
HANDLERS: dict[Any, Any] = {
    HTTPException: _not_found,
    HTTPError: _http_error,
    BadRequest: _bad_request,
    ClientDisconnect: _client_gone,
    RhzmqError: _rhzmq_error,
    Exception: _crash,
}


async def error_for(request: Request, exc: Exception) -> Response:
    """The response :data:`HANDLERS` gives ``exc`` (FastCalls: the routed path's answer)."""
    for cls in type(exc).__mro__:
        handler = HANDLERS.get(cls)
        if handler is not None:
            return await handler(request, exc)  # type: ignore[no-any-return]
    return await _crash(request, exc)


def create_app(
    broker: str,
    *,
    token: str,
    hosts: frozenset[str] = allowed_hosts("127.0.0.1"),
    max_body: int = MAX_BODY,
    curve_dir: str | None = None,
    log_file: Path | None = None,
) -> ASGIApp:
    """The gateway's ASGI app for the broker at ``broker``: every route but ``GET /health``
    needs ``token``, and only requests for ``hosts`` get in. The live view at ``/ui`` tails
    ``log_file`` (the daemon's log)."""
    if not token:
        raise ValueError("the gateway needs a token (rhzmq makes one at the daemon's first start)")
    gw = Gateway(broker, max_body, curve_dir)
    ui = LiveUI(gw, token, log_file)
    routes = [
        Route("/health", gw.health, methods=["GET"]),
        Route("/keys", gw.keys, methods=["GET"]),
        Route("/status", gw.status, methods=["GET"]),
        Route("/openapi.json", gw.openapi, methods=["GET"]),
        Route("/{name}/openapi.json", gw.object_openapi, methods=["GET"]),
        Route("/{name}", gw.call_object, methods=["GET", "POST"]),
        Route("/{name}/{method}", gw.call_method, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers=HANDLERS)
    # /ui and /ui/... (BearerAuth sends them there): nine routes no object call should try first.
    ui_app = Starlette(routes=ui.routes(), exception_handlers=HANDLERS)
    return HostCheck(BearerAuth(FastCalls(app, gw), token, ui, ui_app), hosts)


__all__ = ["create_app"]
