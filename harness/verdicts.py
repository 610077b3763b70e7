"""How each benchmark case of a run is judged: passed, failed or skipped, with one line and its figures.

Without pytest: a ``Verdict`` says the outcome, the message, the figures
measured (for pytest-benchmark's ``extra_info``) and the durations to record
as benchmark rounds. The pytest plugin only turns it into a pass, a
``pytest.fail`` or a ``pytest.skip``; a script can read it as it is
(``judge(run, "ensemble")``).

One function per case, keyed by the phase it checks (``harness.phases``'s
``case``) or ``ensemble``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import baselines
from harness.errors import HarnessError
from harness.jobs import JobResult, JobState, reasons_once
from harness.scoring import speed as speed_scoring
from harness.scoring.gather import job_figures
from harness.scoring.serving import serve_figures

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
SPEED_BLOCK_STEPS = 10
"""Steady training steps per pytest-benchmark round of a speed case."""


@dataclass
class Verdict:
    """A case's outcome and what it measured."""

    outcome: str = PASSED
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    """Figures measured by the job, for the benchmark JSON's ``extra_info``."""
    rounds: list[float] | None = None
    """Seconds to record as pytest-benchmark rounds (a job's wall time, a speed job's step blocks)."""
    job: JobResult | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED


def _skip(message: str) -> Verdict:
    return Verdict(SKIPPED, message)


def _fail(message: str, verdict: Verdict | None = None) -> Verdict:
    verdict = verdict or Verdict()
    verdict.outcome, verdict.message = FAILED, message
    return verdict


def job_failure(result: JobResult) -> str:
    """A job's one-line reason and its log tail."""
    text = f"{result.label} {result.state.value}: {result.reason}"
    if result.log_tail:
        text += "\n--- last lines of the job's log ---\n" + result.log_tail
    return text


def _ended(run: Any, backend: str, phase: str) -> tuple[JobResult, Verdict | None]:
    """The job's result, and the verdict already reached when it did not succeed."""
    result = run.result(backend, phase)
    if result.state is JobState.SKIPPED:
        # not run: the backend cannot run here, its train failed (that case fails), or
        # --emit-manifests only wrote what would be submitted
        return result, _skip(result.reason)
    if not result.ok:
        return result, _fail(job_failure(result))
    return result, None


def _timed(run: Any, result: JobResult, figures: dict[str, Any]) -> Verdict:
    """A verdict that records the job's own wall time (jobs may run in parallel: timing the wait would
    be wrong) and the figures measured inside it."""
    model = run.config.model
    shown = {"model": model.name, "model_sha256": model.sha256, **{k: v for k, v in figures.items() if v is not None},
             "job_wall_s": result.wall_s, "reused_from_earlier_session": result.reused}
    return Verdict(figures=shown, rounds=[float(result.wall_s)] if result.wall_s is not None else None, job=result)


def _result_json(run: Any, backend: str, phase: str) -> tuple[dict | None, Verdict | None]:
    try:
        return run.result_json(backend, phase), None
    except HarnessError as err:
        return None, _fail(f"{backend}/{phase} ended but its result cannot be used: {err}")


def train(run: Any, backend: str | None) -> Verdict:
    """The backend trained the model and wrote its weights, at a steady rate it measured."""
    result, ended = _ended(run, backend, "train")
    if ended:
        return ended
    data, bad = _result_json(run, backend, "train")
    if bad:
        return bad
    figures = job_figures(data, "train")
    verdict = _timed(run, result, figures)
    if not figures.get("training_job_images_per_s"):
        basis = (data.get("timing") or {}).get("steady_basis")
        return _fail(f"{backend}/train measured no steady training rate"
                     + (f" ({basis})" if isinstance(basis, str) and basis.startswith("none") else ""), verdict)
    return verdict


def predict(run: Any, backend: str | None) -> Verdict:
    """The backend wrote softmax outputs for every test image, as accurate as its baseline."""
    result, ended = _ended(run, backend, "predict")
    if ended:
        return ended
    data, bad = _result_json(run, backend, "predict")
    if bad:
        return bad
    figures = job_figures(data, "predict")
    verdict = _timed(run, result, figures)
    if not figures.get("predict_job_images_per_s"):
        return _fail(f"{backend}/predict measured no inference rate", verdict)
    if run.config.record_baseline:
        return verdict
    return _judged(run, baselines.member_verdict(run.config.baseline_path, run.config.profile.name, backend,
                                                 figures["test_accuracy"], figures.get("data_fingerprint")),
                   verdict)


