"""Fixtures: a real local cluster (daemon, broker, worker processes) in a temporary RHZMQ_HOME.

A skipped test fails the run (the ``noskip`` plugin): every product area is tested on every
machine that runs the suite (``tests/setup.py`` installs what the tests start). So does a secret
value the tests use (``helpers.SECRET_VALUES``) found in any test's captured output or in any log
file the suite's processes wrote (issue 16: never log or print a secret).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import SECRET_VALUES, wait_pid_gone

import rhzmq as rh
from rhzmq.wire import config as _config

pytest_plugins = ["noskip"]


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def rhzmq_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("rhzmq-home")
    old = os.environ.get("RHZMQ_HOME")
    os.environ["RHZMQ_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("RHZMQ_HOME", None)
    else:
        os.environ["RHZMQ_HOME"] = old


@pytest.fixture(scope="session")
def cluster(rhzmq_home: Path) -> Iterator[rh.Cluster]:
    """One daemon for the session; stopped by PID at the end, and checked gone."""
    c = rh.cluster("local", gateway_port=0).up_if_not()
    state = _config.read_state()
    assert state is not None
    pid = int(state["pid"])
    yield c
    status = None
    try:
        status = c.status()
        c.teardown()
    finally:
        if _config.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        worker_pids = [w["pid"] for w in (status or {}).get("workers", [])]
        for wpid in worker_pids:
            if _config.pid_alive(wpid):
                os.kill(wpid, signal.SIGKILL)
    assert wait_pid_gone(pid), "daemon still running after teardown"
    assert all(wait_pid_gone(w) for w in worker_pids), "a worker outlived teardown"


_captured: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _captured.extend(text for _, text in report.sections)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test secret leaked into captured output or a log file."""
    texts = [("captured test output", t) for t in _captured]
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = factory.getbasetemp() if factory is not None else None
    if base is not None and base.exists():
        texts += [(str(p), p.read_text(errors="replace")) for p in base.rglob("*.log")]
    leaks = sorted(
        {
            f"{where}: {key}"
            for where, text in texts
            for key, v in SECRET_VALUES.items()
            if v in text
        }
    )
    if leaks:
        print("\nA test secret leaked into output or logs:\n  " + "\n  ".join(leaks))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
