"""A pytest plugin: a skipped test fails the run, with what to install named.

A suite that skips what the machine lacks (sshd, curl, Node) passes while leaving a product area
untested, which is how a fresh machine once "passed" with a third of the product never run.
"""

from __future__ import annotations

from typing import Any

import pytest

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped)} test(s) skipped; the suite runs whole or fails. Run "
            "`python tests/setup.py` to install what they need:",
            red=True,
        )
        for line in _skipped:
            terminalreporter.write_line(f"  {line}")