def _unchecked(run: Any, message: str, verdict: Verdict | None = None) -> Verdict:
    """Nothing to check against: skip with the one line, or fail it under --require-baseline."""
    verdict = verdict or Verdict()
    if run.config.require_baseline:
        return _fail(f"{message} (--require-baseline)", verdict)
    verdict.outcome, verdict.message = SKIPPED, message
    return verdict


def _judged(run: Any, check: baselines.Verdict, verdict: Verdict) -> Verdict:
    if check.passed is None:
        return _unchecked(run, check.message, verdict)
    if not check.passed:
        return _fail(check.message, verdict)
    return verdict


def ensemble(run: Any, backend: str | None = None) -> Verdict:
    """The chosen ensemble of every backend that finished meets its baseline, and its best member's."""
    analysis = run.finish()
    if analysis.ensemble is None and analysis.job_states <= {JobState.SKIPPED.value}:
        return _skip("no job ran, so there is nothing to ensemble")
    if analysis.ensemble is None and analysis.ensemble_unavailable:
        return _fail(analysis.ensemble_unavailable)  # e.g. --ensemble fitted, no val split
    if analysis.ensemble is None:
        return _fail(f"no backend finished, so there is no ensemble ({reasons_once(analysis.left_out)})")
    weights = analysis.ensemble.weights
    if abs(sum(weights.values()) - 1.0) > 1e-9:
        return _fail(f"the ensemble's weights sum to {sum(weights.values())!r}, not 1")
    finished = {name for name, row in analysis.members.items() if row.ok}
    if set(analysis.ensemble.members) != finished:
        return _fail(f"the ensemble holds {sorted(analysis.ensemble.members)}, not every finished member "
                     f"{sorted(finished)}")
    if run.config.record_baseline:
        return Verdict()
    assessment = run.assessment()
    if assessment.state == "missing":
        return _unchecked(run, assessment.message)
    if assessment.state == "invalid" or assessment.ensemble is None:
        return _fail(assessment.message or assessment.ensemble_problem)
    verdict = _judged(run, assessment.ensemble, Verdict())  # the baseline names the variant it checks
    if verdict.passed and assessment.gap is not None and not assessment.gap.passed:
        return _fail(assessment.gap.message)
    return verdict


def fidelity(run: Any, backend: str | None) -> Verdict:
    """The backend's model gives the same outputs and the same training step as the others' for the same
    weights (the fidelity matrix does not name it)."""
    result, ended = _ended(run, backend, "fidelity")
    if ended:
        return ended
    verdict = _timed(run, result, {})
    section = run.finish().fidelity
    if not section["available"]:
        verdict.outcome, verdict.message = SKIPPED, f"no fidelity matrix in this run: {section['reason']}"
        return verdict
    if backend not in section["backends"]:
        return _fail(section["problems"].get(backend, "no fidelity outputs"), verdict)
    if backend in section["named"]:
        return _fail(section["named"][backend], verdict)
    step = section["step"]
    if backend in step.get("named", {}):
        return _fail(step["named"][backend], verdict)
    return verdict


def speed(run: Any, backend: str | None) -> Verdict:
    """The backend's steady training and inference speed, timed alone; its MFU below 100% of the ceiling."""
    if not run.plans("speed"):  # the plugin deselects these cases for such a profile
        return _skip(f"profile {run.config.profile.name} times no speed phase (speed_steps is 0)")
    result, ended = _ended(run, backend, "speed")
    if ended:
        return ended
    section = run.finish().speed
    row = section["backends"].get(backend)
    if row is None:
        return _fail(section["problems"].get(backend, "no speed figures"))
    data, bad = _result_json(run, backend, "speed")
    if bad:
        return bad
    verdict = Verdict(figures=speed_figures(run, result, data, row), rounds=speed_rounds(data), job=result)
    if backend in section["above_ceiling"]:
        return _fail(section["above_ceiling"][backend], verdict)
    return verdict


