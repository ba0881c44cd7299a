"""Sizes a reader can take in: no function under peftbench/ over 80 lines, no module over 400 lines
(CONTRIBUTING.md). The checks can fail: a planted long function is found."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "peftbench"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, lines) of every function or method longer than `limit` lines."""
    return [(n.name, n.lineno, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_over_80_lines():
    found = [f"{p.relative_to(PACKAGE.parent)}:{line} {name} ({n} lines)" for p in sorted(PACKAGE.rglob("*.py"))
             for name, line, n in long_functions(p.read_text())]
    assert not found, "split these into functions named for what each part does:\n" + "\n".join(found)


def test_no_module_over_400_lines():
    found = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)" for p in sorted(PACKAGE.rglob("*.py"))
             if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not found, "split these modules:\n" + "\n".join(found)


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def short():\n    pass\n\n\ndef long():\n{body}\n") == [("long", 5, MAX_FUNCTION_LINES + 1)]
