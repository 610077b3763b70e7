"""Reading Job and pod status: when a Job is over and how to say why it failed.

Nothing stands in for a cluster here: the inputs are hand-written statuses in
the shape the API server returns (the same JSON the executor receives).
"""
from __future__ import annotations

import pytest

from harness.executors.base import JobState
from harness.executors.kubernetes import status


def job(*conditions: tuple[str, str, str], deadline: int = 1200) -> dict:
    return {"metadata": {"name": "j"}, "spec": {"activeDeadlineSeconds": deadline},
            "status": {"conditions": [{"type": t, "status": s, "reason": r, "message": f"{r} happened"}
                                      for t, s, r in conditions]}}


def pod(name: str = "p", created: str = "2026-01-01T00:00:00Z", phase: str = "Failed", exit_code: int | None = None,
        reason: str = "", waiting: str = "", conditions: list[dict] | None = None, pod_reason: str = "",
        **status_fields) -> dict:
    state: dict = {}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": reason or "Error"}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": "it did not work"}}
    if pod_reason:
        status_fields["reason"] = pod_reason
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": "node-7"},
            "status": {"phase": phase, "conditions": conditions or [], **status_fields,
                       "containerStatuses": [{"name": "workload", "image": "img:1", "state": state}]}}


@pytest.mark.parametrize(("conditions", "expected"), [
    ([], None),
    ([("SuccessCriteriaMet", "True", "CompletionsReached")], None),
    ([("FailureTarget", "True", "BackoffLimitExceeded")], None),
    ([("Complete", "False", "")], None),
    ([("SuccessCriteriaMet", "True", ""), ("Complete", "True", "")], "Complete"),
    ([("FailureTarget", "True", ""), ("Failed", "True", "DeadlineExceeded")], "Failed"),
])
def test_a_job_is_over_only_with_a_true_complete_or_failed_condition(conditions, expected):
    assert status.finished(job(*conditions)) == expected


def test_the_workloads_own_error_line_is_found_among_the_log():
    log = ":::KBENCH {\"event\": \"start\"}\nTraceback...\nkbench-error: out of memory (MemoryError)\n"
    assert status.error_line(log) == "out of memory (MemoryError)"
    assert status.log_tail(log) == "Traceback...\nkbench-error: out of memory (MemoryError)"


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"])
def test_an_image_that_cannot_be_pulled_stops_the_wait(reason):
    said = status.cannot_start(pod(phase="Pending", waiting=reason), "workload")
    assert said.startswith("cannot pull image img:1") and reason in said and "--k8s-image" in said


def test_a_container_that_cannot_be_created_stops_the_wait():
    assert "CreateContainerConfigError" in status.cannot_start(
        pod(phase="Pending", waiting="CreateContainerConfigError"), "workload")
    assert status.cannot_start(pod(phase="Pending", waiting="ContainerCreating"), "workload") is None


def test_an_unschedulable_pod_is_recognised():
    stuck = pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                              "message": "0/3 nodes are available: 3 Insufficient memory."}])
    assert status.unschedulable(stuck) == "0/3 nodes are available: 3 Insufficient memory."
    assert status.unschedulable(pod(phase="Running")) is None


def test_the_newest_pod_explains_a_failed_job():
    pods = [pod("old", "2026-01-01T00:00:00Z", exit_code=137, reason="OOMKilled"),
            pod("new", "2026-01-01T00:05:00Z", exit_code=1)]
    verdict = status.verdict(job(("Failed", "True", "BackoffLimitExceeded")), pods, "workload",
                             "kbench-error: ValueError: bad\n", "4Gi")
    assert verdict == status.Verdict(JobState.FAILED, "exit code 1: ValueError: bad (2 pods)", 1)


def test_a_pod_failure_policy_failure_says_it_was_not_retried():
    verdict = status.verdict(job(("Failed", "True", "PodFailurePolicy")), [pod(exit_code=3)], "workload",
                             "kbench-error: data set missing\n", "4Gi")
    assert verdict.state is JobState.FAILED
    assert verdict.reason == "exit code 3: data set missing (not retried: the input or usage is wrong)"


