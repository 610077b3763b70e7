"""A model file whose ``build()`` ends the process (``sys.exit(0)``, ``os._exit(0)``): one clear line, checked once.

The check's process is a stand-in that ends as such a file makes it end
(exit 0, nothing printed), so no Keras runtime is needed here; the workload
side of ``sys.exit`` is ``harness.workload.build_check``'s own ``SystemExit``
catch. Issue 30, break 8.
"""
from __future__ import annotations

import subprocess
import types
from pathlib import Path

import pytest

from harness import options
from harness.errors import ConfigError
from harness.models import build_check
from harness.session import BenchmarkSession

EXITS = '''
import os


def build(keras, input_shape, n_classes):
    os._exit(0)
'''


@pytest.fixture
def ends_early(tmp_path, monkeypatch) -> list[list[str]]:
    """The Keras 3 runtime is ready, and its check process ends with exit 0 having printed nothing."""
    ran: list[list[str]] = []
    runtime = types.SimpleNamespace(unavailable_reason=None, ready=True, env={}, python=Path("/usr/bin/python3"))
    monkeypatch.setattr(build_check.runtimes, "resolve", lambda name, work_dir: runtime)
    monkeypatch.setattr(build_check, "stage_workload", lambda work_dir: work_dir)
    monkeypatch.setattr(build_check, "_checked", {})

    def finished(command, **kwargs):
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="", stderr="")

    monkeypatch.setattr(build_check.subprocess, "run", finished)
    return ran


def session_with_model(tmp_path: Path) -> BenchmarkSession:
    (tmp_path / "exits.py").write_text(EXITS)
    cfg = options.build_run(tmp_path, backend="jax", profile="smoke", executor="local", dataset="keras",
                            shared_dir=tmp_path / "shared", run_id="r1", work_dir=tmp_path / "work",
                            model=str(tmp_path / "exits.py"))
    return BenchmarkSession([cfg], say=lambda line: None)


def test_a_build_that_ends_the_process_is_one_line_checked_once(tmp_path, ends_early, keras_download_cached):
    """Before: an IndexError traceback once per case (4 times), the model built again for each case."""
    session = session_with_model(tmp_path)
    for _case in range(4):
        with pytest.raises(ConfigError) as err:
            session.check_models()
        assert str(err.value) == (
            f"model file {tmp_path / 'exits.py'}: building it ended the check (exit 0) before a model came back; "
            "does its build() call sys.exit() or os._exit()? It must return the model")
    assert len(ends_early) == 1, "the model is built once, not once per case"


@pytest.mark.parametrize("printed", ["", "hello from build()\n", "[1, 2]\n", '{"parameters": "many"}\n'])
def test_anything_but_the_checks_own_last_line_is_no_model(printed):
    assert build_check._described(printed) is None
    assert build_check._described('{"parameters": 12, "flops": {"forward": 3}}\n') == {
        "parameters": 12, "flops": {"forward": 3}}
