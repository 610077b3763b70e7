"""The speed gate (``harness.speed_gate``): distributions of step times compared, never single numbers.

Step times are synthetic, drawn from seeded lognormal distributions with the
occasional slow step (a garbage collection, another process), as a busy
machine measures them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.speed_gate import (
    GateVerdict,
    SpeedDataError,
    SpeedSample,
    fastest_process,
    judge,
    latest_in_store,
    read_samples,
    samples_from_benchmark_json,
)

BACKENDS = {"tensorflow": 18.0, "jax": 9.0, "torch": 30.0}  # median step ms


def steps(median_ms: float, n: int, seed: int, sigma: float = 0.12) -> list[float]:
    """``n`` step times around ``median_ms``, 3% of them two to four times slower."""
    rng = np.random.default_rng(seed)
    times = rng.lognormal(np.log(median_ms), sigma, size=n)
    slow = rng.random(n) < 0.03
    times[slow] *= rng.uniform(2.0, 4.0, size=int(slow.sum()))
    return times.tolist()


def run(seed: int, n: int = 100, scale: dict[str, float] | None = None, ceiling: float | None = 150.0,
        threads: int | None = 1, machine: str | None = "ci-runner-1") -> dict[str, SpeedSample]:
    """One benchmark run's speed samples; ``scale`` multiplies one backend's step times."""
    scale = scale or {}
    return {name: SpeedSample(name, steps(ms * scale.get(name, 1.0), n, seed * 100 + i), ceiling, threads, machine)
            for i, (name, ms) in enumerate(BACKENDS.items())}


def states(report) -> dict[str, str]:
    return {v.backend: v.state for v in report.verdicts}


# -- verdicts on synthetic distributions ---------------------------------------------------
@pytest.mark.parametrize("seed, n", [(1, 60), (2, 80), (3, 100), (4, 120), (5, 150), (6, 60)])
def test_two_runs_from_the_same_distribution_are_unchanged(seed, n):
    report = judge(run(seed, n), run(seed + 1000, n))
    assert set(states(report).values()) == {"unchanged"}
    assert not report.failed
    assert all(line.endswith("unchanged, within noise") or "unchanged" in line for line in report.lines())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_backend_25_percent_slower_is_a_regression_and_the_others_are_unchanged(seed):
    report = judge(run(seed), run(seed + 1000, scale={"jax": 1.25}))
    assert states(report) == {"jax": "slower", "tensorflow": "unchanged", "torch": "unchanged"}
    assert report.failed
    jax = next(v for v in report.verdicts if v.backend == "jax")
    assert 1.15 < jax.low < 1.25 < jax.high < 1.35
    line = next(line for line in report.lines() if line.startswith("jax:"))
    assert line.startswith("jax: 1.2") and "x slower (95% interval 1." in line
    assert line.endswith("x, threshold 10%): REGRESSION")
    assert report.summary().startswith("REGRESSION: ")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_slowdown_below_the_threshold_is_unchanged(seed):
    report = judge(run(seed), run(seed + 1000, scale={"torch": 1.05}))
    assert states(report)["torch"] == "unchanged" and not report.failed


def test_a_slowdown_surely_above_1_but_not_surely_beyond_the_threshold_says_so():
    report = judge(run(1, n=150), run(2, n=150, scale={"torch": 1.06}))
    torch = next(line for line in report.lines() if line.startswith("torch:"))
    assert torch.endswith("unchanged, not surely beyond the 10% threshold")


def test_a_faster_backend_is_reported_and_does_not_fail_the_gate():
    report = judge(run(1), run(2, scale={"tensorflow": 0.7}))
    assert states(report)["tensorflow"] == "faster" and not report.failed
    line = next(line for line in report.lines() if line.startswith("tensorflow:"))
    assert line.startswith("tensorflow: 1.4") and "x faster (95% interval" in line and "REGRESSION" not in line


def test_one_noisy_step_does_not_make_a_regression():
    base, candidate = run(1), run(2)
    spiky = candidate["jax"].step_ms[:-1] + [candidate["jax"].step_ms[0] * 50]
    candidate["jax"] = SpeedSample("jax", spiky, 150.0, 1, "ci-runner-1")
    assert states(judge(base, candidate))["jax"] == "unchanged"


def test_the_threshold_decides_how_large_a_change_counts():
    base, candidate = run(1), run(2, scale={"jax": 1.25})
    assert states(judge(base, candidate, threshold=0.10))["jax"] == "slower"
    assert states(judge(base, candidate, threshold=0.50))["jax"] == "unchanged"
    with pytest.raises(ValueError, match="positive fraction"):
        judge(base, candidate, threshold=0.0)


# -- machines, threads, backends -------------------------------------------------------------
def test_a_twice_slower_machine_is_no_regression_once_times_are_normalised_by_its_ceiling():
    base = run(1, ceiling=200.0, machine="fast-box")
    candidate = run(2, ceiling=100.0, machine="slow-box", scale=dict.fromkeys(BACKENDS, 2.0))
    report = judge(base, candidate)
    assert set(states(report).values()) == {"unchanged"}
    assert all(v.normalised for v in report.verdicts)
    assert all("ceiling-normalised" in line for line in report.lines())
    assert "ceiling-normalised step times: different machines (fast-box vs slow-box" in report.summary()


def test_differing_ceilings_alone_mean_another_machine():
    report = judge(run(1, ceiling=200.0, machine=None), run(2, ceiling=100.0, machine=None,
                                                            scale=dict.fromkeys(BACKENDS, 2.0)))
    assert all(v.normalised and v.state == "unchanged" for v in report.verdicts)
    assert "more than 5% apart" in report.summary()


def test_the_same_machine_compares_raw_times_and_says_so():
    report = judge(run(1, ceiling=150.0), run(2, ceiling=154.0))
    assert not any(v.normalised for v in report.verdicts)
    assert "raw step times: the same machine (ceilings 150 vs 154 GFLOP/s, within 5%)" in report.summary()


def test_without_a_ceiling_on_one_side_raw_times_are_compared_across_machines_and_the_verdict_says_so():
    report = judge(run(1, ceiling=None, machine="a"), run(2, ceiling=100.0, machine="b"))
    assert not any(v.normalised for v in report.verdicts)
    assert all("raw times across machines (a vs b)" in line for line in report.lines())


def test_different_thread_counts_are_not_compared():
    report = judge(run(1, threads=1), run(2, threads=2, scale={"jax": 1.5}))
    assert set(states(report).values()) == {"incomparable"} and not report.failed
    assert report.lines()[0] == ("jax: incomparable: measured with 1 thread(s) in the base and 2 in the "
                                 "candidate; rerun with the same --threads to compare")


def test_backends_in_only_one_run_are_new_or_gone():
    base, candidate = run(1), run(2)
    del base["torch"], candidate["tensorflow"]
    report = judge(base, candidate)
    assert states(report) == {"jax": "unchanged", "tensorflow": "gone", "torch": "new"}
    assert "torch: new: only in the candidate; nothing to compare against" in report.lines()


def test_a_single_timed_step_cannot_show_noise():
    base, candidate = run(1), run(2)
    candidate["jax"] = SpeedSample("jax", [9.0], 150.0, 1, "ci-runner-1")
    verdict = next(v for v in judge(base, candidate).verdicts if v.backend == "jax")
    assert verdict.state == "incomparable" and "at least 2" in verdict.reason


def test_an_identical_median_reads_as_the_same():
    verdict = GateVerdict("jax", "unchanged", ratio=1.0, low=0.97, high=1.03)
    assert verdict.line(0.1) == ("jax: the same median step time (1.00x, 95% interval 0.97-1.03x, "
                                 "threshold 10%): unchanged, within noise")


# -- pytest-benchmark JSON ---------------------------------------------------------------------
def benchmark_entry(case: str, backend: str, extra: dict) -> dict:
    """One entry of ``benchmarks`` as pytest-benchmark 5 writes it (stats abridged)."""
    return {
        "group": None, "name": f"{case}[{backend}]", "fullname": f"benchmarks/test_backends.py::{case}[{backend}]",
        "params": {"backend_name": backend}, "param": backend, "extra_info": extra,
        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 1, "max_time": 1.0,
                    "min_time": 5e-06, "warmup": False},
        "stats": {"min": 41.2, "max": 41.2, "mean": 41.2, "stddev": 0, "rounds": 1, "median": 41.2,
                  "iqr": 0.0, "q1": 41.2, "q3": 41.2, "iqr_outliers": 0, "stddev_outliers": 0, "outliers": "0;0",
                  "ld15iqr": 41.2, "hd15iqr": 41.2, "ops": 0.024, "total": 41.2, "iterations": 1},
    }


def benchmark_document(samples: dict[str, SpeedSample]) -> dict:
    entries = []
    for name, sample in samples.items():
        entries.append(benchmark_entry("test_train", name, {"steady_images_per_s": 1800.0, "job_wall_s": 41.2}))
        entries.append(benchmark_entry("test_speed", name, {"speed": {
            "train_step_ms": sample.step_ms, "ceiling_gflops": sample.ceiling_gflops, "threads": sample.threads,
            "machine": sample.machine}, "job_wall_s": 12.0}))
    return {
        "machine_info": {"node": "ci-runner-1", "processor": "x86_64", "machine": "x86_64",
                         "python_implementation": "CPython", "python_version": "3.11.9", "system": "Linux",
                         "cpu": {"count": 2, "brand_raw": "AMD EPYC"}},
        "commit_info": {"id": "d2596c4", "time": "2026-11-30T17:00:00+00:00", "dirty": False, "branch": "main"},
        "benchmarks": entries,
        "datetime": "2026-11-30T17:59:23.000000+00:00",
        "version": "5.3.1",
    }


def test_speed_samples_are_read_from_the_speed_cases_of_a_benchmark_json():
    samples = run(1, n=20)
    read = samples_from_benchmark_json(json.loads(json.dumps(benchmark_document(samples))))
    assert read == samples


def test_the_backend_comes_from_the_brackets_when_the_document_has_no_params():
    document = benchmark_document(run(1, n=5))
    for entry in document["benchmarks"]:
        entry.pop("param"), entry.pop("params")
    assert set(samples_from_benchmark_json(document)) == set(BACKENDS)


def test_each_model_is_gated_against_the_same_model_the_seeds_cnn_under_the_backend_alone():
    """``--model seed,resnet-small`` names cases [seed-jax] and [resnet-small-jax]; extra_info says the model."""
    document = benchmark_document(run(1, n=5))
    speed = next(e for e in document["benchmarks"] if e["name"] == "test_speed[jax]")
    for model in ("seed", "resnet-small"):
        entry = json.loads(json.dumps(speed))
        entry.update(name=f"test_speed[{model}-jax]", param=f"{model}-jax",
                     params={"model_name": model, "backend_name": "jax"})
        entry["extra_info"]["model"] = model
        document["benchmarks"].append(entry)
    document["benchmarks"].remove(speed)
    read = samples_from_benchmark_json(document)
    assert "jax" in read and "jax (resnet-small)" in read and "seed-jax" not in read
    assert read["jax (resnet-small)"].step_ms == read["jax"].step_ms


def test_speed_cases_without_speed_data_are_skipped():
    document = benchmark_document(run(1, n=5))
    for entry in document["benchmarks"]:
        if entry["param"] == "torch":
            entry["extra_info"] = {"job_wall_s": 3.0}
    assert set(samples_from_benchmark_json(document)) == {"tensorflow", "jax"}


@pytest.mark.parametrize("document, message", [
    ([], "not a pytest-benchmark JSON document"),
    ({"machine_info": {}}, "not a pytest-benchmark JSON document"),
    ({"benchmarks": ["test_speed[jax]"]}, "not an object"),
    ({"benchmarks": [benchmark_entry("test_speed", "jax", {"speed": {"train_step_ms": []}})]},
     "train_step_ms must be a non-empty list"),
    ({"benchmarks": [benchmark_entry("test_speed", "jax", {"speed": {"train_step_ms": [1.0, "x"]}})]},
     "train_step_ms must be a non-empty list"),
    ({"benchmarks": [benchmark_entry("test_speed", "jax", {"speed": {"train_step_ms": [1e308, 1e308]}})]},
     r"train_step_ms must be a non-empty list of positive step times in ms \(up to 1e\+09\)"),
    ({"benchmarks": [benchmark_entry("test_speed", "jax", {"speed": {"train_step_ms": [1.0], "threads": 1.5}})]},
     "threads must be a positive whole number"),
    ({"benchmarks": [benchmark_entry("test_speed", "jax", {"speed": {"train_step_ms": [1.0]}})] * 2},
     "two speed cases for jax"),
])
def test_a_document_that_is_not_usable_names_the_problem(document, message):
    with pytest.raises(SpeedDataError, match=message) as caught:
        samples_from_benchmark_json(document, "b.json")
    assert isinstance(caught.value, HarnessError) and "b.json" in str(caught.value)


def test_a_file_that_is_missing_not_json_or_without_speed_cases_is_one_message(tmp_path):
    with pytest.raises(SpeedDataError, match="no file .*missing.json"):
        read_samples(tmp_path / "missing.json")
    (tmp_path / "half.json").write_text('{"benchmarks": [')
    with pytest.raises(SpeedDataError, match="half.json is not JSON"):
        read_samples(tmp_path / "half.json")
    (tmp_path / "old.json").write_text(json.dumps({"benchmarks": [benchmark_entry("test_train", "jax", {})]}))
    with pytest.raises(SpeedDataError, match=r"no test_speed cases with speed data in .*old.json; run pytest "
                                             "benchmarks/ with --benchmark-json from a version that has the speed"):
        read_samples(tmp_path / "old.json")


# -- the pytest-benchmark store -------------------------------------------------------------------
def saved(store: Path, machine: str, name: str, mtime: float) -> Path:
    path = store / machine / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (mtime, mtime))
    return path


def test_the_latest_file_in_a_store_is_the_highest_run_number_then_the_newest(tmp_path):
    store = tmp_path / ".benchmarks"
    saved(store, "Linux-CPython-3.11-64bit", "0002_abc_20261129.json", 3000)
    third = saved(store, "Linux-CPython-3.11-64bit", "0003_def_20261130.json", 1000)
    saved(store, "Linux-CPython-3.11-64bit", "notes.json", 9000)
    assert latest_in_store(store) == third
    twin = saved(store, "Linux-CPython-3.11-64bit-b", "0003_xyz_20261130.json", 2000)
    assert latest_in_store(store) == twin


def test_the_candidate_in_the_same_store_is_not_its_own_base(tmp_path):
    store = tmp_path / ".benchmarks"
    base = saved(store, "m", "0001_a.json", 1000)
    candidate = saved(store, "m", "0002_b.json", 2000)
    assert latest_in_store(store, exclude=candidate) == base
    assert latest_in_store(store, exclude=base.parent / ".." / "m" / "0001_a.json") == candidate


def test_an_empty_store_has_no_latest_file(tmp_path):
    assert latest_in_store(tmp_path) is None
    assert latest_in_store(tmp_path / "absent") is None
    only = saved(tmp_path, "m", "0001_a.json", 1000)
    assert latest_in_store(tmp_path, exclude=only) is None


# -- best of several processes per side ------------------------------------------------------
def test_one_slow_process_of_unchanged_code_is_not_a_regression_when_each_side_has_several():
    """Measured: one TensorFlow process per side was 1.26x and then 1.30x slower for a README-only change."""
    slow_draw = run(2, scale={"tensorflow": 1.3})
    assert judge(run(1), slow_draw).failed  # one process per side: a false alarm
    candidate = fastest_process([slow_draw, run(3), run(4, scale={"tensorflow": 1.3}), run(5)])
    base = fastest_process([run(6), run(7, scale={"tensorflow": 1.3}), run(8), run(9)])
    assert not judge(base, candidate).failed


def test_a_real_slowdown_moves_every_process_and_the_fastest_too():
    candidate = fastest_process([run(s, scale={"jax": 1.25}) for s in (2, 3, 4, 5)])
    base = fastest_process([run(s) for s in (6, 7, 8, 9)])
    assert states(judge(base, candidate))["jax"] == "slower"


def test_the_fastest_process_is_chosen_per_backend():
    quick_jax, quick_torch = run(1, scale={"jax": 0.5}), run(2, scale={"torch": 0.5})
    best = fastest_process([quick_jax, quick_torch])
    assert best["jax"] is quick_jax["jax"] and best["torch"] is quick_torch["torch"]
    assert fastest_process([]) == {}


# -- watching the SingleStream p90 ------------------------------------------------------------
def latencies(p90_ms: float, n: int, seed: int) -> list[float]:
    """``n`` SingleStream latencies whose p90 is about ``p90_ms``: lognormal, 2% of them a stall."""
    rng = np.random.default_rng(seed)
    median = p90_ms / np.exp(1.2816 * 0.15)
    times = rng.lognormal(np.log(median), 0.15, size=n)
    stall = rng.random(n) < 0.02
    times[stall] *= rng.uniform(3.0, 10.0, size=int(stall.sum()))
    return times.tolist()


def serve_document(p90_ms: dict[str, float], seed: int, n: int = 2000) -> dict:
    entries = [benchmark_entry("test_serve", name, {"serve": {
        "single_stream_latency_ms": latencies(ms, n, seed * 10 + i), "threads": 1}, "job_wall_s": 20.0})
        for i, (name, ms) in enumerate(p90_ms.items())]
    return {"benchmarks": entries, "version": "5.3.1"}


SERVERS = {"tensorflow": 2.0, "jax": 1.4, "torch": 3.1}  # SingleStream p90 in ms


def p90_samples(seed: int, scale: dict[str, float] | None = None) -> dict[str, SpeedSample]:
    scale = scale or {}
    document = serve_document({k: v * scale.get(k, 1.0) for k, v in SERVERS.items()}, seed)
    return samples_from_benchmark_json(json.loads(json.dumps(document)), watch=("p90",))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_gate_watches_each_backends_singlestream_p90_as_a_distribution(seed):
    """``kbench gate --watch p90``: the p90 of each block of 50 queries, compared as the step times are.
    Two runs from the same distribution are unchanged; a backend whose tail is 30% slower regresses."""
    same = judge(p90_samples(seed), p90_samples(seed + 100))
    assert set(states(same)) == {f"{name} SingleStream p90" for name in SERVERS}
    assert set(states(same).values()) == {"unchanged"} and not same.failed
    slower = judge(p90_samples(seed), p90_samples(seed + 100, scale={"jax": 1.3}))
    assert states(slower) == {"jax SingleStream p90": "slower", "tensorflow SingleStream p90": "unchanged",
                              "torch SingleStream p90": "unchanged"}
    line = next(line for line in slower.lines() if line.startswith("jax SingleStream p90:"))
    assert "x slower (95% interval" in line and line.endswith("REGRESSION")


def test_the_p90_watch_takes_the_p90_of_blocks_of_50_queries():
    from harness.speed_gate import P90_BLOCK, p90_blocks

    values = [float(v) for v in range(1, 151)]  # three blocks of 50: 1-50, 51-100, 101-150
    assert P90_BLOCK == 50 and p90_blocks(values) == [46.0, 96.0, 146.0]
    assert p90_blocks(values[:120]) == values[:120], "fewer than 3 blocks: every latency"


def test_steps_and_p90_are_watched_together_or_apart():
    document = benchmark_document(run(1, n=20))
    document["benchmarks"] += serve_document({"jax": 1.4}, 1, n=200)["benchmarks"]
    assert set(samples_from_benchmark_json(document)) == set(BACKENDS)
    assert set(samples_from_benchmark_json(document, watch=("p90",))) == {"jax SingleStream p90"}
    assert set(samples_from_benchmark_json(document, watch=("steps", "p90"))) == set(BACKENDS) | {
        "jax SingleStream p90"}
    with pytest.raises(SpeedDataError, match="cannot watch p99; choose from steps, p90"):
        samples_from_benchmark_json(document, watch=("p99",))


def test_a_file_without_serve_cases_says_so_when_the_p90_is_watched(tmp_path):
    (tmp_path / "speed.json").write_text(json.dumps(benchmark_document(run(1, n=5))))
    with pytest.raises(SpeedDataError, match=r"no test_serve cases with serving data in .*speed.json; run pytest "
                                             "benchmarks/ with --benchmark-json from a version that has the serve"):
        read_samples(tmp_path / "speed.json", watch=("p90",))
    bad = {"benchmarks": [benchmark_entry("test_serve", "jax", {"serve": {"single_stream_latency_ms": []}})]}
    with pytest.raises(SpeedDataError, match="single_stream_latency_ms must be a non-empty list"):
        samples_from_benchmark_json(bad, "b.json", watch=("p90",))