def speed_figures(run: Any, result: JobResult, speed_json: dict, row: dict[str, Any]) -> dict[str, Any]:
    """A speed case's ``extra_info``: every step's time, the ceiling and the thread count, which the
    regression gate (``kbench gate``) compares as distributions."""
    model = run.config.model
    steps = [float(s) for s in speed_json["train"]["step_s"]]
    predict = speed_json.get("predict") or {}
    return {
        "model": model.name, "model_sha256": model.sha256,  # the gate compares per model
        "speed": {
            "train_step_ms": [round(s * 1000.0, 4) for s in steps],
            "predict_batch_ms": [round(s * 1000.0, 4) for s in predict.get("batch_s", [])],
            "images_per_step": speed_json["train"].get("images_per_step"),
            "ceiling_gflops": row.get("ceiling_gflops"),
            "threads": (speed_json.get("settings") or {}).get("threads"),
            "machine": row.get("machine"),
            "train_images_per_s": row["train"]["images_per_s"],
            "predict_images_per_s": (row.get("predict") or {}).get("images_per_s"),
            "train_mfu": row.get("train_mfu"),
            "inference_mfu": row.get("inference_mfu"),
            "configuration": row.get("configuration"),
            "measured": "alone: no other job of the run ran during the timed steps",
            "outside_load": (row.get("load") or {}).get("train"),
            "contended": speed_scoring.contention(row, "train"),  # the gate gives no verdict on it
            "modes": (row.get("modes") or {}).get("text") or None,
        },
        "job_wall_s": result.wall_s,
        "reused_from_earlier_session": result.reused,
    }


def speed_rounds(speed_json: dict) -> list[float]:
    """One round per block of ``SPEED_BLOCK_STEPS`` steady steps, so ``pytest-benchmark compare``
    shows a spread, not one number."""
    steps = [float(s) for s in speed_json["train"]["step_s"]]
    return [sum(steps[i:i + SPEED_BLOCK_STEPS]) for i in range(0, len(steps) - SPEED_BLOCK_STEPS + 1,
                                                                SPEED_BLOCK_STEPS)] or [sum(steps)]


def serve(run: Any, backend: str | None) -> Verdict:
    """The backend served in LoadGen's scenarios, alone, and its served answers match its predict job's.

    Passes with the figures (INVALID figures are reported as such, not failed:
    a short profile cannot meet LoadGen's minimums); fails when the audit finds
    an answer the predict job did not give for the same image and weights.
    """
    if not run.plans("serve"):  # the plugin deselects these cases for such a profile
        return _skip(f"profile {run.config.profile.name} serves nothing (serve_seconds is 0)")
    result, ended = _ended(run, backend, "serve")
    if ended:
        return ended
    section = run.finish().serving or {}
    row = (section.get("backends") or {}).get(backend)
    if row is None:
        return _fail((section.get("problems") or {}).get(backend, "no serving figures"))
    data, bad = _result_json(run, backend, "serve")
    if bad:
        return bad
    model = run.config.model
    verdict = Verdict(figures={"model": model.name, "model_sha256": model.sha256, "serve": serve_figures(row, data),
                               "job_wall_s": result.wall_s, "reused_from_earlier_session": result.reused},
                      rounds=[float(s) for s in data["single_stream"]["latency_s"]], job=result)
    if row["audit"]["passed"] is not True:
        return _fail(f"{backend}/serve: {row['audit']['message']}", verdict)
    return verdict


CASES: dict[str, Callable[[Any, str | None], Verdict]] = {
    "train": train,
    "predict": predict,
    "fidelity": fidelity,
    "speed": speed,
    "serve": serve,
    "ensemble": ensemble,
}
"""How each case is judged, by the phase it checks (``ensemble``: the run's ensemble)."""


def judge(run: Any, case: str, backend: str | None = None) -> Verdict:
    """The verdict of one case of ``run`` (a ``harness.session.BenchmarkRun``)."""
    try:
        check = CASES[case]
    except KeyError:
        raise HarnessError(f"no case {case!r}; the cases are {', '.join(CASES)}") from None
    return check(run, backend)
