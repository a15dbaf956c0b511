"""The ``rhzmq`` console script against its own daemon (separate RHZMQ_HOME), run as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_pid_gone

from rhzmq.wire import config as _config


def rhzmq(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("rhzmq")
    cmd = [exe] if exe else [sys.executable, "-m", "rhzmq"]
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_start_status_keys_logs_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert rhzmq(home, "status").returncode == 1
    started = rhzmq(home, "start", "--no-gateway")
    assert started.returncode == 0, started.stderr
    assert "local cluster up" in started.stderr
    state = (home / "local" / "daemon.json").read_text()
    pid = int(__import__("json").loads(state)["pid"])
    try:
        assert "already running" in rhzmq(home, "start", "--no-gateway").stdout
        status = rhzmq(home, "status")
        assert (
            status.returncode == 0
            and "worker   default" in status.stdout
            and "gateway  off" in status.stdout
        )
        assert rhzmq(home, "keys").stdout == ""
        logs = rhzmq(home, "logs", "-n", "200")
        assert "registered" in logs.stdout
        stopped = rhzmq(home, "stop")
        assert stopped.stdout.strip() == "stopped"
        assert wait_pid_gone(pid)
        assert not (home / "local" / "daemon.json").exists()
        assert rhzmq(home, "stop").stdout.strip() == "not running"
    finally:
        if _config.pid_alive(pid):
            os.kill(pid, 9)


def test_cli_reports_errors_plainly(tmp_path: Path) -> None:
    out = rhzmq(tmp_path / "empty", "keys")
    assert out.returncode == 1 and "is not running" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("module", ["broker", "worker", "den"])
def test_process_roles_have_entry_points(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "usage" in out.stdout
