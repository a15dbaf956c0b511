"""The registry's HTTP API: JSON routes over :class:`den._store.Store` (Starlette).

===========================================================  ==================================
route                                                        does
===========================================================  ==================================
``GET /health``                                              200 while the database answers
                                                             (no token needed)
``GET /openapi.json``                                        this API, OpenAPI 3.1 (no token)
``POST /users``                                              a server admin makes a user; the
                                                             answer holds their first token
``GET /users/me``                                            who the token is, and their groups
``POST /tokens`` ``GET /tokens`` ``DELETE /tokens/{id}``     your own tokens (an admin: anyone's,
                                                            ``GET /tokens?user=NAME``)
``POST /groups``                                             a group (``parent``: a subgroup)
``GET /groups/{group}`` ``PATCH /groups/{group}``            its members, subgroups, defaults
``PUT|DELETE /groups/{group}/members/{user}``                add (``role``) or remove a member
``GET /resources``                                           what you may read (``owner``,
                                                             ``type``, ``q``, ``shared=true``)
``PUT /resources/{owner}/{name}``                            save a version (``If-Match``)
``GET /resources/{owner}/{name}``                            the latest or ``?version=k``
``DELETE /resources/{owner}/{name}``                         delete it, every version
``GET /resources/{owner}/{name}/history``                    its versions, newest first
``POST /resources/{owner}/{name}/rollback``                  a new version equal to an old one
``GET|POST /resources/{owner}/{name}/shares``                who it is shared with; share it
``DELETE /resources/{owner}/{name}/shares/{principal}``      revoke a share
``GET /resources/{owner}/{name}/audit``                      who read and changed it, and when
``GET /users``                                               every user (server admins)
``GET /secrets``                                             secrets you may read: names,
                                                             providers, shares; never values
``POST|GET|DELETE /session``                                 the web UI's sign-in (den._ui)
===========================================================  ==================================

Every route but ``/health`` and ``/openapi.json`` needs ``Authorization: Bearer <token>`` (or
the web UI's session cookie, with its CSRF token on every change: :mod:`rhzmq.wire.websession`), and
only requests whose ``Host`` names this server get in (as the gateway's: DNS rebinding).
Lists take ``?limit=`` (default 50, at most 200) and ``?cursor=`` (the ``next_cursor`` of the
page before). Errors are ``{"error": {"type", "message", ...}}`` with the status from
:data:`HTTP_STATUS`; a request never shows a traceback of the server.

Routes are plain :class:`starlette.routing.Route` objects: :func:`create_app` takes more
(``routes=``), and :data:`PUBLIC` names the paths whose GET needs no token (:class:`TokenAuth`
checks every other request before it is routed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rhzmq.wire.http import HostCheck, allowed_hosts, error_response
from rhzmq.wire.version import __version__
from rhzmq.wire.websession import SAFE_METHODS, Sessions, csrf_ok, same_origin

from . import _ui
from ._auth import bearer
from ._errors import (
    BadRequest,
    Conflict,
    DenError,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    Unauthorized,
    UnsupportedMediaType,
)
from ._openapi import build_openapi
from ._store import Actor, Page, Store, whole

log = logging.getLogger("den.app")

T = TypeVar("T")

#: Largest request body: configs are small documents, not data.
MAX_BODY = 1024 * 1024
#: Deepest JSON nesting a body may have (deeper made Python's parser recurse to its limit).
MAX_DEPTH = 64
HTTP_BODY_TIMEOUT = 30.0

#: The HTTP status of every refusal (the class name is the error's ``type``). One table: the
#: handlers, the OpenAPI document and the tests read it.
HTTP_STATUS: dict[type[DenError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Invalid: 422,
    PreconditionRequired: 428,
}

#: Paths (GET only) that need no token.
PUBLIC = frozenset({"/health", "/openapi.json"})
#: The web UI's sign-in: a POST that carries the token in its body, so needs none before.
SIGN_IN = "/session"


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; BadRequest for anything that is not plain, storable JSON."""
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    _check_depth(value)
    try:
        # Numbers too large for a float ("1e999" reads as inf) and lone surrogates ("\ud800")
        # cannot be stored as JSON text: refuse them here rather than fail in the database.
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadRequest(f"the body holds a value JSON cannot store: {exc}") from None
    return value


