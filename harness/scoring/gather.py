"""Read a finished run back from its folder into plain Python and numpy.

Everything downstream (the ensemble, baselines, the report) reads this model,
never the raw job output; the files themselves are read by the run store
(``harness.run_store``), which checks each one. A member whose files are missing, corrupt, from
another schema or from different data is left out with the reason, and the
rest are still used.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import phases
from harness.errors import ResultError
from harness.jobs import JobResult, JobState
from harness.run_store import RunStore


@dataclass
class Member:
    """One backend of a run, usable or not."""

    backend: str
    usable: bool = False
    reason: str = ""
    """Why the backend is not in the ensemble (failed, skipped, bad files)."""
    state: str = ""
    """``ok``, ``failed`` or ``skipped``."""
    train: dict | None = None
    predict: dict | None = None
    statuses: dict[str, JobResult] = field(default_factory=dict)
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    """Softmax outputs by split (``test``, ``val``)."""
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def train_accuracy(self) -> float | None:
        """The training accuracy the seed's weights use: the comparable one when the job measured it.

        That is the model's accuracy over the training split in inference mode,
        computed by the workload's numpy code the same way on every backend
        (``train_accuracy_inference``); Keras's own running figure (a mean over
        the epoch's batches, computed differently per backend and inflated by
        Keras 2.3.1's CNTK backend) only for results written before it existed.
        """
        final = (self.train or {}).get("final", {})
        comparable = final.get("train_accuracy_inference")
        return comparable if comparable is not None else final.get("train_accuracy")

    @property
    def train_accuracy_basis(self) -> str:
        """Which figure ``train_accuracy`` is: ``inference`` or ``keras``."""
        final = (self.train or {}).get("final", {})
        return "inference" if final.get("train_accuracy_inference") is not None else "keras"

    @property
    def fingerprint(self) -> str | None:
        return (self.predict or self.train or {}).get("data", {}).get("fingerprint")


@dataclass
class RunResults:
    run_id: str
    settings: dict
    members: dict[str, Member]
    labels: dict[str, np.ndarray]
    """Labels shared by every usable member, by split."""
    classes: list[str]
    fingerprint: str | None
    fidelity: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Fidelity outputs: runner backend -> weights' backend -> probabilities."""
    fidelity_images: int | None = None
    fidelity_problems: dict[str, str] = field(default_factory=dict)
    """Why a backend has no fidelity outputs (its job failed, was skipped, left bad files)."""
    steps: dict[str, dict] = field(default_factory=dict)
    """Each backend's one-step check (losses, reference weights), from its fidelity job."""
    step_grads: dict[str, list[np.ndarray]] = field(default_factory=dict)
    speed: dict[str, dict] = field(default_factory=dict)
    """Each backend's speed job result (``speed.json``): its step times measured alone, its ceiling."""
    speed_problems: dict[str, str] = field(default_factory=dict)
    """Why a backend has no speed figures (its job failed, was skipped, or the profile times none)."""
    serve: dict[str, dict] = field(default_factory=dict)
    """Each backend's serve job result (``serve.json``): its scenarios, measured alone."""
    serve_audits: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Each serve job's kept answers (``serve_audit.npz``), by array name."""
    serve_problems: dict[str, str] = field(default_factory=dict)
    """Why a backend has no serving figures (its job failed, was skipped, or the profile serves nothing)."""

    @property
    def usable(self) -> dict[str, Member]:
        return {name: m for name, m in self.members.items() if m.usable}

    @property
    def left_out(self) -> dict[str, str]:
        return {name: m.reason for name, m in self.members.items() if not m.usable}


NOT_PLANNED = ("not trained in this session: the selected benchmark cases need no train or predict job "
               "(run test_train and test_predict, or drop -k, to train it)")


