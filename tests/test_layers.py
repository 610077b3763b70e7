"""The harness's layers, read from its imports (every import, also those inside functions).

* the workload (runs inside a job) imports nothing of the harness outside itself;
* the executors (run jobs) never import the scoring, the report, the run's end or the pytest plugin;
* nothing an executor imports imports an executor back, so the two never depend on each other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "harness"
EXECUTORS = "harness.executors"
NOT_FOR_EXECUTORS = ("harness.scoring", "harness.report", "harness.baselines", "harness.history",
                     "harness.run_end", "harness.cli", "harness.session", "harness.pytest_plugin")


def module_name(path: Path) -> str:
    parts = path.relative_to(HARNESS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every harness module ``path`` imports, at the top or inside a function."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # "from harness import report"
    return {name for name in found if name.startswith("harness")}


MODULES = {module_name(p): p for p in sorted(HARNESS.rglob("*.py"))}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES} for name, path in MODULES.items()}


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("name", [n for n in MODULES if within(n, "harness.workload")])
def test_the_workload_imports_nothing_of_the_harness(name: str) -> None:
    outside = {m for m in imports_of(MODULES[name]) if not within(m, "harness.workload") and m != "harness"}
    assert not outside, f"{name} imports {sorted(outside)}"


@pytest.mark.parametrize("name", [n for n in MODULES if within(n, EXECUTORS)])
def test_executors_never_import_scoring_report_or_plugin(name: str) -> None:
    wrong = {m for m in imports_of(MODULES[name]) if any(within(m, layer) for layer in NOT_FOR_EXECUTORS)}
    assert not wrong, f"{name} imports {sorted(wrong)}"


def back_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports of an executor by a module outside executors/ that the executors need, however indirectly."""
    reached, todo = set(), [n for n in graph if within(n, EXECUTORS)]
    while todo:
        for imported in graph.get(todo.pop(), ()):
            if imported not in reached:
                reached.add(imported)
                todo.append(imported)
    return {(n, m) for n in reached if not within(n, EXECUTORS) for m in graph.get(n, ()) if within(m, EXECUTORS)}


def test_no_import_cycle_between_executors_and_the_rest() -> None:
    assert not back_edges(GRAPH), "modules the executors import import an executor back"


def test_the_checks_see_imports_inside_functions_and_indirect_cycles() -> None:
    # the Kubernetes executor imports its client only inside a function
    assert "harness.executors.k8s_client" in GRAPH["harness.executors.kubernetes"]
    # the shape issue 15 found: executors -> rundir -> executors.base
    old = {"harness.executors.local": {"harness.rundir"}, "harness.rundir": {"harness.errors", "harness.executors.base"},
           "harness.executors.base": set(), "harness.errors": set()}
    assert back_edges(old) == {("harness.rundir", "harness.executors.base")}
