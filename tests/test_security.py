"""Security rules checked over the source: no shell on user input, YAML loaded safely.

The rendered-manifest rules (restricted Pod Security, least-privilege Role)
are checked in ``test_k8s_manifests.py``; report escaping in ``test_report.py``;
secrets staying out of the run folder in ``test_faults.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "harness").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py"))


def calls(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def dotted(func: ast.AST) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_process_is_started_through_a_shell(path):
    for call in calls(path):
        name = dotted(call.func)
        assert name not in {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"}, (
            f"{path.name}:{call.lineno} runs a shell")
        for keyword in call.keywords:
            if keyword.arg == "shell":
                assert isinstance(keyword.value, ast.Constant) and keyword.value.value is False, (
                    f"{path.name}:{call.lineno} passes shell=")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_is_only_loaded_safely_and_nothing_is_evaluated(path):
    for call in calls(path):
        name = dotted(call.func)
        assert name not in {"yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "eval", "exec"}, (
            f"{path.name}:{call.lineno} calls {name}")


def test_the_rules_would_catch_a_shell_call(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import subprocess\nsubprocess.run('ls ' + user, shell=True)\n")
    with pytest.raises(AssertionError, match="passes shell="):
        test_no_process_is_started_through_a_shell(bad)