def gather(folder: RunStore, backends: list[str], statuses: dict[tuple[str, str], JobResult],
           skipped: dict[str, str] | None = None) -> RunResults:
    """Load every backend's results; check they describe the same data."""
    skipped = skipped or {}
    settings = folder.read_settings() or {}
    members = {}
    for name in backends:
        member = Member(name, statuses={p: s for (b, p), s in statuses.items() if b == name})
        members[name] = member
        if name in skipped:
            member.state, member.reason = "skipped", skipped[name]
            continue
        failed = [s for p, s in member.statuses.items() if not s.ok and p in phases.member_phases()]
        if failed:
            first = failed[0]
            member.state = "skipped" if first.state is JobState.SKIPPED else "failed"
            member.reason = f"{first.label} {first.state.value}: {first.reason}"
            # a finished train is still worth showing in the report
            member.train = _try(folder.read_result, name, "train")
            continue
        planned = any(p in member.statuses for p in phases.member_phases())
        try:
            _load_member(folder, member)
            member.usable, member.state = True, "ok"
        except ResultError as err:
            if planned:
                member.state, member.reason = "failed", str(err)
            else:  # e.g. pytest -k test_speed: this session trained nothing, and no earlier one did
                member.state, member.reason = "skipped", NOT_PLANNED

    fingerprint = _agree_on_data(members)
    usable = [m for m in members.values() if m.usable]
    labels = dict(usable[0].labels) if usable else {}
    classes = (usable[0].predict or {}).get("data", {}).get("classes", []) if usable else []
    results = RunResults(folder.run_id, settings, members, labels, classes, fingerprint)
    _load_fidelity(folder, results, statuses)
    _load_speed(folder, results, statuses)
    _load_serve(folder, results, statuses)
    return results


def finished_run(store: RunStore) -> tuple[list[str], dict[tuple[str, str], JobResult], dict[str, str]]:
    """A finished run's backends, how each job ended, and the backends that never ran, from its store."""
    settings = store.read_settings()
    if settings is None:
        raise ResultError(f"{store.path} has no run.json; give the folder of a run (<shared>/runs/<run-id>)")
    backends = list(settings.get("backends", []))
    statuses = store.statuses(backends)
    return backends, statuses, skipped_of(backends, statuses)


def gather_finished(store: RunStore) -> RunResults:
    """Gather a finished run as its session did, from the files it left (tests, notebooks, scripts)."""
    return gather(store, *finished_run(store))


def skipped_of(backends: list[str], statuses: dict[tuple[str, str], JobResult]) -> dict[str, str]:
    """The backends of a finished run that never ran a job, each with why (its first skipped job's reason)."""
    skipped = {}
    for name in backends:
        states = [statuses.get((name, p)) for p in phases.names()]
        if all(s is None for s in states):
            skipped[name] = "no job ran for it in this run"
        elif all(s is None or s.state is JobState.SKIPPED for s in states):
            skipped[name] = next(s for s in states if s is not None).reason
    return skipped


def _ended_result(folder: RunStore, statuses: dict[tuple[str, str], JobResult], name: str,
                  phase: str) -> tuple[dict | None, str | None]:
    """A job's result file if it succeeded, else None and why (None, None: not planned in this run)."""
    status = statuses.get((name, phase))
    if status is None:
        return None, None
    if not status.ok:
        return None, f"{status.label} {status.state.value}: {status.reason}"
    try:
        return folder.read_result(name, phase), None
    except ResultError as err:
        return None, str(err)


NOT_TIMED = ("not timed in this session: the selected benchmark cases need no speed job "
             "(run test_speed, or drop -k, to time it)")


def _kept_result(folder: RunStore, statuses: dict[tuple[str, str], JobResult], name: str, phase: str,
                 fingerprint: str | None = None) -> tuple[dict | None, str | None]:
    """The result of a job this session did not plan (``pytest -k``) that an earlier session finished.

    Checked like any reused result (``RunStore.kept``): (result, None); (None,
    why) when it cannot be used; (None, None) when no session finished it or
    this session planned the job.
    """
    if (name, phase) in statuses:
        return None, None
    result, why = folder.kept(name, phase, fingerprint)
    if result is None:
        return None, (f"an earlier session's {name}/{phase} result cannot be used: {why}" if why else None)
    return result, None


