"""The package's layout: the import graph has no cycles, counting function-local imports (a cycle
hidden in a function is still a cycle: the two modules cannot be understood or tested apart), and
the public namespaces list only what they promise."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cyclr

ROOT = Path(cyclr.__file__).parent


def _module(path: Path) -> str:
    parts = ["cyclr", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the cyclr modules it imports anywhere in its body (``from .pkg import name``
    is an edge to ``pkg``, or to ``pkg.name`` when that is a module)."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                targets = subs or [target]
            for t in targets:
                if t in modules and t != name:
                    graph[name].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_local_imports() -> None:
    graph = _graph()
    assert "cyclr.finder._plot" in graph["cyclr.finder._core"]  # imported inside RangeTestResult.plot
    assert "cyclr.schedules._base" in graph["cyclr.schedules._compose"]


def test_a_planted_cycle_is_found() -> None:
    graph = {k: set(v) for k, v in _graph().items()}
    graph["cyclr._validation"].add("cyclr.schedules._base")
    assert any("cyclr._validation" in c for c in _cycles(graph))


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize(
    "name",
    [
        "cyclr",
        "cyclr.torch",
        "cyclr.jax",
        "cyclr.keras",
        "cyclr.finder",
        "cyclr.schedules",
        "cyclr.bench",
        "cyclr.lightning",
        "cyclr.hf",
    ],
)
def test_public_namespaces_list_only_what_they_promise(name: str) -> None:
    import importlib

    module = importlib.import_module(name)
    listed = set(dir(module))
    helpers = {"Any", "math", "warnings", "np", "annotations", "Callable"} | ({"torch"} if name != "cyclr" else set())
    assert not listed & helpers  # cyclr.torch, the submodule, is public; the torch library is not
    assert set(module.__all__) <= listed
    assert all(hasattr(module, n) for n in module.__all__)
    extra = listed - set(module.__all__)
    assert extra <= {"__version__", *cyclr._SUBMODULES}  # the top level also lists its public submodules
