"""The layering rule, enforced (issue 12): imports run one way.

    rhzmq (library: API, clients, resources, clusters) ──┐
                                                         ├──> rhzmq.wire (shared layer)
    broker, worker, gateway, den (servers) ──────────────┘
    rhzmqd (the daemon) ──> servers and rhzmq.wire

The library never imports a server or the daemon (it starts the daemon as a process), the
shared layer imports nothing outside itself, a server imports no other server and nothing of
the library but the shared layer, and no two modules import each other, directly or round a
circle. Imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rhzmq", "broker", "worker", "gateway", "den", "rhzmqd")
SERVERS = ("broker", "worker", "gateway", "den")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of our packages that ``name`` imports at run time."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()

    def resolve(target: str) -> None:
        while target and target not in modules:
            target = target.rpartition(".")[0]  # `from pkg.mod import name`: the module
        if target and target != name:
            out.add(target)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    resolve(alias.name)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)] if child.level > 1 else base
                    stem = ".".join(base + ([child.module] if child.module else []))
                else:
                    stem = child.module or ""
                for alias in child.names:
                    full = f"{stem}.{alias.name}"
                    resolve(full if full in modules else stem)
            visit(child)

    visit(ast.parse(path.read_text()))
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> str:
    if module == "rhzmq.wire" or module.startswith("rhzmq.wire."):
        return "wire"
    return module.split(".")[0]


def test_imports_run_one_way() -> None:
    broken = []
    for module, imported in _graph().items():
        layer = _layer(module)
        for target in imported:
            other = _layer(target)
            if layer == "wire":
                ok = other == "wire"
            elif layer == "rhzmq":
                ok = other in ("rhzmq", "wire")
            elif layer in SERVERS:
                ok = other in (layer, "wire")
            else:  # rhzmqd
                ok = other in ("rhzmqd", "wire", *SERVERS)
            if not ok:
                broken.append(f"{module} ({layer}) imports {target} ({other})")
    assert broken == [], "\n".join(sorted(broken))


def test_no_import_circles() -> None:
    graph = _graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_the_checker_sees_imports() -> None:
    """The rules above would pass vacuously if the parser missed imports."""
    graph = _graph()
    assert "rhzmq.wire.protocol" in graph["broker._broker"]
    assert "broker._broker" in graph["rhzmqd.daemon"] or "broker" in graph["rhzmqd.daemon"]
    assert "rhzmq.wire.client" in graph["gateway._app"]
    assert "den._store" in graph["den._app"] and "rhzmq.wire.handshake" in graph["den._serve"]
