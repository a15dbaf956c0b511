"""Running the registry: migrate the database, bind, announce, serve (uvicorn).

Readiness is a handshake, not a sleep: the listening socket is bound *before* uvicorn starts and
``READY <url>`` is printed on stdout only then (:mod:`rhzmq.wire.handshake`), so a starter that
reads that line can connect at once (tests, ``rhzmq den serve``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence

from rhzmq.wire import handshake
from rhzmq.wire.http import allowed_hosts, header_timeout_protocol
from rhzmq.wire.limits import Limits
from rhzmq.wire.settings import DEFAULT_DEN_PORT, HTTP_MAX_CONCURRENCY

from ._app import MAX_BODY, create_app
from ._db import Database, safe_url
from ._store import Store

log = logging.getLogger("den")

#: The registry's port unless told otherwise.
DEFAULT_PORT = DEFAULT_DEN_PORT


class ServeError(Exception):
    """The registry cannot start as asked (the message says why and what to change)."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"the registry cannot listen on {host}:{port}: {exc.strerror}. Pick another --port."
        ) from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(
    url: str,
    host: str,
    port: int,
    hosts: Sequence[str] = (),
    max_body: int | None = None,
    log_level: str = "info",
) -> None:
    import uvicorn

    db = Database(url)
    log.info("database %s: migrating to the newest schema", safe_url(url))
    db.migrate()
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    address = f"http://{'[' + host + ']' if ':' in host else host}:{actual}"
    app = create_app(Store(db), hosts=allowed_hosts(host, hosts), max_body=max_body or MAX_BODY)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=True,  # method, path and status: tokens travel only in headers, never here
        lifespan="off",
        timeout_graceful_shutdown=2,
        limit_concurrency=HTTP_MAX_CONCURRENCY,  # more connections get a 503 at once
        log_config=None,  # keep the root handler set up by __main__
        # Slow request heads are cut off, as on the gateway (RHZMQ_HTTP_HEADER_TIMEOUT).
        http=header_timeout_protocol(Limits.from_env().http_header_timeout),
    )
    server = uvicorn.Server(config)
    log.info("registry serving at %s", address)
    handshake.Announcer(sys.stdout.fileno()).ready(address)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stdout is the log from here
    try:
        await server.serve(sockets=[sock])
    finally:
        db.close()
