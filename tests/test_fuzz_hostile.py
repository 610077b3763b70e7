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
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness import options, profiles
from harness.config import THREADS_PER_CORE
from harness.errors import ConfigError, HarnessError
from harness.jobs import JobResult, JobState
from harness.names import check_run_id
from harness.run_store import RunStore, values
from harness.run_store import checks as job_outputs
from harness.scoring.analysis import analyse
from harness.scoring.gather import gather
from harness.workload import layout
from tests.run_fixtures import CLASSES, RunSpec, write_run

FUZZ = settings(max_examples=int(os.environ.get("KBENCH_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_REPORTS = settings(FUZZ, max_examples=int(os.environ.get("KBENCH_FUZZ_EXAMPLES", "25")),
                        phases=[Phase.explicit, Phase.reuse, Phase.generate])
"""For tests whose every example analyses a run and renders its report (~0.1 s): fewer by default, no shrinking."""

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


# -- hand-edited result files -------------------------------------------------------------------------
RESULT_PHASES = ("train", "predict", "fidelity", "speed", "serve")
hostile_values = st.one_of(
    hostile_scalars, st.sampled_from([7.0, -1.0, 1e308, -1e308, 0.0, 1.5, "abc", "", [], {}, [1.0, "x"]]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def json_paths(node, prefix=()):
    """Every place in a JSON tree (the first items of each list), the root left out."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:2]):
            yield from json_paths(value, (*prefix, i))


def edited(result: dict, path: tuple, value) -> dict:
    copy = json.loads(json.dumps(result))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-backend run whose every job has its result, status and checksums."""
    shared = tmp_path_factory.mktemp("edited")
    write_run(shared, RunSpec(backends=BACKENDS))
    return RunStore(shared, "synthetic1")


CHARTS = ("accuracy", "learning_curves", "speed", "reliability", "confusion", "serving_latency",
          "offline_throughput", "server_p99", "history")


def report_of(store: RunStore):
    """The run's analysis and both reports, all but matplotlib's drawing (the charts' data is still gathered:
    drawing is the same code for any numbers, and slow)."""
    from harness.report import charts, render
    from harness.run_end import reanalyse

    analysis = reanalyse(store)
    with pytest.MonkeyPatch.context() as patch:
        for name in CHARTS:
            patch.setattr(charts, name, lambda *args, **kwargs: None)
        render.render_reports(analysis)
    return analysis


@FUZZ_REPORTS
@given(data=st.data(), rewritten=st.booleans())
def test_fuzz_a_hand_edited_result_file_is_reused_sound_or_refused_with_a_line(finished, data, rewritten):
    """Any field of train.json, predict.json, fidelity.json, speed.json or serve.json set to any value: by
    hand (its status's checksum no longer matches) or as if the job had written it (checksum rewritten)."""
    phase = data.draw(st.sampled_from(RESULT_PHASES))
    result_path = finished.file("jax", layout.result_name(phase))
    status_path = finished.file("jax", layout.status_name(phase))
    originals = result_path.read_bytes(), status_path.read_bytes()
    result = json.loads(originals[0])
    where = data.draw(st.sampled_from(sorted(json_paths(result), key=str)))
    changed = edited(result, where, data.draw(hostile_values))
    text = json.dumps(changed, indent=2, sort_keys=True)
    assume(json.loads(text) != result or rewritten)
    try:
        result_path.write_text(text)
        if rewritten:
            finished.write_status(finished.read_status("jax", phase))
        reused, why = finished.earlier("jax", phase)
        if reused is None:
            assert why and "\n" not in why, why
        else:
            assert rewritten, "a hand edit is never reused"
            assert values.problem(phase, finished.read_result("jax", phase)) is None
        analysis = report_of(finished)
        member = analysis.members["jax"]
        assert member.ok or (member.reason and "\n" not in member.reason)
        assert analysis.members["tensorflow"].ok
    finally:
        result_path.write_bytes(originals[0])
        status_path.write_bytes(originals[1])


# -- history lines --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def history_line(finished) -> dict:
    from harness import history
    from harness.run_end import reanalyse

    return history.entry(reanalyse(finished))


@FUZZ
@given(data=st.data())
def test_fuzz_a_history_line_of_valid_json_with_any_value_is_read_or_skipped_with_a_line(history_line, data,
                                                                                         tmp_path_factory):
    """A history line with any field set to any value: the report and `kbench history` use it or skip it."""
    from harness import history
    from harness.report import tables

    where = data.draw(st.sampled_from(sorted(json_paths(history_line), key=str)))
    line = edited(history_line, where, data.draw(hostile_values))
    folder = tmp_path_factory.mktemp("history")
    (folder / "smoke.jsonl").write_text(json.dumps(history_line) + "\n" + json.dumps(line) + "\n")
    loaded = history.load(folder, "smoke")
    assert len(loaded.entries) + len(loaded.problems) >= 1 and all("\n" not in p for p in loaded.problems)
    tables.history_rows(loaded.entries, "synthetic1", ["tensorflow", "jax"])
    for entry in loaded.entries:
        cli_line = __import__("harness.cli", fromlist=["history_line"]).history_line(entry)
        assert "\n" not in cli_line


# -- kbench's options -----------------------------------------------------------------------------
kbench_value = st.one_of(st.text(max_size=12), st.sampled_from(
    ["-5", "0", "1", "nan", "1e309", "seed", "fitted+T", "bogus", "../../etc/passwd", "/dev/null", "", " ", "10%"]))


@settings(FUZZ_REPORTS, max_examples=int(os.environ.get("KBENCH_FUZZ_EXAMPLES", "12")))  # ~0.25 s each
@given(data=st.data())
def test_fuzz_kbench_options_are_one_line_or_do_their_work(finished, data, tmp_path_factory, capsys):
    """`kbench report`, `history` and `gate` with any option values: exit 0, or one line (exit 1, or 2 for
    argparse's usage errors); never a traceback. Run from a scratch folder, two levels down: a relative
    folder it is given ("nan", "..") is made there, never in the checkout."""
    from harness import cli

    command = data.draw(st.sampled_from(["report", "history", "gate"]))
    out = tmp_path_factory.mktemp("kbench")
    (out / "a" / "b").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out / "a" / "b")
        _kbench_with(finished, data, command, out, capsys, cli)


def _kbench_with(finished, data, command, out, capsys, cli):
    if command == "report":
        flags = ["--ensemble", "--report-images", "--reports-dir", "--history-dir", "--baselines"]
        argv = ["report", str(finished.path), "--reports-dir", str(out)]
    elif command == "history":
        flags = ["--profile", "--model", "--limit", "--history-dir"]
        argv = ["--shared-dir", str(finished.shared), "history"]
    else:
        flags = ["--threshold", "--watch"]
        argv = ["gate", str(out / "base.json"), str(out / "candidate.json")]
    for flag in data.draw(st.lists(st.sampled_from(flags), unique=True, max_size=3)):
        value = data.draw(kbench_value)
        if flag.endswith("-dir") or flag == "--baselines":  # anywhere, but never outside the scratch folder
            assume(not value.startswith(("/", "~")) and ".." not in value.replace("../../etc/passwd", ""))
        argv += [flag, value]
    assume(not any(value.startswith("-") and value[1:2].isalpha() for value in argv[1:]))  # not a flag
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err
    assert code in (0, 1, 2), code
    if code == 1:
        assert said.err.startswith("kbench: ") and said.err.count("\n") == 1, said.err
