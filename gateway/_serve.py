"""Running the gateway: ``python -m gateway`` and the daemon's child process.

Readiness is a handshake, not a sleep: the listening socket is bound *before* uvicorn starts, so
a connection made after ``READY <url>`` is printed waits in the backlog and is served.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import anyio

from rhzmq.wire import config as _config
from rhzmq.wire import handshake
from rhzmq.wire.exceptions import ClusterError
from rhzmq.wire.limits import Limits
from rhzmq.wire.net import is_loopback
from rhzmq.wire.settings import HTTP_MAX_CONCURRENCY


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the gateway beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ClusterError(
            f"refusing to serve HTTP on {host} without a token: anyone who reaches it could run "
            "code on the cluster. Set one with the RHZMQ_TOKEN environment variable "
            "or `rhzmq start --token-file FILE`, or bind to 127.0.0.1."
        )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ClusterError(
            f"the HTTP gateway cannot listen on {host}:{port}: {exc.strerror}. Pick another port "
            "with --gateway-port, or start without it (--no-gateway)."
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head is not complete within
    ``seconds`` (RHZMQ_HTTP_HEADER_TIMEOUT) (uvicorn has no such limit: a client sending a header byte now
    and then, or nothing at all, held its connection forever, and the connection cap let 256 of
    them shut everyone else out)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._arm()  # a request head under way: it has until the timer
            elif self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._expired)

        def _expired(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


async def serve(
    broker: str,
    host: str,
    port: int,
    token: str | None,
    max_body: int | None = None,
    curve_dir: str | None = None,
    hosts: Sequence[str] = (),
    log_file: Path | None = None,
) -> None:
    import uvicorn

    from rhzmq.wire.http import allowed_hosts

    from ._app import MAX_BODY, create_app

    check_bind(host, token)
    if not token:
        raise ClusterError(
            "the gateway needs a bearer token, even on loopback (a web page in your browser can "
            "reach loopback): set RHZMQ_TOKEN"
        )
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{actual}"
    app = create_app(
        broker,
        token=token,
        hosts=allowed_hosts(host, hosts),
        max_body=max_body or MAX_BODY,
        curve_dir=curve_dir,
        log_file=log_file if log_file is not None else _config.log_file(),
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        limit_concurrency=HTTP_MAX_CONCURRENCY,  # more connections get a 503 at once
        http=header_timeout_protocol(Limits.from_env().http_header_timeout),
    )
    server = uvicorn.Server(config)
    handshake.Announcer(sys.stdout.fileno()).ready(url)
    # Nothing else goes to stdout: the daemon stops reading that pipe after READY (the
    # announcement closed it; stdout is the log from here).
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    await server.serve(sockets=[sock])


async def start_gateway_process(
    broker: str,
    host: str,
    port: int,
    token: str | None,
    log_file: IO[Any] | None = None,
    curve_dir: str | None = None,
) -> tuple[Any, str]:
    """Start ``python -m gateway`` and wait for its READY line; returns (process, url)."""
    check_bind(host, token)
    env = dict(os.environ)
    if token:
        env["RHZMQ_TOKEN"] = token  # the environment, not argv: argv is visible in `ps`
    proc = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "gateway",
            "--broker",
            broker,
            "--host",
            host,
            "--port",
            str(port),
            *(["--curve-dir", curve_dir] if curve_dir else []),
        ],
        stdout=-1,
        stderr=log_file,
        env=env,
    )
    assert proc.stdout is not None
    with anyio.fail_after(60):
        line = await handshake.read_ready(proc.stdout)
    if line is None:
        await proc.wait()
        raise ClusterError(
            f"the HTTP gateway did not start (exit code {proc.returncode}); see the daemon log"
        )
    return proc, line.text
