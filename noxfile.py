"""Developer sessions: ``nox -s tests lint typecheck demo perf fresh``.

``tests``, ``lint`` and ``typecheck`` install the pinned versions of ``requirements/lock.txt``
(what CI and the README's test command use); ``fresh`` installs the newest versions the
dependency ranges in ``pyproject.toml`` allow and runs the whole suite, so the next breaking
release of a dependency is found here, not by a user.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]

LOCK = "requirements/lock.txt"


def _install_locked(session: nox.Session) -> None:
    session.install("-r", LOCK)
    session.install("--no-deps", "-e", ".")


@nox.session
def tests(session: nox.Session) -> None:
    _install_locked(session)
    session.run("python", "tests/setup.py", "--system-only")
    session.run("pytest", *session.posargs)


@nox.session
def fresh(session: nox.Session) -> None:
    """The suite on the newest allowed versions of every dependency (no lock)."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test]")
    session.run("pip", "list", "--format=freeze")  # the versions this run saw, for the record
    session.run("python", "tests/setup.py", "--system-only")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    _install_locked(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install_locked(session)
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    session.install("-e", ".")
    session.run("python", "-m", "rhzmq.demo")


@nox.session
def perf(session: nox.Session) -> None:
    _install_locked(session)
    session.run("python", "-m", "perf", *session.posargs)