class Den:
    """Request handlers; every store call runs in a worker thread (the database is blocking)."""

    def __init__(self, store: Store, max_body: int = MAX_BODY) -> None:
        self.store = store
        self.max_body = max_body
        self.limiter = anyio.CapacityLimiter(store.db.workers)
        self._openapi: bytes | None = None
        #: The web UI's signed-in browsers; each stands for the token it was made from, checked
        #: again on every request (a revoked token ends its sessions at once).
        self.sessions: Sessions[str] = Sessions("den_session")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self.limiter)

    async def authenticate(self, authorization: bytes | None) -> Actor:
        """The user whose token the ``Authorization`` header holds."""
        if authorization is None:
            raise Unauthorized("this registry needs 'Authorization: Bearer <token>'")
        token = bearer(authorization)
        if token is None:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        return await self.run(self.store.authenticate, token)

    async def authenticate_session(self, scope: Scope) -> Actor | None:
        """The user of the web UI session the request's cookie names, or None without one.
        A change (any method but GET/HEAD/OPTIONS) must carry the session's CSRF token and come
        from this server's own pages (Forbidden otherwise)."""
        session = self.sessions.get(scope)
        if session is None:
            return None
        if scope["method"] not in SAFE_METHODS and not csrf_ok(scope, session):
            raise Forbidden(
                "a change made with the web UI's session needs its CSRF token (X-CSRF-Token) "
                "and must come from this registry's own pages"
            )
        try:
            return await self.run(self.store.authenticate, session.subject)
        except Unauthorized:
            self.sessions.drop_subject(session.subject)
            raise

    async def body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object (``{}`` for an empty body)."""
        content_type = request.headers.get("content-type", "")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise PayloadTooLarge(f"the body is {length} bytes; the limit is {self.max_body}")
        chunks = []
        size = 0
        with anyio.move_on_after(HTTP_BODY_TIMEOUT) as scope:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise PayloadTooLarge(f"the body exceeds the {self.max_body}-byte limit")
                chunks.append(chunk)
        if scope.cancelled_caught:
            raise BadRequest(f"the body did not arrive within {HTTP_BODY_TIMEOUT:g} s")
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind != "application/json":
            raise UnsupportedMediaType(
                f"bodies are JSON ('Content-Type: application/json'), got {content_type or 'none'}"
            )
        value = parse_json(raw)
        if not isinstance(value, dict):
            raise Invalid("the body must be a JSON object")
        return value

    # -- public -------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        try:
            await self.run(self.store.health)
        except DBAPIError:
            return error_response(503, "DatabaseUnavailable", "the database does not answer")
        return JSONResponse(
            {"status": "ok", "version": __version__, "database": self.store.db.dialect}
        )

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = json.dumps(build_openapi(HTTP_STATUS)).encode()
        return Response(self._openapi, media_type="application/json")

    # -- users and tokens ---------------------------------------------------------------------

    async def create_user(self, request: Request) -> Response:
        actor = _actor(request)
        body = await self.body(request)
        name = _field(body, "name", str)
        admin = _field(body, "admin", bool, False)
        result = await self.run(self.store.create_user, actor, name, admin)
        return JSONResponse(result, 201)

    async def list_users(self, request: Request) -> Response:
        actor = _actor(request)
        return JSONResponse(await self.run(self.store.list_users, actor, _page(request)))

    async def list_secrets(self, request: Request) -> Response:
        actor = _actor(request)
        return JSONResponse(await self.run(self.store.list_secrets, actor, _page(request)))

    # -- the web UI's session -----------------------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        """Exchange a token for a session cookie (the web UI's sign-in form)."""
        if not same_origin(request.scope):
            raise Forbidden("sign in from this registry's own sign-in page")
        body = await self.body(request)
        token = _field(body, "token", str)
        actor = await self.run(self.store.authenticate, token.strip())
        session = self.sessions.create(token.strip())
        response = JSONResponse(
            {"name": actor.name, "admin": actor.is_admin, "csrf": session.csrf}, 201
        )
        response.headers["Set-Cookie"] = self.sessions.set_cookie(request.scope, session)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def session(self, request: Request) -> Response:
        """Who is signed in, and the CSRF token the page sends with every change."""
        actor = _actor(request)
        session = self.sessions.get(request.scope)
        return JSONResponse(
            {
                "name": actor.name,
                "admin": actor.is_admin,
                "csrf": session.csrf if session is not None else None,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def sign_out(self, request: Request) -> Response:
        cleared = self.sessions.sign_out(request.scope)
        return Response(status_code=204, headers={"Set-Cookie": cleared})

    async def me(self, request: Request) -> Response:
        actor = _actor(request)
        return JSONResponse(await self.run(self.store.me, actor))

    async def create_token(self, request: Request) -> Response:
        actor = _actor(request)
        body = await self.body(request)
        name = _field(body, "name", str, "token")
        return JSONResponse(await self.run(self.store.create_token, actor, name), 201)

    async def list_tokens(self, request: Request) -> Response:
        actor = _actor(request)
        user = request.query_params.get("user")
        return JSONResponse(await self.run(self.store.list_tokens, actor, _page(request), user))

    async def revoke_token(self, request: Request) -> Response:
        actor = _actor(request)
        raw = request.path_params["id"]
        if not whole(raw):
            raise BadRequest(f"a token id is a whole number, got {raw!r}")
        await self.run(self.store.revoke_token, actor, int(raw))
        return Response(status_code=204)

    # -- groups -------------------------------------------------------------------------------

    async def create_group(self, request: Request) -> Response:
        actor = _actor(request)
        body = await self.body(request)
        name = _field(body, "name", str)
        parent = _field(body, "parent", (str, type(None)), None)
        defaults = _field(body, "defaults", dict, {})
        return JSONResponse(
            await self.run(self.store.create_group, actor, name, parent, defaults), 201
        )

    async def get_group(self, request: Request) -> Response:
        actor = _actor(request)
        group = request.path_params["group"]
        return JSONResponse(await self.run(self.store.get_group, actor, group))

    async def patch_group(self, request: Request) -> Response:
        actor = _actor(request)
        body = await self.body(request)
        defaults = _field(body, "defaults", dict)
        group = request.path_params["group"]
        return JSONResponse(await self.run(self.store.set_defaults, actor, group, defaults))

    async def member(self, request: Request) -> Response:
        actor = _actor(request)
        group, user = request.path_params["group"], request.path_params["user"]
        if request.method == "DELETE":
            await self.run(self.store.remove_member, actor, group, user)
            return Response(status_code=204)
        body = await self.body(request)
        role = _field(body, "role", str, "member")
        return JSONResponse(await self.run(self.store.set_member, actor, group, user, role))

    # -- resources ----------------------------------------------------------------------------

    async def list_resources(self, request: Request) -> Response:
        actor = _actor(request)
        qp = request.query_params
        shared = qp.get("shared", "false").lower()
        if shared not in ("true", "false", "1", "0"):
            raise BadRequest("shared is true or false")
        result = await self.run(
            self.store.list_resources,
            actor,
            _page(request),
            qp.get("owner"),
            qp.get("type"),
            qp.get("q"),
            shared in ("true", "1"),
        )
        return JSONResponse(result)

    def _view(self, view: dict[str, Any], status: int = 200) -> Response:
        headers = {"ETag": view["etag"]}
        if status == 201:
            headers["Location"] = f"/resources{view['name']}"
        return JSONResponse(view, status, headers=headers)

    async def resource(self, request: Request) -> Response:
        actor = _actor(request)
        owner, name = request.path_params["owner"], request.path_params["name"]
        if request.method == "GET":
            version = _version(request.query_params.get("version"))
            redact = request.query_params.get("redact", "false").lower()
            if redact not in ("true", "false", "1", "0"):
                raise BadRequest("redact is true or false")
            view = await self.run(
                self.store.get, actor, owner, name, version, redact in ("true", "1")
            )
            inm = request.headers.get("if-none-match")
            if inm is not None and version is None and view["etag"] in _tags(inm):
                return Response(status_code=304, headers={"ETag": view["etag"]})
            return self._view(view)
        if request.method == "DELETE":
            if_match = request.headers.get("if-match")
            await self.run(self.store.delete, actor, owner, name, if_match)
            return Response(status_code=204)
        body = await self.body(request)
        for key in body:
            if key not in ("type", "config", "lineage"):
                raise Invalid(f"unknown field {key!r}: a save takes type, config and lineage")
        view, created = await self.run(
            self.store.save,
            actor,
            owner,
            name,
            body.get("type"),
            body.get("config"),
            body.get("lineage"),
            request.headers.get("if-match"),
            request.headers.get("if-none-match"),
        )
        return self._view(view, 201 if created else 200)

    async def history(self, request: Request) -> Response:
        actor = _actor(request)
        owner, name = request.path_params["owner"], request.path_params["name"]
        return JSONResponse(await self.run(self.store.history, actor, owner, name, _page(request)))

    async def rollback(self, request: Request) -> Response:
        actor = _actor(request)
        owner, name = request.path_params["owner"], request.path_params["name"]
        body = await self.body(request)
        version = body.get("version")
        view = await self.run(
            self.store.rollback, actor, owner, name, version, request.headers.get("if-match")
        )
        return self._view(view)

    async def shares(self, request: Request) -> Response:
        actor = _actor(request)
        owner, name = request.path_params["owner"], request.path_params["name"]
        if request.method == "GET":
            return JSONResponse(
                {"shares": await self.run(self.store.shared_with, actor, owner, name)}
            )
        body = await self.body(request)
        principals = body.get("principals")
        access = body.get("access_level", "read")
        result = await self.run(self.store.share, actor, owner, name, principals, access)
        return JSONResponse({"shares": result})

    async def unshare(self, request: Request) -> Response:
        actor = _actor(request)
        p = request.path_params
        await self.run(self.store.revoke, actor, p["owner"], p["name"], p["principal"])
        return Response(status_code=204)

    async def audit(self, request: Request) -> Response:
        actor = _actor(request)
        owner, name = request.path_params["owner"], request.path_params["name"]
        return JSONResponse(await self.run(self.store.audit, actor, owner, name, _page(request)))

    def routes(self) -> list[BaseRoute]:
        res = "/resources/{owner}/{name}"
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/users", self.create_user, methods=["POST"]),
            Route("/users", self.list_users, methods=["GET"]),
            Route("/secrets", self.list_secrets, methods=["GET"]),
            Route(SIGN_IN, self.sign_in, methods=["POST"]),
            Route(SIGN_IN, self.session, methods=["GET"]),
            Route(SIGN_IN, self.sign_out, methods=["DELETE"]),
            Route("/users/me", self.me, methods=["GET"]),
            Route("/tokens", self.create_token, methods=["POST"]),
            Route("/tokens", self.list_tokens, methods=["GET"]),
            Route("/tokens/{id}", self.revoke_token, methods=["DELETE"]),
            Route("/groups", self.create_group, methods=["POST"]),
            Route("/groups/{group}", self.get_group, methods=["GET"]),
            Route("/groups/{group}", self.patch_group, methods=["PATCH"]),
            Route("/groups/{group}/members/{user}", self.member, methods=["PUT", "DELETE"]),
            Route("/resources", self.list_resources, methods=["GET"]),
            Route(res, self.resource, methods=["GET", "PUT", "DELETE"]),
            Route(res + "/history", self.history, methods=["GET"]),
            Route(res + "/rollback", self.rollback, methods=["POST"]),
            Route(res + "/shares", self.shares, methods=["GET", "POST"]),
            Route(res + "/shares/{principal}", self.unshare, methods=["DELETE"]),
            Route(res + "/audit", self.audit, methods=["GET"]),
        ]


def _actor(request: Request) -> Actor:
    actor = request.state.actor
    assert isinstance(actor, Actor)
    return actor


def _field(body: dict[str, Any], key: str, kind: Any, default: Any = ...) -> Any:
    if key not in body:
        if default is ...:
            raise Invalid(f"the body needs {key!r}")
        return default
    value = body[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = {str: "a string", bool: "true or false", dict: "an object"}
        want = (
            names.get(kind, "a string or null")
            if not isinstance(kind, tuple)
            else "a string or null"
        )
        raise Invalid(f"{key!r} must be {want}")
    return value


def _page(request: Request) -> Page:
    return Page.parse(request.query_params.get("limit"), request.query_params.get("cursor"))


def _version(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not whole(raw, least=1):
        raise BadRequest(f"version is a whole number >= 1, got {raw!r}")
    return int(raw)


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",")]


class TokenAuth:
    """Pure ASGI middleware: every request but a GET of a :data:`PUBLIC` path needs a valid
    token, checked before routing (so an anonymous caller learns nothing, not even which routes
    exist). The request's :class:`~den._store.Actor` is ``request.state.actor``.

    A browser of the web UI (``den._ui``) signs in once (``POST /session`` with a token) and then
    sends a session cookie instead, with the CSRF token on every change
    (:meth:`Den.authenticate_session`). The UI's own public paths (its sign-in page and static
    files) are ``ui_public``; an anonymous GET of a page in ``ui_pages`` is sent to sign in.
    """

    def __init__(
        self,
        app: ASGIApp,
        den: Den,
        public: frozenset[str],
        ui_public: Callable[[str], bool] = lambda path: False,
        ui_pages: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.den = den
        self.public = public
        self.ui_public = ui_public
        self.ui_pages = ui_pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if (method in ("GET", "HEAD") and (path in self.public or self.ui_public(path))) or (
            path == SIGN_IN and method == "POST"
        ):
            return await self.app(scope, receive, send)
        authorization = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
                break
        try:
            if authorization is None:
                actor = await self.den.authenticate_session(scope)
                if actor is None:
                    if method in ("GET", "HEAD") and path in self.ui_pages:
                        response: Response = RedirectResponse("/signin", 303)
                        return await response(scope, receive, send)
                    actor = await self.den.authenticate(None)
            else:
                actor = await self.den.authenticate(authorization)
        except DenError as exc:
            response = _error(exc)
        except OperationalError:
            response = error_response(
                503, "DatabaseUnavailable", "the registry's database does not answer; try again"
            )
        else:
            scope.setdefault("state", {})["actor"] = actor
            return await self.app(scope, receive, send)
        await response(scope, receive, send)


def _error(exc: DenError) -> Response:
    status = next((HTTP_STATUS[c] for c in type(exc).__mro__ if c in HTTP_STATUS), 400)
    return error_response(status, type(exc).__name__, exc.message, **exc.extra)


async def _den_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DenError)
    return _error(exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}"
        )
    return error_response(
        exc.status_code, "NotFound", f"no route {request.url.path}; see GET /openapi.json"
    )


async def _database_down(request: Request, exc: Exception) -> Response:
    log.error("database error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(
        503, "DatabaseUnavailable", "the registry's database does not answer; try again"
    )


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("den error on %s %s", request.method, request.url.path)
    return error_response(
        500, "ServerError", "the registry failed on this request; details are in its log"
    )


def create_app(
    store: Store,
    *,
    hosts: frozenset[str] = allowed_hosts("127.0.0.1"),
    max_body: int = MAX_BODY,
    routes: Sequence[BaseRoute] = (),
    public: frozenset[str] = PUBLIC,
    ui: bool = True,
) -> ASGIApp:
    """The registry's ASGI app over ``store``: the routes above, the web UI's pages (unless
    ``ui`` is false: ``den._ui``), then ``routes`` (more pages or APIs: their handlers find the
    :class:`Den` at ``request.app.state.den`` and the caller at ``request.state.actor``); every
    path needs a token but GETs of ``public`` ones."""
    den = Den(store, max_body)
    app = Starlette(
        routes=[*den.routes(), *(_ui.routes() if ui else ()), *routes],
        exception_handlers={
            HTTPException: _http_exception,
            DenError: _den_error,
            OperationalError: _database_down,
            Exception: _crash,
        },
    )
    app.state.den = den
    if ui:
        auth = TokenAuth(app, den, public, _ui.is_public, _ui.PAGES)
    else:
        auth = TokenAuth(app, den, public)
    return HostCheck(auth, hosts, "registry")


__all__ = ["HTTP_STATUS", "PUBLIC", "Den", "create_app"]
