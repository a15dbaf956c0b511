"""Running the gateway: ``python -m gateway`` and the daemon's child process.

Readiness is a handshake, not a sleep: the listening socket is bound *before* uvicorn starts, so
a connection made after ``READY <url>`` is printed waits in the backlog and is served.
"""

from __future__ import annotations

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

    from rhzmq.wire.http import allowed_hosts, header_timeout_protocol

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
