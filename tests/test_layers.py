"""The harness's layers, read from its imports (every import: at the top, inside functions, under TYPE_CHECKING).

* the workload (runs inside a job) imports nothing of the harness outside itself;
* the executors (run jobs) never import the scoring, the report, the run's end or the pytest plugin;
* nothing an executor imports imports an executor back, so the two never depend on each other;
* no harness module depends on itself through its imports: no import cycle anywhere.

An import names the modules it needs: ``from harness.report import charts``
needs ``harness.report.charts`` (Python runs the package's ``__init__`` first,
as it does for every submodule, which is not a dependency on what the
package's ``__init__`` imports); ``from harness import __version__`` needs
``harness`` itself.
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


MODULE_PATHS = {module_name(p): p for p in sorted(HARNESS.rglob("*.py"))}


def imports_of(path: Path, modules: set[str] | frozenset[str] = frozenset(MODULE_PATHS), name: str = "") -> set[str]:
    """Every harness module ``path`` (module ``name``) imports, at the top or inside a function.

    ``from package import name`` imports the submodule ``package.name`` when one
    exists (among ``modules``), else a name defined by the package itself.
    """
    found = set()
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name.startswith("harness")}


MODULES = MODULE_PATHS
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


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import cycle (as a path back to its start) per group of modules that import each other."""
    found: list[list[str]] = []
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph.get(start, ()))))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                loop = path[path.index(child):] + [child]
                if not any(set(loop) == set(seen) for seen in found):
                    found.append(loop)
            elif child not in done:
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
                on_path.add(child)
    return found


def test_no_import_cycle_between_executors_and_the_rest() -> None:
    assert not back_edges(GRAPH), "modules the executors import import an executor back"


def test_no_import_cycle_anywhere_in_the_harness() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(" -> ".join(loop) for loop in found)


def test_the_checks_see_imports_inside_functions_and_indirect_cycles() -> None:
    # the Kubernetes executor imports its client only inside a function
    assert "harness.executors.kubernetes.client" in GRAPH["harness.executors.kubernetes.executor"]
    # the shape issue 15 found: executors -> rundir -> executors.base
    old = {"harness.executors.local": {"harness.rundir"}, "harness.rundir": {"harness.errors", "harness.executors.base"},
           "harness.executors.base": set(), "harness.errors": set()}
    assert back_edges(old) == {("harness.rundir", "harness.executors.base")}


def test_the_cycle_check_finds_the_cycle_issue_24_named_and_longer_ones(tmp_path: Path) -> None:
    """Real source, parsed as the harness is: tables imports its views inside a function, they import it at the top."""
    report = tmp_path / "harness" / "report"
    report.mkdir(parents=True)
    (report / "__init__.py").write_text("from harness.report.render import render\n")
    (report / "render.py").write_text("from harness.report import tables\n")
    (report / "tables.py").write_text("def view():\n    from harness.report.speed_view import speed_view\n")
    (report / "speed_view.py").write_text("from harness.report.tables import DASH\n")
    names = {"harness.report", "harness.report.render", "harness.report.tables", "harness.report.speed_view"}
    graph = {}
    for path in report.glob("*.py"):
        parts = path.relative_to(tmp_path).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = {m for m in imports_of(path, names, name) if m in names}

    assert graph["harness.report.render"] == {"harness.report.tables"}  # a submodule, not the package
    assert cycles(graph) == [["harness.report.tables", "harness.report.speed_view", "harness.report.tables"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


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
