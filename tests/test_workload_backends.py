"""The workload on every backend this machine can run: real Keras, real processes, tiny data.

One session trains, predicts, checks the fidelity of, times and serves every
available backend on a 3-class image folder (36 training images), through the
real local executor and runtimes, with a model file of this test's own (two
layers, ``--model FILE``: the seed's CNN runs on every backend in CI's smoke
benchmark); the tests below check what it wrote. A backend that cannot run
here is skipped with its reason. ``test_model_backends.py`` runs a second
model file, one that the Keras lines build differently.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from harness import models as model_files
from harness import options
from harness.backends import BACKENDS
from harness.config import RunConfig
from harness.jobs import JobState
from harness.profiles import Profile
from harness.scoring import fidelity
from harness.session import BenchmarkRun
from harness.workload import layout
from tests.conftest import work_dir, write_image_folder

pytestmark = pytest.mark.slow

TINY = Profile(name="tiny", description="tests", n_train=24, n_val=6, n_test=12, epochs=2, batch_size=8,
               learning_rate=1e-3, predict_batch_size=4, job_timeout_s=900, seed=3, speed_steps=12,
               speed_predict_batches=3, serve_seconds=0.3, serve_sweep_seconds=0.1, serve_min_queries=20,
               serve_max_batch=8, serve_rate_trials=3)


TWO_LAYERS = '''
"""Two layers: a 3x3 convolution of 4 filters, then a softmax over the classes."""


def build(keras, input_shape, n_classes):
    inputs = keras.layers.Input(shape=tuple(input_shape))
    x = keras.layers.Conv2D(4, (3, 3), activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    return keras.models.Model(inputs, outputs)
'''


def make_config(shared, data, run_id="tiny", model=None) -> RunConfig:
    config = options.build_run(shared, backend="all", dataset=str(data), shared_dir=shared, run_id=run_id,
                               work_dir=work_dir(), reports_dir=shared / "reports", parallel=2, threads=1,
                               baselines=None)
    return dataclasses.replace(config, profile=TINY, **({"model": model} if model is not None else {}))


def two_layer_model(root):
    (root / "two_layers.py").write_text(TWO_LAYERS)
    return model_files.resolve(str(root / "two_layers.py"), root)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    # the ceiling's plumbing, not its value, is under test here: a short measurement per kernel
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("KBENCH_CEILING_SECONDS", "0.2")
    request_finalizer = monkeypatch.undo
    root = tmp_path_factory.mktemp("backends")
    data = write_image_folder(root / "data")
    session = BenchmarkRun(make_config(root / "shared", data, model=two_layer_model(root)), say=lambda line: None)
    session.start()
    try:
        analysis = session.finish()
    finally:
        session.close()
        request_finalizer()
    return session, analysis, root, data


@pytest.fixture(params=list(BACKENDS))
def backend(request, finished):
    session, _, _, _ = finished
    if request.param in session.skipped:
        pytest.skip(session.skipped[request.param])
    return request.param


def read(session, backend, name):
    return json.loads((session.store.backend_dir(backend) / name).read_text())


def test_every_phase_succeeds(finished, backend):
    session, _, _, _ = finished
    for phase in ("train", "predict", "fidelity", "speed", "serve"):
        result = session.result(backend, phase)
        assert result.state is JobState.SUCCEEDED, f"{backend}/{phase}: {result.reason}\n{result.log_tail}"


def test_training_records_metrics_timings_and_environment(finished, backend):
    session, _, _, _ = finished
    train = read(session, backend, "train.json")
    assert [h["epoch"] for h in train["history"]] == [1, 2]
    assert 0.0 <= train["final"]["train_accuracy"] <= 1.0
    assert np.isfinite(train["final"]["train_loss"])
    timing = train["timing"]
    assert timing["steady_images_per_s"] > 0 and len(timing["epoch_seconds"]) == 2
    assert timing["startup_s"] > 0 and timing["warmup_s"] is not None
    env = train["environment"]
    line = BACKENDS[backend].keras_line
    assert env["keras"].startswith("3." if line == "3" else "2.3.1")
    assert env["keras_backend"] == backend and env["backend_version"]
    assert env["cpu_model"] and env["python"]
    assert env["variables"]["KBENCH_THREADS"] == "1"


def test_prediction_writes_normalised_probabilities_and_latencies(finished, backend):
    session, _, _, _ = finished
    folder = session.store.backend_dir(backend)
    probs = np.load(folder / "probs_test.npy")
    assert probs.shape == (12, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert np.load(folder / "probs_val.npy").shape == (6, 3)
    timing = read(session, backend, "predict.json")["timing"]
    assert timing["images_per_s"] > 0 and timing["p50_ms"] <= timing["p99_ms"]


def test_progress_events_cover_every_epoch(finished, backend):
    session, _, _, _ = finished
    lines = (session.store.backend_dir(backend) / "train.events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["epoch"] for e in events if e["event"] == "epoch_end"] == [1, 2]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"


def test_every_backend_saw_the_same_data(finished):
    session, analysis, _, _ = finished
    ran = [b for b in BACKENDS if b not in session.skipped]
    prints = {read(session, b, "predict.json")["data"]["fingerprint"] for b in ran}
    assert len(prints) == 1 and analysis.fingerprint in prints
    labels = [np.load(session.store.backend_dir(b) / "labels_test.npy") for b in ran]
    assert all(np.array_equal(labels[0], other) for other in labels[1:])


def test_the_ensemble_covers_every_backend_that_ran(finished):
    session, analysis, _, _ = finished
    ran = {b for b in BACKENDS if b not in session.skipped}
    assert set(analysis.ensemble.members) == ran
    assert set(analysis.left_out) == set(session.skipped)
    assert (session.store.path / "ensemble.json").exists()


def test_a_second_session_of_the_same_run_reuses_every_finished_job(finished):
    _, _, root, data = finished
    again = BenchmarkRun(make_config(root / "shared", data, model=two_layer_model(root)), say=lambda line: None)
    again.start()
    try:
        again.finish()
        results = again.scheduler.results
    finally:
        again.close()
    assert results and all(r.reused for r in results.values())


def test_the_training_accuracy_in_inference_mode_is_recorded_beside_kerass(finished, backend):
    """Every backend scores the whole (tiny) training split itself; the seed's weights use that figure."""
    session, analysis, _, _ = finished
    final = read(session, backend, "train.json")["final"]
    assert 0.0 <= final["train_accuracy"] <= 1.0
    assert final["train_inference_sample"] == {"images": 24, "of": 24, "seed": TINY.seed}
    assert final["train_accuracy_inference"] * 24 == pytest.approx(round(final["train_accuracy_inference"] * 24))
    assert np.isfinite(final["train_loss_inference"])
    ran = [b for b in BACKENDS if b not in session.skipped]
    total = sum(read(session, b, "train.json")["final"]["train_accuracy_inference"] for b in ran)
    assert analysis.variants["seed"].weights[backend] == pytest.approx(
        final["train_accuracy_inference"] / total)


