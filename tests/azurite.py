"""A real Azure Blob Storage server for tests: Azurite (Microsoft's emulator, installed by
``tests/setup.py`` from ``tests/node/package-lock.json``), on a free loopback port, stopped by PID.

It knows one account, Azurite's well-known development account (public, documented by Microsoft):
reached through libcloud's own Azure Blobs driver at a custom host, which then puts the account
in the path (``http://127.0.0.1:PORT/devstoreaccount1/container/blob``) as Azurite expects.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import rhzmq as rh

BIN = Path(__file__).resolve().parent / "node" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    url: str
    proc: subprocess.Popen[bytes]

    def store(self) -> rh.ObjectStore:
        return rh.object_store("azure", endpoint_url=self.url)

    def connection_string(self) -> str:
        """What the Azure tools read from AZURE_STORAGE_CONNECTION_STRING."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.url}/{ACCOUNT};"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_azurite(workdir: Path) -> Azurite:
    if not BIN.exists():
        raise RuntimeError(f"{BIN} is missing: run `python tests/setup.py` (it runs npm ci)")
    port = _free_port()
    log = workdir / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                str(workdir),
                "--silent",
                "--skipApiVersionCheck",  # pyarrow's Azure SDK may speak a newer API version
            ],
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Azurite(f"http://127.0.0.1:{port}", proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError("azurite did not start listening")


def stop_azurite(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (Azurite's own Ctrl-C shutdown: SIGTERM waits ~10 s for idle keep-alive
    connections), then SIGKILL if it still runs after 1 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
