"""Real OpenSSH servers on loopback addresses, each standing in for a separate machine.

Every "host" is an ``sshd`` listening on its own address (127.0.0.2, 127.0.0.3, ...) on one shared
port, with its own host key and its own ``HOME`` (set by sshd's ``SetEnv``), so rhzmq's remote
state (``~/.rhzmq``) is separate per host exactly as on real machines. One client key, generated
here, is authorized on all of them; the client's ``known_hosts`` lists their host keys, so host-key
checking stays on as it would for a user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
if not Path(SSHD).exists():
    raise RuntimeError(
        "OpenSSH's sshd is not installed, and the SSH-cluster tests start real ones: run "
        "`python tests/setup.py` (installs it as root) or `sudo apt-get install openssh-server`"
    )


@dataclass
class Host:
    address: str
    home: Path
    proc: subprocess.Popen[bytes]


@dataclass
class SSHHosts:
    root: Path
    port: int
    key: Path
    known_hosts: Path
    hosts: list[Host]

    @property
    def addresses(self) -> list[str]:
        return [h.address for h in self.hosts]

    def creds(self) -> dict[str, object]:
        return {
            "user": os.environ.get("USER") or "root",
            "key": str(self.key),
            "port": self.port,
            "known_hosts": str(self.known_hosts),
        }

    def stop(self) -> None:
        for h in self.hosts:
            if h.proc.poll() is None:
                h.proc.send_signal(signal.SIGTERM)
        for h in self.hosts:
            try:
                h.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                h.proc.kill()
                h.proc.wait()


def free_port(addresses: list[str]) -> int:
    """A port free on every address (each sshd binds the same port on its own address)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = int(s.getsockname()[1])
        try:
            for a in addresses[1:]:
                with socket.socket() as s:
                    s.bind((a, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no common free port")


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd on {address} exited with {proc.returncode}")
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on {address}:{port} did not start listening")


def start_hosts(
    root: Path,
    count: int,
    paths: dict[int, str] | None = None,
    env: dict[int, dict[str, str]] | None = None,
) -> SSHHosts:
    """Start ``count`` sshd instances on 127.0.0.2... with keys and homes under ``root``;
    ``paths`` overrides the shell's PATH of some hosts (e.g. one without any Python), ``env``
    sets more variables in some hosts' sessions (sshd's ``SetEnv``, e.g. ``RHZMQ_HOME``)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    key = root / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = root / "authorized_keys"
    shutil.copy(key.with_suffix(".pub"), authorized)
    os.chmod(authorized, 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    addresses = [f"127.0.0.{i + 2}" for i in range(count)]
    port = free_port(addresses)
    # The hosts' PATH puts this interpreter's directory first: "the host has Python 3.11+".
    path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    known: list[str] = []
    hosts: list[Host] = []
    for i, address in enumerate(addresses):
        node = root / f"node{i}"
        home = node / "home"
        home.mkdir(parents=True)
        host_key = node / "host_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True
        )
        public = host_key.with_suffix(".pub").read_text().split()
        known.append(f"[{address}]:{port} {public[0]} {public[1]}")
        config = node / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {address}:{port}",
                    f"HostKey {host_key}",
                    f"PidFile {node / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "AllowTcpForwarding yes",
                    "Subsystem sftp internal-sftp",
                    " ".join(
                        [
                            f"SetEnv HOME={home} PATH={(paths or {}).get(i, path)}",
                            *(f"{k}={v}" for k, v in (env or {}).get(i, {}).items()),
                        ]
                    ),
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        with open(node / "sshd.log", "wb") as log:  # sshd keeps its own copy of the fd
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        hosts.append(Host(address, home, proc))
    known_hosts = root / "known_hosts"
    known_hosts.write_text("\n".join(known) + "\n")
    for h in hosts:
        _wait_listening(h.address, port, h.proc)
    return SSHHosts(root, port, key, known_hosts, hosts)


# Roles of the hosts the SSH-cluster tests start (tests/clusters/conftest.py).
MAIN = [0, 1, 2]
SOLO = 3
NO_PYTHON = 4
TUNNEL_NODE = 5
OWN_HOME = 6


def processes_under(home: Path) -> list[str]:
    """Command lines of processes running from a host's home (its venv's Python)."""
    out = subprocess.run(["pgrep", "-af", str(home)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def wait_no_processes(home: Path, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_under(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
