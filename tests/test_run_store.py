"""The run folder: safe run ids, one harness per run, trustworthy results only."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.errors import ConfigError, ResultError, RunInUseError
from harness.jobs import JobResult, JobState
from harness.names import check_run_id, new_run_id
from harness.run_store import RunStore
from harness.workload import layout
from tests.conftest import REPO

SETTINGS = {"schema": layout.SCHEMA_VERSION, "profile": {"name": "smoke"}, "dataset": {"kind": "keras"},
            "backends": ["jax"]}


@pytest.mark.parametrize("bad", ["../etc", "a/b", "Nightly", "run id", "-x", "x-", "a" * 41, "", "ü", "a.b",
                                 "nightly\n", "nightly\r", "\nnightly"])
def test_unsafe_run_ids_are_refused_with_the_rule(bad):
    with pytest.raises(ConfigError, match="not a safe name; use 1-40 lowercase letters"):
        check_run_id(bad)


def test_generated_run_ids_are_safe():
    assert check_run_id(new_run_id()) 


def test_a_second_harness_on_the_same_run_is_refused_while_the_first_holds_it(tmp_path):
    """The holder is a real second process, as when two sessions start with one --run-id."""
    script = textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {str(REPO)!r})
        from harness.run_store import RunStore
        held = RunStore({str(tmp_path)!r}, "busy"); held.acquire(); print("held", flush=True); time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUseError, match=r"run busy is in use by pid \d+ .*resume it"):
            RunStore(tmp_path, "busy").acquire()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    folder = RunStore(tmp_path, "busy")
    folder.acquire()  # free again once the holder is gone
    folder.release()


def test_resuming_with_other_settings_is_refused(tmp_path):
    folder = RunStore(tmp_path, "r1")
    folder.write_settings(SETTINGS)
    with pytest.raises(ConfigError, match="different profile .*choose a new --run-id"):
        folder.write_settings(dict(SETTINGS, profile={"name": "default"}))


def test_resuming_may_change_only_how_speed_is_timed(tmp_path):
    """speed_steps and speed_predict_batches change no job's outputs: a later session may set them
    (its speed jobs run again); any other profile field is another run."""
    folder = RunStore(tmp_path, "r1")
    profile = {"name": "smoke", "epochs": 3, "speed_steps": 60, "speed_predict_batches": 10}
    folder.write_settings(dict(SETTINGS, profile=profile))
    merged = folder.write_settings(dict(SETTINGS, profile=dict(profile, speed_steps=120, speed_predict_batches=5)))
    assert merged["profile"] == dict(profile, speed_steps=120, speed_predict_batches=5)
    with pytest.raises(ConfigError, match="different profile"):
        folder.write_settings(dict(SETTINGS, profile=dict(profile, epochs=4)))


def test_resuming_adds_backends_to_the_run(tmp_path):
    folder = RunStore(tmp_path, "r1")
    folder.write_settings(SETTINGS)
    merged = folder.write_settings(dict(SETTINGS, backends=["torch"]))
    assert merged["backends"] == ["jax", "torch"]


def write_train(folder, backend="jax", **extra):
    (folder.backend_dir(backend)).mkdir(parents=True, exist_ok=True)
    payload = {"schema": layout.SCHEMA_VERSION, "kind": "train", "backend": backend,
               "data": {"fingerprint": "f1"}}
    np.savez(folder.file(backend, layout.WEIGHTS), np.zeros(3, dtype=np.float32))  # as the job does
    payload["files"] = layout.file_records(str(folder.backend_dir(backend)), [layout.WEIGHTS])  # as the job does
    payload.update(extra)
    folder.file(backend, "train.json").write_text(json.dumps(payload))
    folder.write_status(JobResult(backend, "train", JobState.SUCCEEDED, wall_s=1.0))


def test_a_finished_job_is_reused(tmp_path):
    folder = RunStore(tmp_path, "r1")
    write_train(folder)
    found = folder.earlier("jax", "train")[0]
    assert found is not None and found.reused and found.wall_s == 1.0


@pytest.mark.parametrize("damage", ["truncate", "schema", "no-weights", "failed-status", "no-status",
                                    "weights-overwritten", "weights-same-size", "no-checksums"])
def test_a_damaged_or_unfinished_job_is_not_reused(tmp_path, damage):
    folder = RunStore(tmp_path, "r1")
    write_train(folder)
    path = folder.file("jax", "train.json")
    if damage == "truncate":
        path.write_text(path.read_text()[:20])
    elif damage == "schema":
        write_train(folder, schema=0)
    elif damage == "no-weights":
        folder.file("jax", layout.WEIGHTS).unlink()
    elif damage == "weights-overwritten":
        folder.file("jax", layout.WEIGHTS).write_bytes(b"random bytes of another length")
    elif damage == "weights-same-size":
        weights = folder.file("jax", layout.WEIGHTS)
        weights.write_bytes(weights.read_bytes()[:-1] + b"?")
    elif damage == "no-checksums":
        write_train(folder, files=None)
    elif damage == "failed-status":
        folder.write_status(JobResult("jax", "train", JobState.FAILED, reason="boom"))
    else:
        folder.file("jax", layout.status_name("train")).unlink()
    assert folder.earlier("jax", "train")[0] is None


def test_reading_a_truncated_result_says_what_to_do(tmp_path):
    folder = RunStore(tmp_path, "r1")
    write_train(folder)
    folder.file("jax", "train.json").write_text('{"schema": 1, "kind": "tr')
    with pytest.raises(ResultError, match="truncated or corrupt .*run the job again"):
        folder.read_result("jax", "train")


def test_reading_another_schema_names_both_versions(tmp_path):
    folder = RunStore(tmp_path, "r1")
    write_train(folder, schema=99)
    with pytest.raises(ResultError, match="schema version 99 but this harness reads version 1"):
        folder.read_result("jax", "train")


def test_clearing_a_phase_removes_its_outputs_and_half_written_files(tmp_path):
    folder = RunStore(tmp_path, "r1")
    write_train(folder)
    (folder.backend_dir("jax") / ".train.json.abc.tmp").write_text("half")
    (folder.backend_dir("jax") / "train.log").write_text("old log")
    folder.clear_phase("jax", "train")
    left = sorted(p.name for p in folder.backend_dir("jax").iterdir())
    assert left == ["train.log.previous"]


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    layout.atomic_write_json(str(tmp_path / "a.json"), {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with pytest.raises(ValueError):
        layout.atomic_write_json(str(tmp_path / "b.json"), {"x": float("nan")})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
