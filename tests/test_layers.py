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
    return {name for name in found if name.startswith("harness") and name != module_name(path)}


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


# -- the run store owns the run folder ---------------------------------------------------------
RUN_FOLDER_NAMES = {"run_dir", "backend_dir", "RUN_JSON", "RUN_LOCK", "ENSEMBLE_JSON", "REPORT_HTML", "REPORT_MD",
                    "WEIGHTS", "FIDELITY_PROBS", "STEP_GRADS", "MODEL_FILE", "result_name", "events_name",
                    "log_name", "status_name", "probs_name", "labels_name", "promised_files"}
"""The job protocol's names of what lies inside a run folder (``harness.workload.layout``)."""
RUN_FOLDER_FILES = ("run.json", "ensemble.json", "report.html", "report.md", "weights.npz", ".status.json",
                    ".events.jsonl", "fidelity_probs.npz", "step_grads.npz", "probs_test.npy", "probs_val.npy")
OWNERS = ("harness.run_store", "harness.workload")
"""The run store owns the run folder; the workload (the job side) writes it through the same names."""
NAMES_ONLY = {"harness.phases": "declares which files each phase promises and leaves, joins no path"}


def run_folder_uses(path: Path) -> list[str]:
    """Where a module names something inside a run folder: a layout name of one, or a file name literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in RUN_FOLDER_NAMES and \
                isinstance(node.value, ast.Name) and node.value.id == "layout":
            found.append(f"line {node.lineno}: layout.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").endswith("layout"):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in RUN_FOLDER_NAMES]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.endswith(RUN_FOLDER_FILES) and " " not in node.value:
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


@pytest.mark.parametrize("name", [n for n in MODULES if not any(within(n, o) for o in OWNERS)
                                  and n not in NAMES_ONLY])
def test_only_the_run_store_joins_paths_inside_a_run_folder(name: str) -> None:
    """Every path inside ``<shared>/runs/<run-id>`` comes from ``harness.run_store``; a module that
    needs one asks the store (``job_files``, ``report_path``, ``outputs`` ...)."""
    assert not run_folder_uses(MODULES[name]), f"{name} names run-folder files: {run_folder_uses(MODULES[name])}"


def test_the_run_folder_check_sees_names_and_literals(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from harness.workload import layout\nfrom harness.workload.layout import WEIGHTS\n"
                      "a = folder / layout.result_name('train')\nb = folder / 'report.html'\n"
                      "c = 'see report.html for charts'\n")
    assert sorted(run_folder_uses(sample)) == ["line 2: imports WEIGHTS", "line 3: layout.result_name",
                                               "line 4: 'report.html'"]


# -- no import cycle anywhere ------------------------------------------------------------------
def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` imported by its own modules is not a cycle of theirs ("from harness import x")."""
    return {n: {m for m in deps if not (n.startswith(m + ".") and m in graph and MODULES[m].name == "__init__.py")}
            for n, deps in graph.items()}


def test_no_import_cycle_anywhere() -> None:
    """Every import counts, also those inside functions: a cycle means two modules each need the other."""
    assert cycles(_without_packages(GRAPH)) == []


def test_the_cycle_check_finds_a_cycle_through_several_modules() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