def test_the_fidelity_job_ran_every_members_weights_on_the_same_test_images(finished, backend):
    session, _, _, _ = finished
    ran = sorted(b for b in BACKENDS if b not in session.skipped)
    result = read(session, backend, "fidelity.json")
    assert sorted(result["sources"]) == ran and result["images"] == 12
    with np.load(session.store.backend_dir(backend) / layout.FIDELITY_PROBS) as stored:
        assert sorted(stored.files) == ran
        own = stored[backend]
    predicted = np.load(session.store.backend_dir(backend) / "probs_test.npy")
    np.testing.assert_allclose(own, predicted, atol=1e-6)  # the same model as its own predict job


def test_every_backend_computes_the_same_function_of_the_same_weights(finished):
    """The fidelity matrix over every backend that ran: within float32 tolerance everywhere."""
    session, analysis, _, _ = finished
    section = analysis.fidelity
    ran = sorted(b for b in BACKENDS if b not in session.skipped)
    if len(ran) < 2:
        pytest.skip("fewer than two backends can run here")
    assert section["backends"] == ran and section["problems"] == {}
    worst = {(a, b): cell["max_abs_dp"] for a in ran for b, cell in section["cells"][a].items() if a < b}
    assert section["passed"], f"{section['named']}; max |dp| per pair: {worst}"
    step = section["step"]
    assert step["available"] and step["passed"], (step["named"], step["largest"])
    assert step["largest"]["grad_rel"] <= fidelity.STEP_GRAD_RTOL and step["largest"]["loss_rel"] <= 1e-5
    # every backend measured how far float32 rounding alone moves its gradients (a ReLU within rounding
    # of zero may flip, so this is not always tiny; the tolerance it gives is capped)
    assert set(step["sensitivity"]) == set(ran)
    assert all(0 <= value < 1 for value in step["sensitivity"].values()), step["sensitivity"]


