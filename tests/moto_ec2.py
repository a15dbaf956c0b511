"""A moto server speaking EC2's API on a loopback port, for libcloud's own EC2 driver.

Run as ``python tests/moto_ec2.py PORT`` (the tests start it as a subprocess and stop it by PID):
moto's server (``moto[server]``, the same app as ``moto_server``), with one correction. moto
writes EC2 responses with the namespace of botocore's model, ``.../doc/2016-11-15``, while EC2
itself answers ``.../doc/2016-11-15/`` (with the slash), which is what libcloud's parser looks
for (without it every list comes back empty); and moto's errors carry a ``<Type>`` element after
``<Code>`` and ``<Message>``, which EC2's do not (libcloud's parser expects exactly those two).
The middleware makes both as EC2 sends them, nothing else.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_MOTO_NS = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"'
_EC2_NS = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'
_TYPE = re.compile(rb"<Type>(Sender|Receiver)</Type>")


def _app() -> Callable[..., Iterable[bytes]]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None

        body = _TYPE.sub(b"", b"".join(moto(environ, capture)).replace(_MOTO_NS, _EC2_NS))
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return app


def start(port: int) -> subprocess.Popen[bytes]:
    """Start the server on 127.0.0.1:``port`` and wait until it answers."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__)), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the moto server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the moto server did not start listening within 30 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", int(sys.argv[1]), _app(), threaded=True)