def _load_speed(folder: RunStore, results: RunResults, statuses: dict[tuple[str, str], JobResult]) -> None:
    """Every backend's speed result whose job succeeded; the others with the reason.

    A speed job not planned in this session (``pytest -k``) keeps the figures an
    earlier session of the run timed: a speed job trains its own model from
    scratch, so its result depends on nothing this session changed.
    """
    timed = int(((results.settings.get("profile") or {}).get("speed_steps")) or 0) > 0
    for name in results.members:
        result, problem = _ended_result(folder, statuses, name, "speed")
        if result is None and problem is None and (name, "speed") not in statuses and timed:
            # (a speed result records no data fingerprint to check)
            result, why = _kept_result(folder, statuses, name, "speed")
            problem = None if result is not None else (f"{NOT_TIMED}; {why}" if why else NOT_TIMED)
        if result is None:
            if problem:
                results.speed_problems[name] = problem
            continue
        steps = (result.get("train") or {}).get("step_s")
        if not isinstance(steps, list) or not steps or not all(isinstance(s, (int, float)) for s in steps):
            results.speed_problems[name] = (f"{name}'s speed.json holds no step times; run it again "
                                            f"(--rerun {name}/speed)")
            continue
        results.speed[name] = result


NOT_SERVED = ("not served in this session: the selected benchmark cases need no serve job "
              "(run test_serve, or drop -k, to serve it)")


def _load_serve(folder: RunStore, results: RunResults, statuses: dict[tuple[str, str], JobResult]) -> None:
    """Every backend's serve result whose job succeeded, with its kept answers; the others with the reason.

    A serve job this session did not plan (``pytest -k test_speed``) keeps what
    an earlier session of the run served, checked like any reused result.
    """
    served = float(((results.settings.get("profile") or {}).get("serve_seconds")) or 0) > 0
    for name in results.members:
        result, problem = _ended_result(folder, statuses, name, "serve")
        if result is None and problem is None and (name, "serve") not in statuses and served:
            result, why = _kept_result(folder, statuses, name, "serve", results.fingerprint)
            problem = None if result is not None else (f"{NOT_SERVED}; {why}" if why else NOT_SERVED)
        if result is None:
            if problem:
                results.serve_problems[name] = problem
            continue
        single = result.get("single_stream") if isinstance(result.get("single_stream"), dict) else {}
        latency = single.get("latency_s")
        if not isinstance(latency, list) or not latency or not all(isinstance(s, (int, float)) for s in latency) \
                or not isinstance(result.get("offline"), dict) or not isinstance(result.get("server"), dict):
            results.serve_problems[name] = (f"{name}'s serve.json holds no SingleStream latencies, Offline or "
                                            f"Server figures; run it again (--rerun {name}/serve)")
            continue
        try:
            results.serve_audits[name] = folder.serve_audit(name, result)
        except ResultError as err:
            results.serve_problems[name] = str(err)
            continue
        results.serve[name] = result


def _load_fidelity(folder: RunStore, results: RunResults, statuses: dict[tuple[str, str], JobResult]) -> None:
    """Every backend's fidelity outputs whose job succeeded on the run's data; the rest with reasons.

    A fidelity job this session did not plan keeps what an earlier session of
    the run checked, as long as every member's weights it ran are still the
    members' weights (a member trained again since makes it stale).
    """
    for name in results.members:
        result, problem = _ended_result(folder, statuses, name, "fidelity")
        if result is None and problem is None:
            result, problem = _kept_result(folder, statuses, name, "fidelity", results.fingerprint)
        if result is None:
            if problem:
                results.fidelity_problems[name] = problem
            continue
        try:
            if result.get("data", {}).get("fingerprint") != results.fingerprint:
                raise ResultError(f"{name}'s fidelity check ran on other data than the run's; run it again")
            outputs = folder.fidelity_outputs(name, result)
            step = result.get("step")
            if isinstance(step, dict):
                results.step_grads[name] = folder.step_gradients(name, step)
                results.steps[name] = step
        except ResultError as err:
            results.fidelity_problems[name] = str(err)
            continue
        except (OSError, ValueError, EOFError) as err:
            results.fidelity_problems[name] = f"{name}'s fidelity outputs are unreadable ({err}); run it again"
            continue
        results.fidelity[name] = outputs
        results.fidelity_images = result.get("images")


