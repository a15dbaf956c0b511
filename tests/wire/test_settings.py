"""Settings live in one module (rhzmq.wire.settings): every RHZMQ_* variable the code mentions is
listed there with what it does, and no other module hard-codes the default ports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from rhzmq.wire import settings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p
    for package in ("rhzmq", "broker", "worker", "gateway", "den", "rhzmqd")
    for p in (ROOT / package).rglob("*.py")
]


def test_every_environment_variable_is_documented() -> None:
    mentioned = set()
    for path in SOURCES:
        mentioned |= set(re.findall(r"\bRHZMQ_[A-Z_]+\b", path.read_text()))
    mentioned.discard("RHZMQ_HOME_PREFIX")  # a constant's name, not a variable
    assert len(mentioned) >= 8
    assert sorted(mentioned - set(settings.ENVIRONMENT)) == []
    assert sorted(set(settings.ENVIRONMENT) - mentioned) == []  # and none is listed for nothing


def test_ports_are_set_in_one_place() -> None:
    ports = {settings.DEFAULT_GATEWAY_PORT, settings.DEFAULT_SERVER_PORT, settings.DEFAULT_DEN_PORT}
    found = []
    for path in SOURCES:
        if path.name == "settings.py":
            continue
        found.extend(
            f"{path.relative_to(ROOT)}:{node.lineno}"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value in ports
        )
    assert found == []