def events_of(session, backend, phase):
    path = session.store.backend_dir(backend) / layout.events_name(phase)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_no_timed_section_of_a_speed_or_serve_job_overlaps_any_other_job(finished):
    """The isolation rule, read from the events the jobs wrote: while a speed job timed its steps or a
    serve job its queries, no other job of the run (two at a time otherwise) had started and not yet ended."""
    session, _, _, _ = finished
    ran = [b for b in BACKENDS if b not in session.skipped]
    lifetimes = {}
    for backend in ran:
        for phase in layout.PHASES:
            events = events_of(session, backend, phase)
            if events:
                lifetimes[f"{backend}/{phase}"] = (events[0]["t"], events[-1]["t"])
    sections = []
    for backend in ran:
        for phase, least in (("speed", 2), ("serve", 1 + 2 + 1)):  # serve: SingleStream, batch 1 and 8, a rate
            events = events_of(session, backend, phase)
            starts = [e["t"] for e in events if e["event"] == "timed_start"]
            ends = [e["t"] for e in events if e["event"] == "timed_end"]
            assert len(starts) == len(ends) >= least, f"{backend}/{phase}: {len(starts)} timed sections"
            sections += [(f"{backend}/{phase}", s, e) for s, e in zip(starts, ends, strict=True)]
    for label, start, end in sections:
        beside = [other for other, (s, e) in lifetimes.items() if other != label and s < end and e > start]
        assert beside == [], f"{label} timed {start}-{end} while {beside} ran"
    overlapping = [(a, b) for a in sections for b in sections if a < b and a[1] < b[2] and b[1] < a[2]]
    assert overlapping == []


def test_the_speed_job_times_each_step_and_measures_its_own_kernels(finished, backend):
    session, analysis, _, _ = finished
    speed = read(session, backend, "speed.json")
    assert len(speed["train"]["step_s"]) == 12 and all(s > 0 for s in speed["train"]["step_s"])
    assert len(speed["predict"]["batch_s"]) == 3
    assert speed["settings"]["threads"] == 1
    kernels = speed["ceiling"]["kernels"]
    assert any(k.startswith("numpy-") for k in kernels) and backend in kernels
    assert kernels[backend].get("gflops") or kernels[backend].get("error"), "measured, or why not"
    row = analysis.speed["backends"][backend]
    summary = row["train"]["images_per_s"]
    assert summary["ci_low"] <= summary["median"] <= summary["ci_high"]
    assert row["configuration"]["threads"] == 1


def test_no_real_job_reaches_more_than_the_machines_ceiling(finished):
    """MFU above 100% would mean the ceiling is not the machine's best kernel: on real job results,
    every backend's training and inference MFU is at most 100%."""
    _, analysis, _, _ = finished
    section = analysis.speed
    assert section["available"] and section["above_ceiling"] == {}
    for name, row in section["backends"].items():
        for key in ("train_mfu", "inference_mfu"):
            assert row.get(key) is None or 0 < row[key] <= 1.0, (name, key, row.get(key))


def test_the_serve_job_runs_each_scenario_on_the_trained_weights_and_its_answers_match_predict(finished, backend):
    """Served with the weights the train job wrote, the answers kept during every timed run are the
    predict job's probabilities for the same images (within the fidelity tolerance)."""
    session, analysis, _, _ = finished
    served = read(session, backend, "serve.json")
    single = served["single_stream"]
    assert len(single["latency_s"]) >= 20 and single["duration_s"] >= 0.3 and single["first_query_s"] > 0
    assert [b["batch"] for b in served["offline"]["batches"]] == [1, 8]
    assert 1 <= len(served["server"]["trials"]) <= 3 and served["server"]["search"]["max_trials"] == 3
    assert served["first_answer_s"] > 0 and served["peak_rss_mb"] > 0 and served["fault"] is None
    assert served["settings"]["threads"] == 1
    with np.load(session.store.backend_dir(backend) / layout.SERVE_AUDIT) as kept:
        assert "single_stream__rows" in kept.files and "offline_b8__probs" in kept.files
    row = analysis.serving["backends"][backend]
    assert row["audit"]["passed"], row["audit"]["message"]
    assert max(r["max_abs_dp"] for r in row["audit"]["runs"].values()) <= 1e-4
    assert row["single_stream"]["validity"]["valid"] is False, "0.3 s is far below LoadGen's 10 s"
    assert row["first_query"]["single_stream_ms"] > 0


def test_every_result_names_the_model_file_and_counts_its_flops(finished, backend):
    """Conv 3x3x3->4 on 32x32 'valid' (30x30 out) with bias and ReLU, then Dense 3600->3 with bias and softmax."""
    session, analysis, root, _ = finished
    spec = two_layer_model(root)
    for phase in ("train", "predict"):
        assert read(session, backend, f"{phase}.json")["model"]["sha256"] == spec.sha256
    train = read(session, backend, "train.json")
    assert train["model"]["name"] == spec.name == "two-layers"
    conv = 2 * 30 * 30 * 9 * 3 * 4 + 30 * 30 * 4 + 30 * 30 * 4  # multiply-adds, bias, its ReLU
    dense = 2 * 3600 * 3 + 3 + 3
    assert train["flops"]["forward"] == conv + dense
    assert train["model"]["parameters"] == (9 * 3 * 4 + 4) + (3600 * 3 + 3)
    assert analysis.model_name == "two-layers"