def _load_member(folder: RunStore, member: Member) -> None:
    name = member.backend
    member.train = folder.read_result(name, "train")
    member.predict = folder.read_result(name, "predict")
    for split, (probs, labels) in folder.outputs(name, member.predict).items():
        member.probs[split] = probs.astype(np.float64)
        member.labels[split] = labels.astype(np.int64)
    if "test" not in member.probs:
        raise ResultError(f"{name}'s predict.json lists no test outputs; run the predict job again")
    if member.train.get("data", {}).get("fingerprint") != member.predict.get("data", {}).get("fingerprint"):
        raise ResultError(f"{name} was trained and evaluated on different data (fingerprints differ); "
                          "run both phases again")


def _agree_on_data(members: dict[str, Member]) -> str | None:
    """The data fingerprint of most usable members; others are left out, never silently used."""
    usable = [m for m in members.values() if m.usable]
    if not usable:
        return None
    common, _ = Counter(m.fingerprint for m in usable).most_common(1)[0]
    reference = next(m for m in usable if m.fingerprint == common)
    for member in usable:
        if member.fingerprint != common:
            member.usable, member.state = False, "failed"
            member.reason = (f"its data fingerprint {str(member.fingerprint)[:12]} differs from the run's "
                             f"{common[:12]}; it saw other images: re-run it in this run")
        elif any(not np.array_equal(member.labels[s], reference.labels[s]) for s in reference.labels
                 if s in member.labels):
            member.usable, member.state = False, "failed"
            member.reason = "its labels differ from the other members'; re-run its predict job"
    return common


def _try(read, *args) -> Any:
    try:
        return read(*args)
    except ResultError:
        return None


SHARED_NOTE = ("measured inside the training job, which may have shared the machine with other jobs of "
               "the run; the backend's own speed is its test_speed case's, timed alone")


def job_figures(result_json: dict | None, phase: str) -> dict[str, Any]:
    """The figures measured inside a job, flat, for pytest-benchmark's extra_info."""
    if not result_json:
        return {}
    timing = result_json.get("timing", {})
    cost = result_json.get("flops", {})
    common = {
        "peak_rss_mb": result_json.get("peak_rss_mb"),
        "data_fingerprint": result_json.get("data", {}).get("fingerprint"),
    }
    if phase == "train":
        final = result_json.get("final", {})
        return {
            "training_job_images_per_s": timing.get("steady_images_per_s"),
            "training_job_images_per_s_note": SHARED_NOTE,
            "training_job_images_per_s_basis": timing.get("steady_basis"),
            "epoch_seconds": timing.get("epoch_seconds"),
            "first_epoch_s": timing.get("first_epoch_s"),
            "warmup_s": timing.get("warmup_s"),
            "startup_s": timing.get("startup_s"),
            "data_load_s": timing.get("data_load_s"),
            "train_accuracy": final.get("train_accuracy"),
            "train_loss": final.get("train_loss"),
            "test_accuracy": final.get("test_accuracy"),
            "train_flops_per_image": cost.get("train"),
            **common,
        }
    return {
        "predict_job_images_per_s": timing.get("images_per_s"),
        "predict_job_images_per_s_note": SHARED_NOTE.replace("training job", "predict job"),
        "latency_p50_ms": timing.get("p50_ms"),
        "latency_p90_ms": timing.get("p90_ms"),
        "latency_p99_ms": timing.get("p99_ms"),
        "warmup_s": timing.get("warmup_s"),
        "startup_s": timing.get("startup_s"),
        "test_accuracy": result_json.get("test", {}).get("accuracy"),
        "forward_flops_per_image": cost.get("forward"),
        **common,
    }

