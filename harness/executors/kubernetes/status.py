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

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.executors.job_log import error_line, log_tail
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

NO_ROOM = re.compile(r"\bInsufficient \S+|Too many pods|exceeded quota", re.IGNORECASE)
"""How the scheduler and the quota admission say there is no room now (other work holds it)."""
REFUSED_CREDENTIALS = re.compile(r"unauthorized|authentication required|\b401\b|403 forbidden|denied|"
                                 r"may require authorization|no basic auth credentials", re.IGNORECASE)
"""A registry's answers when the nodes' credentials (or their absence) are refused."""
EXEC_FORMAT = re.compile(r"exec format error", re.IGNORECASE)
"""The kernel's answer when a binary is for another CPU architecture than the node's."""

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


def timestamp(text: object) -> float | None:
    """An RFC 3339 time as the API writes it (whole seconds, micro- or nanoseconds), as seconds since 1970."""
    found = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", str(text or "").strip())
    if not found:
        return None
    zone = "+00:00" if found.group(3) == "Z" else found.group(3)
    try:
        whole = dt.datetime.fromisoformat(found.group(1) + zone)
    except ValueError:
        return None
    return whole.timestamp() + float("0" + (found.group(2) or ""))


def event_time(event: dict) -> float | None:
    """When an event last happened: its series' last observation, else lastTimestamp, eventTime, firstTimestamp."""
    series = event.get("series") or {}
    for value in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"),
                  event.get("firstTimestamp"), (event.get("metadata") or {}).get("creationTimestamp")):
        found = timestamp(value)
        if found is not None:
            return found
    return None


def state_since(pod: dict) -> float | None:
    """When the pod entered its current state: its latest condition change, container start or end."""
    status = pod.get("status") or {}
    times = [c.get("lastTransitionTime") for c in status.get("conditions") or [] if str(c.get("status")) == "True"]
    for entry in status.get("containerStatuses") or []:
        for state in (entry.get("state") or {}, entry.get("lastState") or {}):
            times.append((state.get("running") or {}).get("startedAt"))
            times.append((state.get("terminated") or {}).get("finishedAt"))
    found = [t for t in (timestamp(value) for value in times) if t is not None]
    return max(found) if found else None


# -- while it runs: reasons to stop waiting --------------------------------------------------------
def cannot_start(pod: dict, container: str, detail: str = "", pull_secrets: Sequence[str] = ()) -> str | None:
    """What keeps the container from starting, in one line, or None.

    ``detail`` adds what an earlier status said (the registry's answer behind
    an ImagePullBackOff); ``pull_secrets`` are the Secrets the pod names, for
    the hint when the registry refuses the credentials. Whether to give up is
    ``starting``'s call.
    """
    status = _container(pod, container)
    waiting = (status.get("state") or {}).get("waiting") or {}
    why = waiting.get("reason")
    message = one_line(waiting.get("message") or "", 200)
    if detail:
        message = f"{message}; {one_line(detail, 200)}" if message else one_line(detail, 200)
    if why in IMAGE_PROBLEMS:
        image = status.get("image") or _spec_image(pod, container)
        return f"cannot pull image {image} ({why}{': ' + message if message else ''}); {_pull_hint(image, message, pull_secrets)}"
    if why in CONFIG_PROBLEMS:
        return f"the container cannot be created ({why}{': ' + message if message else ''})"
    return None


def registry_of(image: str) -> str:
    """The registry an image reference names (Docker Hub when its first part is not a host)."""
    first, slash, _ = image.partition("/")
    return first if slash and ("." in first or ":" in first or first == "localhost") else "docker.io"


def _pull_hint(image: str, message: str, pull_secrets: Sequence[str]) -> str:
    if REFUSED_CREDENTIALS.search(message):
        registry = registry_of(image)
        if pull_secrets:
            return (f"the registry {registry} refused the nodes' credentials: check that Secret "
                    f"{', '.join(pull_secrets)} (--k8s-image-pull-secret) exists in the namespace and holds a login "
                    f"for {registry}, and that the image's name is right (docs/kubernetes.md, 'Busy or restricted "
                    "cluster')")
        return (f"the registry {registry} refused to serve it without credentials (a private registry, or a wrong "
                f"name): create a Secret with a login for it (kubectl -n NAMESPACE create secret docker-registry "
                f"regcred --docker-server={registry} --docker-username=... --docker-password=...) and pass "
                "--k8s-image-pull-secret regcred (docs/kubernetes.md, 'Busy or restricted cluster')")
    return ("build it and load or push it where the nodes can pull it (docs/kubernetes.md), or pass --k8s-image / "
            "--k8s-legacy-image")


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


def lacks_room(message: str) -> bool:
    """Whether the scheduler (or quota admission) refuses for lack of room now, which other work may free."""
    return bool(NO_ROOM.search(message))


def no_room_reason(message: str, waited_s: float) -> str:
    return (f"waited {waited_s:.0f} s for room in the cluster (--k8s-capacity-wait): {message}; the cluster or "
            "the namespace's quota is busy or too small for this many jobs at once: lower --parallel (or "
            "--k8s-cpu, --k8s-memory, --k8s-gpus), or raise --k8s-capacity-wait")


def unschedulable_reason(message: str, waited_s: float) -> str:
    return (f"not scheduled within {waited_s:.0f} s (--k8s-schedule-timeout): {message}; no node fits the pod: "
            "check --k8s-node-selector, --k8s-toleration and --k8s-arch against the nodes' labels and taints "
            "(kubectl get nodes --show-labels), lower --k8s-cpu, --k8s-memory or --k8s-gpus, or check that the "
            "claim is bound")


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
    if code not in (None, 0) and EXEC_FORMAT.search(f"{state.get('message') or ''} {log_text[-2000:]}"):
        node = (pod.get("spec") or {}).get("nodeName")
        return (f"exec format error (exit code {code}): the image was built for another CPU architecture than "
                f"node {node or '?'}'s; pass --k8s-arch with the image's architecture (or build it for this one: "
                "docker buildx build --platform linux/amd64,linux/arm64)")
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