def test_a_deadline_is_a_timeout_and_names_a_pod_that_never_started():
    stuck = pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                              "message": "0/1 nodes are available"}])
    verdict = status.verdict(job(("Failed", "True", "DeadlineExceeded"), deadline=60), [stuck], "workload", "", "1Gi")
    assert verdict.state is JobState.TIMED_OUT
    assert verdict.reason == ("ran past its deadline of 60 s (activeDeadlineSeconds); its pod was never scheduled: "
                              "0/1 nodes are available")


@pytest.mark.parametrize(("failed_pod", "words"), [
    (pod(exit_code=137, reason="OOMKilled"), "OOMKilled: used more than its memory limit of 4Gi"),
    (pod(pod_reason="Evicted", message="The node was low on resource: ephemeral-storage."),
     "evicted from node node-7: The node was low on resource: ephemeral-storage."),
    (pod(exit_code=137, conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                                     "message": "Preempted by a higher priority pod"}]),
     "preempted by the scheduler for a higher-priority pod: Preempted by a higher priority pod"),
    (pod(exit_code=137), "killed (exit code 137, SIGKILL) without being OOMKilled"),
    (pod(exit_code=2), "exit code 2"),
])
def test_pod_failures_in_one_phrase(failed_pod, words):
    said = status.pod_failure(failed_pod, "workload", "", "4Gi")
    assert words in said and "\n" not in said


@pytest.mark.parametrize("message", [
    'Usage of EmptyDir volume "tmp" exceeds the limit "2Gi". ',
    "Pod ephemeral local storage usage exceeds the total limit of containers 2Gi. ",
    'Container workload exceeded its local ephemeral storage limit "1Gi". ',
])
def test_an_eviction_for_outgrowing_ephemeral_storage_is_its_own_reason(message):
    """Issue 13 item 9: the kubelet evicts a pod over its own storage limits without a DisruptionTarget.

    Kubernetes docs, "Local ephemeral storage" (Resource Management for Pods and
    Containers): a pod whose emptyDir or container writable layer exceeds its
    limit is marked for eviction; "Pod disruption conditions" lists
    DisruptionTarget only for preemption, API eviction, taints, node pressure
    and GC, so the Job's Ignore rule does not match and the try counts.
    """
    said = status.pod_failure(pod(pod_reason="Evicted", message=message), "workload", "", "4Gi")
    assert said.startswith("evicted: ephemeral storage: ")
    assert message.strip().rstrip(".") in said and "counted as a failed try" in said


def test_a_complete_job_succeeds_even_after_failed_attempts():
    pods = [pod("a", exit_code=1), pod("b", "2026-01-01T01:00:00Z", phase="Succeeded", exit_code=0)]
    verdict = status.verdict(job(("Complete", "True", "")), pods, "workload", "", "4Gi")
    assert verdict == status.Verdict(JobState.SUCCEEDED, "", 0)


@pytest.mark.parametrize(("text", "seconds"), [
    ("2026-01-01T00:00:05Z", 1767225605.0),
    ("2026-01-01T00:00:05.25Z", 1767225605.25),
    ("2026-01-01T00:00:05.123456789Z", 1767225605.123456789),
    ("2026-01-01T01:00:05+01:00", 1767225605.0),
    ("yesterday", None), ("", None), (None, None),
])
def test_api_times_are_read_whatever_their_precision(text, seconds):
    """Events carry whole seconds (lastTimestamp), micro- (eventTime) or nanoseconds (the kubelet's log stamps)."""
    found = status.timestamp(text)
    assert found == pytest.approx(seconds) if seconds is not None else found is None


@pytest.mark.parametrize(("image", "registry"), [
    ("kbench-keras3:0.1.0", "docker.io"), ("team/kbench:1", "docker.io"), ("registry.example.com/k:1",
                                                                            "registry.example.com"),
    ("localhost:5000/k:1", "localhost:5000"), ("localhost/k:1", "localhost"),
])
def test_the_registry_of_an_image_is_named_as_docker_does(image, registry):
    assert status.registry_of(image) == registry


def test_exec_format_error_names_the_architecture_option():
    """Issue 29 item 6: the container's binary is for another CPU than its node's."""
    failed = pod(exit_code=128, reason="StartError")
    failed["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = "exec: \"python\": exec format error"
    said = status.pod_failure(failed, "workload", "", "4Gi")
    assert said.startswith("exec format error (exit code 128)") and "node-7" in said and "--k8s-arch" in said
