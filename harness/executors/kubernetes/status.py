"""Read a Job's and its pods' status: is it over, and if it failed, why, in one line.

Pure functions over the plain JSON the API returns, so each rule can be tested
with a hand-written status. The rules follow the Job controller's behaviour:

* A Job is over only when its ``Complete`` or ``Failed`` condition is "True".
  ``SuccessCriteriaMet`` and ``FailureTarget`` (1.31+) come earlier, while
  pods may still be terminating and writing to NFS: they are not an end.
* Failure reasons come from the pods: an image that cannot be pulled, OOMKilled, eviction or preemption, a non-zero
  exit (with the workload's ``kbench-error:`` line), or a pod that stays
  unschedulable; the Job's own reason says when its deadline passed.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.executors.job_output import error_line, log_tail
from harness.jobs import JobState

IMAGE_PROBLEMS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                            "RegistryUnavailable"})
CONFIG_PROBLEMS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
DISRUPTIONS = {
    "PreemptionByScheduler": "preempted by the scheduler for a higher-priority pod",
    "PreemptionByKubeScheduler": "preempted by the scheduler for a higher-priority pod",
    "EvictionByEvictionAPI": "evicted through the Eviction API (a node drain?)",
    "TerminationByKubelet": "terminated by the kubelet (node pressure or shutdown)",
    "DeletionByTaintManager": "deleted by the taint manager (its node became unusable)",
    "DeletionByPodGC": "deleted by pod garbage collection (its node is gone)",
}

EPHEMERAL_LIMIT = re.compile(r"EmptyDir volume .* exceeds the limit|ephemeral local storage usage exceeds"
                             r"|exceeded its local ephemeral storage limit", re.IGNORECASE)
"""The kubelet's messages when a pod outgrows its own ephemeral-storage limits (pkg/kubelet/eviction)."""


@dataclass(frozen=True)
class Verdict:
    """How a Job ended, as the executor reports it."""

    state: JobState
    reason: str = ""
    exit_code: int | None = None


# -- small readers -----------------------------------------------------------------------------
def true_condition(obj: dict, kind: str) -> dict | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and str(condition.get("status")) == "True":
            return condition
    return None


def finished(job: dict | None) -> str | None:
    """``"Complete"`` or ``"Failed"`` once the Job has ended for good, else None."""
    if not job:
        return None
    for kind in ("Failed", "Complete"):
        if true_condition(job, kind):
            return kind
    return None


def name_of(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def resource_version(obj: dict) -> str | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value else None


def sort_pods(pods: Sequence[dict]) -> list[dict]:
    """Oldest first: creation time, then name."""
    return sorted(pods, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "", name_of(p)))


def _container(pod: dict, container: str) -> dict:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return status
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def terminated(pod: dict, container: str) -> dict:
    """The container's terminated state (current or last), or {}."""
    status = _container(pod, container)
    return ((status.get("state") or {}).get("terminated")
            or (status.get("lastState") or {}).get("terminated") or {})


def exit_code(pod: dict, container: str) -> int | None:
    code = terminated(pod, container).get("exitCode")
    return int(code) if code is not None else None


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# -- while it runs: reasons to stop waiting --------------------------------------------------------
def cannot_start(pod: dict, container: str, detail: str = "") -> str | None:
    """What keeps the container from starting, in one line, or None.

    ``detail`` adds what an earlier status said (the registry's answer behind
    an ImagePullBackOff). Whether to give up is ``starting``'s call.
    """
    status = _container(pod, container)
    waiting = (status.get("state") or {}).get("waiting") or {}
    why = waiting.get("reason")
    message = one_line(waiting.get("message") or "", 200)
    if detail:
        message = f"{message}; {one_line(detail, 200)}" if message else one_line(detail, 200)
    if why in IMAGE_PROBLEMS:
        image = status.get("image") or _spec_image(pod, container)
        return (f"cannot pull image {image} ({why}{': ' + message if message else ''}); build it and load or push "
                "it where the nodes can pull it (docs/kubernetes.md), or pass --k8s-image / --k8s-legacy-image")
    if why in CONFIG_PROBLEMS:
        return f"the container cannot be created ({why}{': ' + message if message else ''})"
    return None


def _spec_image(pod: dict, container: str) -> str:
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            return str(spec.get("image") or "?")
    return "?"


