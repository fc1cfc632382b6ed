"""No import cycles in edgegw: between modules none at all, between packages only the
documented ones.

Every import counts: at module level, under ``TYPE_CHECKING`` and inside functions. An import
hidden from the interpreter still ties two parts together (the daemon ↔ control ↔ commission
cycle was held together by ``TYPE_CHECKING`` and a function-level import). A package unit is
a first-level package (``edgegw.control``) or module (``edgegw.daemon``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import edgegw

ROOT = Path(edgegw.__file__).parent

ALLOWED_MODULE_EDGES: dict[tuple[str, str], str] = {
    ("edgegw.cli.doctor", "edgegw.cli.main"): (
        "doctor runs the checks of `edgegw config check` (cli.main's _every_problem and "
        "reference_checks), imported inside its function; they belong in a module both import"
    ),
}
"""Module imports allowed to close a cycle: ``(importer, imported) -> why``."""

ALLOWED_PACKAGE_EDGES: dict[tuple[str, str], str] = {
    ("edgegw.config", "edgegw.telemetry"): (
        "config.sections takes the [mqtt] section's model (MqttConfig) from "
        "telemetry.settings; everything else of telemetry sits above config"
    ),
}
"""Package imports left out of the package graph: ``(importer, imported) -> why``."""

CORE: frozenset[str] = frozenset(
    f"edgegw.{name}"
    for name in (
        "auth",
        "config",
        "energy",
        "hardware_catalogue",
        "live",
        "livestate",
        "ocpp",
        "proxy",
        "security",
        "store",
    )
)

ALLOWED_TANGLES: dict[frozenset[str], str] = {
    CORE: (
        "the core packages import one another's modules (auth.idtags and config are read "
        "everywhere, the store keeps the rows auth and energy read, proxy.hooks is what the "
        "event hub implements); their modules form no cycle (the module test), and nothing "
        "of the application layer (daemon, control, services, commission, telemetry, cli, "
        "tui) is imported by them"
    ),
    frozenset({"edgegw.cli", "edgegw.tui"}): (
        "the TUI formats with the CLI's output helpers (cli/output.py) and the CLI's `tui` "
        "command starts it"
    ),
}
"""Package cycles allowed, as the set of packages they stay within, with the reason."""

Graph = Mapping[str, Mapping[str, list[str]]]


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every module ``path`` (a file of the package at ``root``) imports, anywhere in it."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            # ``from edgegw.x import y`` may name a module y as well as a name in x.
            yield from (f"{target}.{alias.name}" for alias in node.names)


def module_graph(root: Path = ROOT) -> dict[str, dict[str, list[str]]]:
    """module -> imported module of edgegw -> [the importer] (one shape with the packages)."""
    paths = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, dict[str, list[str]]] = {}
    for module, path in paths.items():
        edges = graph.setdefault(module, {})
        for imported in _imports(path, root):
            if imported in paths and imported not in (module, root.name):
                edges.setdefault(imported, [module])
    return graph


def package_graph(modules: Graph) -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> the modules that import it."""
    graph: dict[str, dict[str, list[str]]] = {}
    for module, imported in modules.items():
        source = _unit(module)
        if source is None:
            continue
        edges = graph.setdefault(source, {})
        for target in map(_unit, imported):
            if target is not None and target != source:
                edges.setdefault(target, []).append(module)
    return graph


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return None if len(parts) < 2 else ".".join(parts[:2])


def without(graph: Graph, edges: Mapping[tuple[str, str], str]) -> dict[str, dict[str, list[str]]]:
    return {
        source: {target: via for target, via in out.items() if (source, target) not in edges}
        for source, out in graph.items()
    }


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _describe(graph: Graph, component: list[str]) -> str:
    members = set(component)
    edges = [
        f"  {source} -> {target} (in {', '.join(sorted(set(graph[source][target])))})"
        for source in component
        for target in graph.get(source, {})
        if target in members
    ]
    return " <-> ".join(component) + ":\n" + "\n".join(edges)


@pytest.fixture(scope="module")
def modules() -> dict[str, dict[str, list[str]]]:
    return module_graph()


def test_no_module_imports_itself_back(modules: Graph) -> None:
    graph = without(modules, ALLOWED_MODULE_EDGES)
    found = [_describe(graph, c) for c in cycles(graph)]
    assert not found, "import cycles between modules:\n" + "\n".join(found)


def test_packages_import_each_other_only_in_the_documented_tangles(modules: Graph) -> None:
    graph = without(package_graph(modules), ALLOWED_PACKAGE_EDGES)
    found = [
        _describe(graph, c)
        for c in cycles(graph)
        if not any(set(c) <= tangle for tangle in ALLOWED_TANGLES)
    ]
    assert not found, "import cycles between packages:\n" + "\n".join(found)


def test_the_application_layer_is_not_imported_by_the_core(modules: Graph) -> None:
    graph = package_graph(modules)
    layer = {"daemon", "control", "services", "commission", "cli", "tui"}
    upward = [
        f"{source} -> {target}"
        for source in sorted(CORE)
        for target in graph.get(source, {})
        if target.removeprefix("edgegw.") in layer
    ]
    assert not upward


def test_every_exception_is_still_needed(modules: Graph) -> None:
    """An exception nobody needs any more is removed, so it cannot hide a new cycle."""
    packages = package_graph(modules)
    stale = [edge for edge in ALLOWED_MODULE_EDGES if edge[1] not in modules.get(edge[0], {})]
    stale += [edge for edge in ALLOWED_PACKAGE_EDGES if edge[1] not in packages.get(edge[0], {})]
    tangled = cycles(without(packages, ALLOWED_PACKAGE_EDGES))
    stale += [
        sorted(tangle) for tangle in ALLOWED_TANGLES if not any(set(c) & tangle for c in tangled)
    ]
    assert not stale


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b": ["a.x"]}, "b": {"c": ["b.y"]}, "c": {"a": ["c.z"]}, "d": {"a": ["d"]}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles(without(graph, {("c", "a"): "why"})) == []


def test_imports_under_type_checking_and_in_functions_count(tmp_path: Path) -> None:
    root = tmp_path / "edgegw"
    (root / "control").mkdir(parents=True)
    (root / "store").mkdir()
    for init in (root, root / "control", root / "store"):
        (init / "__init__.py").write_text("")
    (root / "daemon.py").write_text("from edgegw.control import ops\n")
    (root / "store" / "db.py").write_text("")
    (root / "control" / "ops.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from edgegw.daemon import Gateway\n"
        "def f():\n    from ..store import db\n"
    )
    modules = module_graph(root)
    assert set(modules["edgegw.control.ops"]) == {
        "edgegw.daemon",
        "edgegw.store",
        "edgegw.store.db",
    }
    assert cycles(modules) == [["edgegw.control.ops", "edgegw.daemon"]]
    assert cycles(package_graph(modules)) == [["edgegw.control", "edgegw.daemon"]]
