"""The package's layers, written once: imports point down, never up, and never in a circle.

Every `import`/`from ... import` in peftbench (lazy ones inside functions too) is read with `ast`. A module
belongs to the unit named by its first component under `peftbench/` (`peftbench/train/loop.py` -> `train`).
A unit may import a unit of a lower rank, or itself; `report` stands apart and may import only `errors`,
`runfile` and itself (it must stay free of torch). No module imports another in a circle, and no private
name (`_x`) is imported from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "peftbench"
# Lowest first. `peftbench` itself holds only __version__.
LAYERS = ("peftbench", "errors", "runfile", "plugins", "config", "metrics", "tasks", "models", "methods", "train",
          "pipeline", "run", "cli")
APART = {"report": ("peftbench", "errors", "runfile", "report"),
         "results": ("peftbench", "errors", "runfile", "report", "results"),  # the DataFrame API over report's reader
         "api": (*LAYERS, "report", "results", "api")}  # the Python API: the CLI's run, results' load and table


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of peftbench inside module `name`."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "peftbench"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "peftbench":
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:  # `from . import image, lm`: the submodules themselves
                out += [(m, [], node.lineno) for m in submodules]
            rest = [n for n in names if f"{target}.{n}" not in MODULES]
            if rest:
                out.append((target, rest, node.lineno))
    return out


def unit(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def rank(u: str) -> int:
    return LAYERS.index(u)


GRAPH = {name: imports_of(name) for name in MODULES}


def test_every_unit_has_a_place():
    units = {unit(n) for n in MODULES}
    assert units <= set(LAYERS) | set(APART), f"put these in LAYERS or APART: {sorted(units - set(LAYERS) - set(APART))}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    here = unit(name)
    wrong = []
    for target, _, line in GRAPH[name]:
        there = unit(target)
        if here in APART:
            ok = there in APART[here]
        elif there in APART:
            ok = here == "cli"  # the command line calls the report command
        else:
            ok = there == here or rank(there) < rank(here)
        if not ok:
            wrong.append(f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports {target} ({here} -> {there})")
    assert not wrong, "imports that point up or across (layers: " + " < ".join(LAYERS) + "):\n" + "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_is_imported_across_modules(name):
    private = [f"{target}.{n} (line {line})" for target, names, line in GRAPH[name] for n in names
               if n.startswith("_") and n != "__version__"]
    assert not private, f"{name} imports private names: {private}"


def test_no_import_circles():
    """Depth-first search over module -> imported module; a back edge is a circle."""
    edges = {name: sorted({t for t, _, _ in GRAPH[name] if t in MODULES and t != name}) for name in MODULES}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a planted upward import and a planted circle are both found."""
    (tmp_path / "peftbench" / "config").mkdir(parents=True)
    (tmp_path / "peftbench" / "__init__.py").write_text("")
    (tmp_path / "peftbench" / "config" / "__init__.py").write_text("from ..run import go\n")
    (tmp_path / "peftbench" / "run.py").write_text("from .config import x\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "peftbench")
    modules = {module_name(p): p for p in sorted((tmp_path / "peftbench").rglob("*.py"))}
    monkeypatch.setattr(__import__(__name__), "MODULES", modules)
    graph = {n: imports_of(n) for n in modules}
    assert ("peftbench.run", ["go"], 1) in graph["peftbench.config"]
    assert ("peftbench.config", ["x"], 1) in graph["peftbench.run"]
    monkeypatch.setattr(__import__(__name__), "GRAPH", graph)
    with pytest.raises(AssertionError, match="config -> run"):
        test_imports_point_down("peftbench.config")
    with pytest.raises(AssertionError, match="import circles"):
        test_no_import_circles()
