"""A regular (non-editable) install works: the wheel carries every file the harness reads.

The wheel is built from this checkout with pip, as ``pip install .`` would,
and unpacked into a folder of its own that comes first on ``sys.path``; the
commands then run from a folder outside the checkout, so nothing can be read
from the source tree. (``.ci/run`` also installs it into a fresh virtual
environment with its dependencies, and runs ``kbench --help`` there.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.run_fixtures import RunSpec, write_run


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("install")
    wheels, target = root / "wheels", root / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-w", str(wheels), str(REPO)], check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


def python_in(target: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.slow
def test_the_installed_harness_is_the_one_imported(installed, tmp_path):
    result = python_in(installed, "import harness; print(harness.__file__)", tmp_path)
    assert result.stdout.strip().startswith(str(installed)), result.stderr


@pytest.mark.slow
def test_kbench_help_works_from_a_regular_install(installed, tmp_path):
    result = python_in(installed, "import sys; from harness.cli import main; sys.exit(main(['--help']))", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: kbench" in result.stdout


@pytest.mark.slow
def test_a_regular_install_renders_reports_and_job_manifests(installed, tmp_path):
    folder = write_run(tmp_path / "shared", RunSpec(run_id="inst1"))
    code = (
        "import sys; from harness.cli import main\n"
        f"code = main(['report', {str(folder)!r}])\n"
        "from harness.executors.kubernetes.settings import DEFAULT_TEMPLATE\n"
        "print('template', DEFAULT_TEMPLATE, DEFAULT_TEMPLATE.is_file())\n"
        "sys.exit(code)\n"
    )
    result = python_in(installed, code, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "report.html").stat().st_size > 10_000
    template_line = next(line for line in result.stdout.splitlines() if line.startswith("template"))
    assert template_line.startswith(f"template {installed}") and template_line.endswith("True")
    assert "report.md" in json.dumps(result.stdout)