def unschedulable(pod: dict) -> str | None:
    """The scheduler's message while the pod cannot be placed on any node, else None."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (condition.get("type") == "PodScheduled" and str(condition.get("status")) == "False"
                and condition.get("reason") == "Unschedulable"):
            return one_line(condition.get("message") or "no node fits its requests", 200)
    return None


def unschedulable_reason(message: str, waited_s: float) -> str:
    return (f"not scheduled within {waited_s:.0f} s (--k8s-schedule-timeout): {message}; lower --k8s-cpu, "
            "--k8s-memory or --k8s-gpus, or add nodes that fit")


# -- after it ended ---------------------------------------------------------------------------------
def pod_failure(pod: dict, container: str, log_text: str, memory: str) -> str | None:
    """Why one pod failed, in one phrase, or None if it did not fail."""
    status = pod.get("status") or {}
    disruption = true_condition(pod, "DisruptionTarget")
    if disruption:
        what = DISRUPTIONS.get(disruption.get("reason") or "", f"disrupted ({disruption.get('reason')})")
        message = one_line(disruption.get("message") or status.get("message") or "", 160)
        return f"{what}{': ' + message if message else ''}"
    if status.get("reason") == "Evicted" and EPHEMERAL_LIMIT.search(status.get("message") or ""):
        message = one_line(status.get("message") or "", 160)
        return (f"evicted: ephemeral storage: {message.rstrip('. ')}; the job wrote more than its /tmp emptyDir "
                "(HOME, Keras and Theano caches) or container storage allows, and the eviction counted as a "
                "failed try (no DisruptionTarget condition, so the podFailurePolicy cannot ignore it)")
    if status.get("reason") == "Evicted":
        node = (pod.get("spec") or {}).get("nodeName")
        message = one_line(status.get("message") or "", 160)
        return f"evicted{' from node ' + node if node else ''}{': ' + message if message else ''}"
    state = terminated(pod, container)
    code = state.get("exitCode")
    if state.get("reason") == "OOMKilled":
        return (f"OOMKilled: used more than its memory limit of {memory}; raise --k8s-memory or use a smaller "
                "profile")
    if code not in (None, 0):
        said = error_line(log_text) or error_line(state.get("message") or "")
        if said:
            return f"exit code {code}: {one_line(said)}"
        if int(code) == 137:
            return "killed (exit code 137, SIGKILL) without being OOMKilled; see the log tail"
        last = log_tail(log_text or state.get("message") or "", 1)
        return f"exit code {code}" + (f"; last line: {one_line(last, 200)}" if last else "; see the log tail")
    if status.get("phase") == "Failed":
        why = status.get("reason") or state.get("reason") or "unknown reason"
        message = one_line(status.get("message") or state.get("message") or "", 160)
        return f"failed ({why}{': ' + message if message else ''})"
    return None


def verdict(job: dict, pods: Sequence[dict], container: str, final_log: str, memory: str) -> Verdict:
    """How a finished Job ended; ``final_log`` is the log of its newest pod."""
    ordered = sort_pods(pods)
    last = ordered[-1] if ordered else {}
    code = exit_code(last, container) if last else None
    if true_condition(job, "Complete"):
        return Verdict(JobState.SUCCEEDED, "", code if code is not None else 0)
    failed = true_condition(job, "Failed") or {}
    job_reason = failed.get("reason") or ""
    job_message = one_line(failed.get("message") or "", 200)
    failures = [(p, pod_failure(p, container, final_log if p is last else "", memory)) for p in ordered]
    failures = [(p, why) for p, why in failures if why]
    newest = failures[-1][1] if failures else ""
    attempts = f" ({len(ordered)} pods)" if len(ordered) > 1 else ""
    if job_reason == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        text = f"ran past its deadline of {deadline} s (activeDeadlineSeconds)"
        pending = unschedulable(last) if last else None
        if pending:
            text += f"; its pod was never scheduled: {pending}"
        elif newest:
            text += f"; its last failed pod was {newest}"
        else:
            text += "; raise the profile's job timeout (--job-timeout) or use a smaller profile"
        return Verdict(JobState.TIMED_OUT, text + attempts, code)
    if job_reason == "PodFailurePolicy":
        text = newest or job_message or "a pod failed with an exit code that retrying cannot fix"
        return Verdict(JobState.FAILED, f"{text} (not retried: the input or usage is wrong){attempts}", code)
    if newest:
        return Verdict(JobState.FAILED, newest + attempts, code)
    text = f"the Job failed ({job_reason or 'no reason given'}{': ' + job_message if job_message else ''})"
    return Verdict(JobState.FAILED, text + attempts, code)
