"""The scheduler: a few jobs at a time, predict after its train, failures contained.

An in-process executor stands in for real jobs: the scheduler is pure
coordination and these tests check its rules, not job execution.
"""
from __future__ import annotations

import threading
import time

from harness.backends import get
from harness.executors.base import Executor, ExecutorContext
from harness.jobs import JobResult, JobSpec, JobState
from harness.scheduler import Scheduler


class ScriptedExecutor(Executor):
    name = "scripted"

    def __init__(self, outcomes=None, seconds=0.05):
        super().__init__(ExecutorContext(None, None, None), {})
        self.outcomes = outcomes or {}
        self.seconds = seconds
        self.running = 0
        self.most_at_once = 0
        self.order: list[str] = []
        self.lock = threading.Lock()

    def run(self, job, on_event):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.order.append(job.label)
        on_event(job, {"event": "start"})
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            time.sleep(0.01)
        with self.lock:
            self.running -= 1
        outcome = self.outcomes.get(job.label, JobState.SUCCEEDED)
        if outcome == "raise":
            raise RuntimeError("executor bug")
        if self.stop_requested.is_set():
            outcome = JobState.CANCELLED
        return JobResult(job.backend.name, job.phase, outcome, reason="" if outcome is JobState.SUCCEEDED else "x")


def plan(*backends):
    return [JobSpec("r", get(b), phase, {}, 60, 1) for phase in ("train", "predict") for b in backends]


def test_no_more_than_the_parallel_limit_run_at_once():
    ex = ScriptedExecutor()
    Scheduler(ex, plan("tensorflow", "jax", "torch"), parallel=2).run_all()
    assert ex.most_at_once == 2


def test_one_at_a_time_runs_in_plan_order():
    ex = ScriptedExecutor()
    Scheduler(ex, plan("tensorflow", "jax"), parallel=1).run_all()
    assert ex.order == ["tensorflow/train", "jax/train", "tensorflow/predict", "jax/predict"]


def test_predict_waits_for_its_own_train():
    ex = ScriptedExecutor()
    Scheduler(ex, plan("tensorflow", "jax"), parallel=4).run_all()
    for backend in ("tensorflow", "jax"):
        assert ex.order.index(f"{backend}/train") < ex.order.index(f"{backend}/predict")


def test_a_failed_train_skips_its_predict_and_spares_the_others():
    ex = ScriptedExecutor({"jax/train": JobState.FAILED})
    results = Scheduler(ex, plan("tensorflow", "jax"), parallel=2).run_all()
    assert results[("jax", "predict")].state is JobState.SKIPPED
    assert results[("jax", "predict")].reason == "not run because train failed: x"
    assert results[("tensorflow", "predict")].ok
    assert "jax/predict" not in ex.order


def test_an_executor_that_raises_gives_a_failed_result_not_a_hang():
    ex = ScriptedExecutor({"jax/train": "raise"})
    result = Scheduler(ex, plan("jax"), parallel=1).result("jax", "train")
    assert result.state is JobState.FAILED
    assert result.reason == "the scripted executor failed: RuntimeError: executor bug"


def test_jobs_already_done_are_not_run_again():
    ex = ScriptedExecutor()
    done = {("jax", "train"): JobResult("jax", "train", JobState.SUCCEEDED, reused=True)}
    Scheduler(ex, plan("jax"), parallel=1, done=done).run_all()
    assert ex.order == ["jax/predict"]


def test_cancel_stops_running_jobs_and_marks_the_rest_cancelled():
    ex = ScriptedExecutor(seconds=30)
    scheduler = Scheduler(ex, plan("tensorflow", "jax"), parallel=1)
    threading.Timer(0.3, ex.cancel_all).start()  # as Ctrl-C reaching the executor
    started = time.monotonic()
    first = scheduler.result("tensorflow", "train")
    scheduler.cancel()  # what the session does next, on the same thread
    assert first.state is JobState.CANCELLED
    assert time.monotonic() - started < 5
    assert {scheduler.results[key].state for key in scheduler.keys} <= {JobState.CANCELLED, JobState.SKIPPED}
    assert ex.order == ["tensorflow/train"]


