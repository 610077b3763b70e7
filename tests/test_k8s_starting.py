"""When to stop waiting for a pod that has not started (issue 13 items 4, 5, 6), on a clock the test moves.

Hand-written pod and event JSON in the shapes the API server returns; no
cluster and no waiting: ``StartWatch`` is given a fake clock.
"""
from __future__ import annotations

import pytest

from harness.executors.kubernetes.starting import StartLimits, StartWatch

LIMITS = StartLimits(schedule_timeout_s=300, start_grace_s=120)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, uid: str = "", phase: str = "Pending", waiting: str = "", message: str = "",
        unschedulable: str = "") -> dict:
    conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
                  ] if unschedulable else []
    statuses = [{"name": "workload", "image": "img:1", "state": {"waiting": {"reason": waiting, "message": message}}}
                ] if waiting else []
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": phase, "conditions": conditions, "containerStatuses": statuses}}


def event(uid: str, reason: str, message: str) -> dict:
    return {"involvedObject": {"uid": uid}, "reason": reason, "message": message, "type": "Warning",
            "lastTimestamp": "2026-01-01T00:00:05Z", "count": 3}


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_each_pod_gets_its_own_schedule_timeout(clock):
    """Kubernetes docs, "Jobs", "Pod failure policy": an ignored disruption brings a new pod, however old the Job."""
    watch = StartWatch(LIMITS, clock)
    clock.now += 1000  # the Job is long past the timeout when its replacement pod appears
    stuck = pod("second", unschedulable="0/3 nodes are available: 3 Insufficient cpu.")
    assert watch.judge([stuck], "workload") is None
    clock.now += 299
    assert watch.judge([stuck], "workload") is None
    clock.now += 2
    assert watch.judge([stuck], "workload").startswith("not scheduled within 301 s (--k8s-schedule-timeout)")


@pytest.mark.parametrize("answer", ["429 Too Many Requests", "dial tcp 10.0.0.9:443: i/o timeout"])
def test_a_registry_hiccup_is_waited_out_until_the_back_off_outlasts_the_grace(clock, answer):
    """Kubernetes docs, "Images", "ImagePullBackOff": the kubelet retries with a growing delay."""
    watch = StartWatch(LIMITS, clock)
    assert watch.judge([pod("p", waiting="ErrImagePull", message=answer)], "workload") is None
    backing_off = pod("p", waiting="ImagePullBackOff", message='Back-off pulling image "img:1"')
    assert watch.judge([backing_off], "workload") is None
    clock.now += 120
    assert watch.judge([backing_off], "workload") is None
    clock.now += 1
    said = watch.judge([backing_off], "workload")
    assert said.startswith("cannot pull image img:1 (ImagePullBackOff") and answer in said
    assert "(backing off for 121 s, --k8s-start-grace)" in said


@pytest.mark.parametrize("answer", [
    'failed to resolve reference "docker.io/library/img:1": docker.io/library/img:1: not found',
    "pull access denied, repository does not exist or may require authorization",
    "unexpected status from HEAD request: 401 Unauthorized",
    "manifest unknown",
])
def test_an_image_that_cannot_exist_or_be_read_fails_at_once(clock, answer):
    watch = StartWatch(LIMITS, clock)
    said = watch.judge([pod("p", waiting="ErrImagePull", message=answer)], "workload")
    assert said and said.startswith("cannot pull image img:1") and answer[:20] in said


def test_the_registrys_answer_is_read_from_the_kubelets_event_behind_a_back_off(clock):
    watch = StartWatch(LIMITS, clock)
    backing_off = pod("p", waiting="ImagePullBackOff", message='Back-off pulling image "img:1"')
    pulled = event("uid-p", "Failed", 'Failed to pull image "img:1": rpc error: code = NotFound desc = not found')
    said = watch.judge([backing_off], "workload", [pulled])
    assert said and "code = NotFound" in said


def test_a_failed_mount_fails_once_it_lasts_the_grace_with_the_kubelets_message(clock):
    """Kubernetes docs, "Debug Pods": a pod stuck in ContainerCreating says why in its events (FailedMount)."""
    watch = StartWatch(LIMITS, clock)
    creating = pod("p", waiting="ContainerCreating")
    mount = event("uid-p", "FailedMount", 'MountVolume.SetUp failed for volume "kbench-shared-volume" : '
                                          "mount failed: exit status 32")
    assert watch.judge([creating], "workload", [mount]) is None
    clock.now += 121
    said = watch.judge([creating], "workload", [mount])
    assert said.startswith("pod p cannot start: FailedMount for 121 s: MountVolume.SetUp failed")
    assert "NFS client" in said
    other = event("uid-other", "FailedMount", "not about this Job's pods")
    assert StartWatch(LIMITS, clock).judge([creating], "workload", [other]) is None


def test_failed_creates_fail_the_job_when_no_pod_exists(clock):
    """Kubernetes docs, "Jobs": the controller records FailedCreate on the Job and keeps retrying."""
    watch = StartWatch(LIMITS, clock)
    refused = event("job-uid", "FailedCreate", 'Error creating: pods "j-abc" is forbidden: exceeded quota: cpu')
    assert watch.judge([], "workload", [refused], job_uid="job-uid") is None
    clock.now += 121
    said = watch.judge([], "workload", [refused], job_uid="job-uid")
    assert said.startswith("no pod could be created for 121 s: FailedCreate: Error creating: ") and "quota" in said


def test_a_running_pod_resets_what_was_seen(clock):
    watch = StartWatch(LIMITS, clock)
    backing_off = pod("p", waiting="ImagePullBackOff", message="Back-off")
    watch.judge([backing_off], "workload")
    clock.now += 100
    assert watch.judge([pod("p", phase="Running")], "workload") is None
    clock.now += 100
    assert watch.judge([backing_off], "workload") is None  # a new back-off starts its own grace
