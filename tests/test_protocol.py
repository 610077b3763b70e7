"""The run-folder protocol has one home (``harness/workload/layout.py``) that the job and the harness share.

A job and the harness talk only through files and output lines. These tests
run the real workload in a subprocess and read its output with the executors'
own readers, check that both sides name files and prefixes through the same
constants, and that no module of the harness spells a protocol name itself.
"""
from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import pytest

from harness import errors, history
from harness.executors import job_log
from harness.executors.kubernetes import status as k8s_status
from harness.report import thumbnails
from harness.run_store import RunStore
from harness.workload import data, events, layout
from harness.workload.errors import DataError
from tests.run_fixtures import CACHE_KEY, RunSpec, write_cache, write_run

HARNESS = Path(__file__).resolve().parent.parent / "harness"
REPO = HARNESS.parent


def test_a_failing_job_ends_with_the_error_line_the_executors_read(tmp_path: Path) -> None:
    # no run.json: the workload's input error, before Keras is imported
    proc = subprocess.run([sys.executable, "-m", "harness.workload", "train", "--shared", str(tmp_path),
                           "--run-id", "nothing-here", "--backend", "tensorflow"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 3, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(layout.ERROR_PREFIX)
    said = job_log.error_line(proc.stdout + proc.stderr)
    assert said.startswith("cannot read ") and "start the run through the harness" in said
    assert k8s_status.error_line(proc.stderr) == said  # the Kubernetes executor reads the pod log alike


def test_events_go_to_the_file_and_the_log_and_are_read_back_the_same(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = events.EventLog(str(tmp_path / layout.events_name("train")), "jax", "train", stream=stream)
    follower = job_log.EventFollower(tmp_path / layout.events_name("train"))
    sent = [log.emit(events.START, pid=1), log.emit(events.EPOCH_END, epoch=1, seconds=2.0)]
    log.close()
    printed = stream.getvalue()
    assert all(line.startswith(layout.EVENT_PREFIX) for line in printed.splitlines())
    assert follower.new_events() == sent
    assert [events.parse_line(line) for line in printed.splitlines()] == sent
    text = printed + "plain output\n" + layout.ERROR_PREFIX + "it broke\n"
    assert job_log.log_tail(text) == "plain output\n" + layout.ERROR_PREFIX + "it broke"


def test_both_sides_read_the_same_constants(tmp_path: Path) -> None:
    shared = str(tmp_path)
    assert events.EVENT_PREFIX is layout.EVENT_PREFIX and job_log.EVENT_PREFIX is layout.EVENT_PREFIX
    assert job_log.ERROR_PREFIX is layout.ERROR_PREFIX
    assert k8s_status.error_line is job_log.error_line and k8s_status.log_tail is job_log.log_tail
    assert (RunStore(tmp_path, "r1").report_path("html").name, RunStore(tmp_path, "r1").report_path("md").name) == (
        layout.REPORT_HTML, layout.REPORT_MD)
    assert history.default_dir(tmp_path) == Path(shared, layout.HISTORY)
    assert thumbnails.cache_folder(tmp_path, "k") == Path(layout.dataset_cache_dir(layout.cache_dir(shared), "k"))
    assert layout.shared_of(layout.run_dir(shared, "r1")) == shared
    with pytest.raises(ValueError, match="not a run folder"):
        layout.shared_of(str(tmp_path / "elsewhere" / "r1"))


def test_the_harness_checks_the_cache_with_the_jobs_own_fingerprint(tmp_path: Path) -> None:
    spec = RunSpec()
    write_run(tmp_path, spec)
    write_cache(tmp_path, spec)
    assert thumbnails.fingerprint is data.fingerprint
    assert Path(layout.dataset_cache_dir(layout.cache_dir(str(tmp_path)), CACHE_KEY), "meta.json").is_file()


PROTOCOL_NAMES = {name: getattr(layout, name) for name in (
    "ERROR_PREFIX", "EVENT_PREFIX", "RUN_JSON", "ENSEMBLE_JSON", "REPORT_HTML", "REPORT_MD", "WEIGHTS",
    "DATASETS", "INPUTS", "MODEL_FILE")}
"""Names no module but layout.py may write as a literal (".lock" and "history" are also used for other things)."""
FOREIGN_NAMES = {"keras_dataset.py": {"DATASETS"}, "keras2_names.py": {"DATASETS"}}
"""Modules that spell the same word for another program's layout: Keras's own cache is ~/.keras/datasets,
and keras.datasets is one of Keras 2.3.1's modules."""


def _literals(path: Path) -> set[str]:
    """String constants in a module's code (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings}


@pytest.mark.parametrize("path", sorted(p for p in HARNESS.rglob("*.py") if p.name != "layout.py"),
                         ids=lambda p: str(p.relative_to(HARNESS)))
def test_no_module_spells_a_protocol_name_itself(path: Path) -> None:
    spelt = {name for name, value in PROTOCOL_NAMES.items() if value in _literals(path)}
    spelt -= FOREIGN_NAMES.get(path.name, set())
    assert not spelt, f"{path.name} writes {sorted(spelt)} itself; use harness.workload.layout"


def test_one_data_error_for_the_job_and_the_harness() -> None:
    assert errors.DataError is data.DataError is DataError
    assert issubclass(DataError, errors.HarnessError)  # so the plugin and the CLI print its one line


def test_a_data_error_from_the_workloads_code_does_not_escape_the_thumbnails(tmp_path: Path) -> None:
    spec = RunSpec()
    write_run(tmp_path, spec)
    write_cache(tmp_path, spec)
    from harness.run_end import reanalyse

    analysis = reanalyse(layout.run_dir(str(tmp_path), spec.run_id))
    analysis.settings["profile"]["n_test"] = 10 ** 6  # more than the cache holds: subset_indices raises
    found = thumbnails.load(analysis, tmp_path)
    assert found.images == {}
    assert "could not be read" in found.unavailable and "asks for 1000000 test images" in found.unavailable
