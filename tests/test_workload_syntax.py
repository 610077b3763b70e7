"""The workload runs inside the legacy image: Python 3.6 syntax, few imports."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "harness"
WORKLOAD_FILES = sorted((HARNESS / "workload").glob("*.py")) + [HARNESS / "__init__.py"]
ALLOWED_TOP_LEVEL = {"numpy", "keras", "PIL", "harness"} | set(sys.stdlib_module_names)


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.name)
def test_every_workload_file_parses_as_python_3_6(path: Path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 6))


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.name)
def test_workload_imports_only_stdlib_numpy_keras_and_pillow(path: Path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
            if node.module.split(".")[0] == "harness":
                assert node.module.startswith("harness.workload"), f"{path.name} imports {node.module}"
    # imported only after keras chose the backend: thread settings (tensorflow, torch), and the
    # speed phase's ceiling, which times the job's own backend's matmul (ceiling.py, every backend)
    backend_libraries = {"tensorflow", "torch", "jax", "theano", "cntk"}
    assert imported <= ALLOWED_TOP_LEVEL | backend_libraries, imported - ALLOWED_TOP_LEVEL


def test_python_3_6_syntax_check_really_rejects_newer_syntax():
    with pytest.raises(SyntaxError):
        ast.parse("if (n := 1): pass", feature_version=(3, 6))
