"""The layout's rules (README "Layout"): imports run one way, command verbs -> training /
evaluation -> data / models -> ops; nothing imports a command verb; no import cycles; small files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "medsr"
VERBS = {"train", "evaluate", "predict", "interpolate", "results", "export"}
# What each room may import besides itself (the foundation: errors, files, metrics' own ops).
BASE = {"errors", "files"}
ALLOWED = {
    "ops": BASE,
    "metrics": BASE | {"ops"},
    "models": BASE | {"ops"},
    "data": BASE | {"ops", "metrics"},
    "conf": BASE | {"training"},  # the run_weights resolver finds training runs (imported lazily)
    # Training draws its validation pictures with evaluation's figures; never the reverse.
    "training": BASE | {"ops", "metrics", "models", "data", "_cli", "evaluation"},
    "evaluation": BASE | {"ops", "metrics", "models", "data", "conf"},
    "_cli": BASE | {"conf"},
}


def modules() -> dict[str, set[str]]:
    """medsr module name -> the medsr modules it imports (anywhere in the file)."""
    graph = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        imports = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from package import submodule`` depends on the submodule, not the package
                names = {f"{node.module}.{a.name}" for a in node.names}
                imports |= names if all(_is_module(n) for n in names) else {node.module}
            elif isinstance(node, ast.Import):
                imports.update(a.name for a in node.names)
        graph[name] = {i for i in imports if i.startswith("medsr.")}
    # Only imports of medsr modules count (not of names inside them), and no package itself.
    return {k: {i for i in v if i in graph and i != k} for k, v in graph.items()}


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "medsr"


def test_nothing_imports_a_command_verb():
    graph = modules()
    offenders = [
        (m, i) for m, deps in graph.items() for i in deps if i.split(".")[1] in VERBS and i != m
    ]
    assert not offenders


def test_imports_run_one_way():
    graph = modules()
    offenders = []
    for module, deps in graph.items():
        here = room(module)
        if here in VERBS or here == "medsr":
            continue
        allowed = ALLOWED.get(here, BASE) | {here}
        offenders += [(module, dep) for dep in deps if room(dep) not in allowed and dep != "medsr"]
    assert not offenders


def test_no_import_cycles():
    graph = modules()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle.extend(path[path.index(dep) :] + [dep] if dep in path else [node, dep])
                return True
            if dep not in state and visit(dep, [*path, dep]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if node not in state and visit(node, [node]):
            break
    assert not cycle, " -> ".join(cycle)


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_source_files_stay_small(path):
    assert len(path.read_text().splitlines()) <= 350
