"""Fuzzing the harness's inputs: the contract holds for whatever a hostile user gives.

The contract: either one clear line (a ``HarnessError`` naming the fix) before
any job starts, or values the rest of the harness can use as they are; and a
result file is either used because it is sound or left out with the reason,
never crashing the analysis. Hypothesis generates profiles, run ids, option
values and result files (truncated, wrong shape, wrong dtype, NaN, random
bytes); each test's ``max_examples`` keeps the whole module well within a
minute in CI. Class names are fuzzed in ``tests/test_report_labels.py``.
"""
from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness import options, profiles
from harness.config import THREADS_PER_CORE
from harness.errors import ConfigError, HarnessError
from harness.jobs import JobResult, JobState
from harness.names import check_run_id
from harness.run_store import RunStore
from harness.run_store import checks as job_outputs
from harness.scoring.analysis import analyse
from harness.scoring.gather import gather
from harness.workload import layout
from tests.run_fixtures import CLASSES, RunSpec, write_run

FUZZ = settings(max_examples=int(os.environ.get("KBENCH_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

hostile_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def one_line(err: HarnessError) -> str:
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text
    return text


# -- profiles ---------------------------------------------------------------------------------------
profile_fields = [f for f in profiles.Profile.__dataclass_fields__]


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(profile_fields), hostile_scalars, min_size=1, max_size=3))
def test_fuzz_a_hostile_profile_is_one_line_naming_the_field_or_usable_as_it_is(tmp_path, changes):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(profiles.get("smoke").to_json(), **changes)))
    try:
        profile = profiles.get(str(path))
    except ConfigError as err:
        text = one_line(err)
        assert any(f"{name} " in text for name in changes), text
        return
    # accepted: every field is what the jobs will use it as, with no surprise left for them
    assert check_run_id(profile.name) == profile.name
    for name in ("epochs", "batch_size", "predict_batch_size"):
        assert type(getattr(profile, name)) is int and getattr(profile, name) >= 1
    assert type(profile.n_val) is int and profile.n_val >= 0
    assert all(v is None or (type(v) is int and v >= 1) for v in (profile.n_train, profile.n_test))
    assert math.isfinite(profile.learning_rate) and profile.learning_rate > 0
    assert math.isfinite(profile.job_timeout_s) and profile.job_timeout_s > 0
    np.random.RandomState(profile.seed + profile.epochs)  # the last epoch's seed is valid for numpy


# -- run ids ----------------------------------------------------------------------------------------
@FUZZ
@given(text=st.one_of(st.text(max_size=50), st.from_regex(r"[a-z0-9-]{1,42}\n?", fullmatch=True)))
def test_fuzz_a_run_id_is_a_plain_folder_name_or_refused_in_one_line(text):
    try:
        accepted = check_run_id(text)
    except ConfigError as err:
        assert "is not a safe name" in one_line(err)
        return
    assert accepted == text and 1 <= len(text) <= 40 and os.path.basename(text) == text
    assert text not in (".", "..") and text.isascii() and text == text.strip() and text.lower() == text


# -- option values ----------------------------------------------------------------------------------
option_text = st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 10**6).map(str),
                        st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "1", "2", "3.5", " 4 ", "9" * 30]))


@FUZZ
@given(threads=option_text, parallel=option_text, timeout=option_text, images=option_text,
       rerun=st.one_of(st.none(), st.text(max_size=20),
                       st.sampled_from(["jax", "jax/train", "jax/predict, torch", "all", "cntk", "jax/x"])))
def test_fuzz_option_values_are_one_line_or_sane(tmp_path, threads, parallel, timeout, images, rerun):
    try:
        cfg = options.build_run(tmp_path, backend="jax,torch", profile="smoke", executor="local", dataset="keras",
                                shared_dir=tmp_path, run_id="r1", work_dir=tmp_path, reports_dir=tmp_path,
                                threads=threads, parallel=parallel, job_timeout=timeout,
                                report_images=images, rerun=rerun)
    except ConfigError as err:
        one_line(err)
        return
    assert cfg.threads is None or 1 <= cfg.threads <= (os.cpu_count() or 1) * THREADS_PER_CORE
    assert cfg.parallel is None or cfg.parallel >= 1
    assert math.isfinite(cfg.timeout_s) and cfg.timeout_s > 0
    assert cfg.report_images >= 1
    assert {b for b, _ in cfg.rerun} <= {"jax", "torch"}
    assert all((b, "predict") in cfg.rerun for b, p in cfg.rerun if p == "train")


# -- result files -----------------------------------------------------------------------------------
BACKENDS = ("tensorflow", "jax")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    shared = tmp_path_factory.mktemp("shared")
    write_run(shared, RunSpec(backends=BACKENDS))
    return RunStore(shared, "synthetic1")


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def sound_probs(rows: int):
    return hnp.arrays(np.float32, (rows, len(CLASSES)), elements=st.floats(0, 1, width=32)).map(
        lambda a: (a + 1e-3) / (a + 1e-3).sum(axis=1, keepdims=True))


def hostile_files(original: bytes, rows: int):
    """What a probs_test.npy may hold after a crash, a hand edit or a full disk."""
    arrays = st.one_of(
        sound_probs(rows),
        hnp.arrays(hnp.floating_dtypes(), st.tuples(st.sampled_from([rows, rows - 1, 0]),
                                                    st.sampled_from([len(CLASSES), 9, 11, 1]))),
        hnp.arrays(hnp.integer_dtypes(), (rows, len(CLASSES))),
        hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=12)),
        sound_probs(rows).map(lambda a: np.where(a > 0.2, np.nan, a)),
        sound_probs(rows).map(lambda a: a * 3 - 1),
    )
    return st.one_of(
        arrays.map(npy_bytes),
        st.binary(max_size=200),
        st.integers(0, len(original) - 1).map(lambda n: original[:n]),
        st.integers(0, len(original) - 1).map(lambda n: original[:n] + bytes([original[n] ^ 0xFF]) + original[n + 1:]),
    )


@FUZZ
@given(data=st.data())
def test_fuzz_a_damaged_result_file_is_left_out_with_the_reason_or_sound(run, data):
    path = run.file("jax", layout.probs_name("test"))
    original = path.read_bytes()
    rows = int(np.load(path).shape[0])
    written = data.draw(hostile_files(original, rows))
    assume(written != original)
    try:
        path.write_bytes(written)
        statuses = {(b, p): JobResult(b, p, JobState.SUCCEEDED) for b in BACKENDS for p in layout.PHASES}
        results = gather(run, list(BACKENDS), statuses)
        analysis = analyse(results)  # never raises, whatever the file holds
        reused, why = run.earlier("jax", "predict")
        # the job's checksum no longer matches: never reused on resume, and why is one line
        assert reused is None and why and "\n" not in why
        if "jax" in results.usable:
            probs = results.members["jax"].probs["test"]
            labels = results.labels["test"]
            assert job_outputs.probs_problem(probs, labels, len(CLASSES), rows) is None
        else:
            assert results.left_out["jax"] and "\n" not in results.left_out["jax"]
            assert "jax" not in analysis.variants["seed"].members
        assert "tensorflow" in results.usable
    finally:
        path.write_bytes(original)
