"""The method-loop contract (peftbench/methods/hooks.py): a method attaches only hooks `ModelHooks`
declares, and nothing else of peftbench's is set on a model, so the hooks list is complete."""

import ast
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.methods.hooks import ATTRIBUTE, HOOK_NAMES, ModelHooks, attach_hooks, hooks_of

PACKAGE = Path(__file__).resolve().parents[2] / "peftbench"


def peftbench_attributes(tree) -> list[tuple[str, int]]:
    """`x.peftbench_<name>` and `setattr/getattr/hasattr(x, "peftbench_<name>")` in a module's syntax tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("peftbench_"):
            found.append((node.attr, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("setattr", "getattr", "hasattr") \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and str(node.args[1].value).startswith("peftbench_"):
            found.append((node.args[1].value, node.lineno))
    return found


def test_no_undeclared_peftbench_attribute_in_the_package():
    """Hooks go through attach_hooks/hooks_of; an ad-hoc `model.peftbench_x = ...` anywhere fails here."""
    stray = [f"{p.relative_to(PACKAGE.parent)}:{line} {name}" for p in sorted(PACKAGE.rglob("*.py"))
             for name, line in peftbench_attributes(ast.parse(p.read_text())) if name != ATTRIBUTE]
    assert not stray, "declare hooks in peftbench/methods/hooks.py ModelHooks and attach them with attach_hooks:\n" \
        + "\n".join(stray)


def test_the_scan_sees_an_ad_hoc_hook():
    tree = ast.parse("def build(model):\n    model.peftbench_before_eval = print\n    setattr(model, 'peftbench_x', 1)\n")
    assert peftbench_attributes(tree) == [("peftbench_before_eval", 2), ("peftbench_x", 3)]


def test_an_undeclared_hook_is_refused_with_the_declared_ones():
    class Model:
        pass

    with pytest.raises(UserError, match="before_eval: not declared.*Declared: fold, bind_optimizer, after_step"):
        attach_hooks(Model(), before_eval=print)


def test_hooks_add_up_and_every_hook_has_a_docstring():
    class Model:
        pass

    model = Model()
    assert hooks_of(model) == ModelHooks()
    attach_hooks(model, after_step=print)
    attach_hooks(model, cannot_train="no")
    assert hooks_of(model) == ModelHooks(after_step=print, cannot_train="no")
    source = ast.parse((PACKAGE / "methods" / "hooks.py").read_text())
    body = next(n for n in source.body if isinstance(n, ast.ClassDef) and n.name == "ModelHooks").body
    documented = {body[i].target.id for i in range(len(body) - 1) if isinstance(body[i], ast.AnnAssign)
                  and isinstance(body[i + 1], ast.Expr) and isinstance(body[i + 1].value, ast.Constant)}
    assert documented == set(HOOK_NAMES)
