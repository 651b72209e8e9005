"""The package's import graph: no circles, and no module imports one of a higher layer.

Every ``import`` / ``from ... import`` in ``shiftlab/`` counts, also those inside functions (a
lazy import is still a dependency); imports under ``if TYPE_CHECKING:`` do not (they never run).
A parent package's ``__init__`` that Python runs first is not counted: it is how packages work,
not a choice of the importing module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shiftlab"

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS = [
    ["shiftlab.utils", "shiftlab.shifts"],
    ["shiftlab.distributed", "shiftlab.models", "shiftlab.metrics"],
    ["shiftlab.config", "shiftlab.config_schema", "shiftlab.compatibility", "shiftlab"],
    ["shiftlab.data"],
    ["shiftlab.tasks", "shiftlab.exports"],
    ["shiftlab.families", "shiftlab.shared_pretraining", "shiftlab.tables"],
    ["shiftlab.trainers", "shiftlab.run_context"],
    ["shiftlab.stages"],
    ["shiftlab.pipeline", "shiftlab.probing"],
    ["shiftlab.train", "shiftlab.evaluate", "shiftlab.rank"],
]


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _runtime_nodes(tree: ast.AST):
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from package import module`` imports the module; ``from module import name`` the module.
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import shiftlab.data.x`` of a missing name: its package
                target = target.rpartition(".")[0]
            if target and target.startswith("shiftlab") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    return {name: imports_of(name, path, set(names)) for name, path in names.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
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
    return found


def layer_of(module: str) -> int:
    best, level = None, None
    for number, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best):
                    best, level = prefix, number
    if level is None:
        raise AssertionError(f"{module} is in no layer of tests/unit/test_import_graph.py: add it to LAYERS")
    return level


def test_shiftlab_has_no_import_circle():
    found = circles(import_graph())
    assert not found, "import circles in shiftlab/: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_imports_a_higher_layer():
    graph = import_graph()
    upward = sorted(f"{source} (layer {layer_of(source)}) imports {target} (layer {layer_of(target)})"
                    for source, targets in graph.items() for target in targets if layer_of(target) > layer_of(source))
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_shift_core_stays_pure_tensor_code():
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("shiftlab.shifts"):
            # Its own modules, and the one constant it shares with the losses (IGNORE_INDEX).
            assert all(t.startswith("shiftlab.shifts") or t == "shiftlab.utils.labels" for t in targets), (module, targets)
            source = module_names()[module].read_text(encoding="utf-8")
            for banned in ("lightning", "hydra", "transformers", "omegaconf"):
                assert f"import {banned}" not in source and f"from {banned}" not in source, (module, banned)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_circle_finder_finds_circles(graph, expected):
    assert circles(graph) == expected


FAMILY_WORDS = ("classification", "tagging", "generation", "question_answering", "Seq2Seq", "TaskDataModule",
                "GenerationDataModule", "QADataModule", "TASK_MODULES")


@pytest.mark.parametrize("module", ["shiftlab/pipeline.py", "shiftlab/evaluate.py", "shiftlab/stages"])
def test_the_pipeline_and_shiftlab_eval_know_no_task_family(module):
    """What differs between task families is a method of the family (shiftlab/families), so
    the code that runs every task never names one (docstrings aside)."""
    paths = [PACKAGE.parent / module] if module.endswith(".py") else sorted((PACKAGE.parent / module).glob("*.py"))
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            text = None
            if isinstance(node, ast.Name):
                text = node.id
            elif isinstance(node, ast.Attribute):
                text = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                text = node.value
            elif isinstance(node, ast.alias):
                text = node.name
            if text is not None:
                found = [word for word in FAMILY_WORDS if word in text]
                assert not found, f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')} names {found}"