def test_events_and_results_are_delivered_on_the_waiting_thread():
    seen = []
    ex = ScriptedExecutor()
    waiting = threading.current_thread()
    scheduler = Scheduler(ex, plan("jax"), parallel=1,
                          on_event=lambda job, e: seen.append(("event", threading.current_thread() is waiting)),
                          on_result=lambda r: seen.append(("result", threading.current_thread() is waiting)))
    scheduler.run_all()
    assert seen and all(on_waiting_thread for _, on_waiting_thread in seen)


def test_draining_runs_nothing_new_and_marks_the_rest_not_selected():
    ex = ScriptedExecutor()
    scheduler = Scheduler(ex, plan("tensorflow", "jax"), parallel=1)
    scheduler.result("tensorflow", "train")
    results = scheduler.drain()
    assert ex.order == ["tensorflow/train"]
    assert results[("jax", "predict")].state is JobState.SKIPPED
    assert results[("jax", "predict")].reason == "not selected in this session"


def test_fidelity_starts_only_after_every_train_has_ended_and_runs_despite_a_failed_one():
    """A fidelity check runs every member's weights: it waits for the last train, failed or not."""
    ex = ScriptedExecutor(outcomes={"jax/train": JobState.FAILED})
    jobs = [JobSpec("r", get(b), phase, {}, 60, 1) for phase in ("train", "predict", "fidelity")
            for b in ("tensorflow", "jax", "torch")]
    results = Scheduler(ex, jobs, parallel=4).run_all()
    last_train = max(ex.order.index(f"{b}/train") for b in ("tensorflow", "jax", "torch"))
    for backend in ("tensorflow", "torch"):
        assert ex.order.index(f"{backend}/fidelity") > last_train
        assert results[(backend, "fidelity")].state is JobState.SUCCEEDED
    assert "jax/fidelity" not in ex.order
    assert results[("jax", "fidelity")].state is JobState.SKIPPED
    assert "not run because train failed" in results[("jax", "fidelity")].reason


class IntervalExecutor(ScriptedExecutor):
    """Records when each job ran, so overlaps can be read off afterwards."""

    def __init__(self, seconds_by_phase):
        super().__init__()
        self.seconds_by_phase = seconds_by_phase
        self.spans: dict[str, tuple[float, float]] = {}

    def run(self, job, on_event):
        self.seconds = self.seconds_by_phase.get(job.phase, 0.05)
        started = time.monotonic()
        result = super().run(job, on_event)
        self.spans[job.label] = (started, time.monotonic())
        return result


def full_plan(*backends):
    return [JobSpec("r", get(b), phase, {}, 60, 1) for phase in ("train", "predict", "fidelity", "speed")
            for b in backends]


def test_a_speed_job_runs_alone_and_nothing_starts_beside_it():
    """The isolation rule: a speed job's span overlaps no other job's, whatever the parallel limit."""
    ex = IntervalExecutor({"train": 0.15, "predict": 0.05, "fidelity": 0.05, "speed": 0.1})
    results = Scheduler(ex, full_plan("tensorflow", "jax", "torch"), parallel=3).run_all()
    assert all(r.ok for r in results.values())
    assert ex.most_at_once == 3, "the other phases still run in parallel"
    for label, (start, end) in ex.spans.items():
        if not label.endswith("/speed"):
            continue
        overlapping = [other for other, (s, e) in ex.spans.items() if other != label and s < end and e > start]
        assert overlapping == [], f"{label} shared the machine with {overlapping}"


def test_speed_jobs_wait_for_the_parallel_jobs_that_can_start_rather_than_hold_them_up():
    ex = IntervalExecutor({"train": 0.1, "predict": 0.05, "fidelity": 0.05, "speed": 0.05})
    Scheduler(ex, full_plan("tensorflow", "jax"), parallel=2).run_all()
    first_speed = min(i for i, label in enumerate(ex.order) if label.endswith("/speed"))
    assert all(label.endswith("/speed") for label in ex.order[first_speed:]), ex.order
