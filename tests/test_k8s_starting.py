"""When to stop waiting for a pod that has not started (issue 13 items 4, 5, 6), on a clock the test moves.

Hand-written pod and event JSON in the shapes the API server returns; no
cluster and no waiting: ``StartWatch`` is given a fake clock.
"""
from __future__ import annotations

import pytest

from harness.executors.kubernetes.starting import StartLimits, StartWatch

LIMITS = StartLimits(schedule_timeout_s=300, start_grace_s=120, capacity_wait_s=1800)


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
    stuck = pod("second", unschedulable="0/3 nodes are available: 3 node(s) didn't match Pod's node affinity.")
    assert watch.judge([stuck], "workload") is None
    clock.now += 299
    assert watch.judge([stuck], "workload") is None
    clock.now += 2
    assert watch.judge([stuck], "workload").startswith("not scheduled within 301 s (--k8s-schedule-timeout)")


@pytest.mark.parametrize("message", ["0/3 nodes are available: 3 Insufficient cpu.",
                                     ("0/5 nodes are available: 2 Insufficient nvidia.com/gpu, 3 node(s) had "
                                     "untolerated taint {pool: cpu}."), "0/1 nodes are available: 1 Too many pods."])
def test_a_pod_waiting_for_room_waits_up_to_the_capacity_wait_and_names_parallel(clock, message):
    """Issue 29 item 1: lack of room is other work holding it (or a node pool scaling up): a wait, not a failure.

    It is said once, and only past --k8s-capacity-wait (longer than the
    schedule timeout) does the job fail, naming --parallel.
    """
    watch = StartWatch(LIMITS, clock)
    waiting = pod("p", unschedulable=message)
    assert watch.judge([waiting], "workload") is None
    assert len(watch.notices) == 1 and "--k8s-capacity-wait" in watch.notices[0]
    clock.now += 1800
    assert watch.judge([waiting], "workload") is None
    assert len(watch.notices) == 1  # said once
    clock.now += 1
    said = watch.judge([waiting], "workload")
    assert said.startswith("waited 1801 s for room in the cluster (--k8s-capacity-wait): ") and message in said
    assert "lower --parallel" in said


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
    refused = event("job-uid", "FailedCreate", 'Error creating: pods "j-abc" is forbidden: maximum cpu usage per '
                                               "Container is 1, but limit is 2")
    assert watch.judge([], "workload", [refused], job_uid="job-uid") is None
    clock.now += 121
    said = watch.judge([], "workload", [refused], job_uid="job-uid")
    assert said.startswith("no pod could be created for 121 s: FailedCreate: Error creating: ") and "cpu" in said


def test_pods_a_used_up_quota_refuses_wait_for_room(clock):
    """Issue 29 item 1: "exceeded quota" on the Job's pods waits --k8s-capacity-wait, not --k8s-start-grace."""
    watch = StartWatch(LIMITS, clock)
    refused = event("job-uid", "FailedCreate", 'Error creating: pods "j-abc" is forbidden: exceeded quota: compute, '
                                               "requested: requests.cpu=2, used: requests.cpu=8, limited: "
                                               "requests.cpu=8")
    assert watch.judge([], "workload", [refused], job_uid="job-uid") is None
    clock.now += 1800
    assert watch.judge([], "workload", [refused], job_uid="job-uid") is None
    clock.now += 1
    said = watch.judge([], "workload", [refused], job_uid="job-uid")
    assert said.startswith("waited 1801 s for room") and "exceeded quota" in said and "--parallel" in said


def test_a_running_pod_resets_what_was_seen(clock):
    watch = StartWatch(LIMITS, clock)
    backing_off = pod("p", waiting="ImagePullBackOff", message="Back-off")
    watch.judge([backing_off], "workload")
    clock.now += 100
    assert watch.judge([pod("p", phase="Running")], "workload") is None
    clock.now += 100
    assert watch.judge([backing_off], "workload") is None  # a new back-off starts its own grace


def test_create_container_error_is_waited_out_for_the_grace(clock):
    """Issue 29 item 5: the kubelet retries CreateContainerError at its next sync; only a lasting one fails."""
    watch = StartWatch(LIMITS, clock)
    reserved = pod("p", waiting="CreateContainerError", message='failed to reserve container name "workload_p_0"')
    assert watch.judge([reserved], "workload") is None
    clock.now += 120
    assert watch.judge([reserved], "workload") is None
    clock.now += 1
    said = watch.judge([reserved], "workload")
    assert said.startswith("the container cannot be created (CreateContainerError: failed to reserve")
    assert said.endswith("(for 121 s, --k8s-start-grace)")
    config = pod("q", waiting="CreateContainerConfigError", message='secret "missing" not found')
    assert "CreateContainerConfigError" in StartWatch(LIMITS, clock).judge([config], "workload")  # at once


def test_only_events_newer_than_the_pods_current_state_count(clock):
    """Issue 29 item 2: a FailedMount from before the pod's sandbox was ready (the mount then worked) is history."""
    creating = pod("p", waiting="ContainerCreating")
    creating["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-01-01T00:05:00Z"}]
    old = event("uid-p", "FailedMount", "MountVolume.SetUp failed: mount failed: exit status 32")
    old["lastTimestamp"] = "2026-01-01T00:01:00Z"
    watch = StartWatch(LIMITS, clock)
    assert watch.judge([creating], "workload", [old]) is None
    clock.now += 1000
    assert watch.judge([creating], "workload", [old]) is None
    again = dict(old, lastTimestamp="2026-01-01T00:06:00Z")  # the same trouble, happening now
    assert watch.judge([creating], "workload", [again]) is None
    clock.now += 121
    assert watch.judge([creating], "workload", [again]).startswith("pod p cannot start: FailedMount for 121 s")


def test_a_missing_pull_secret_is_said_beside_the_registrys_answer(clock):
    """Issue 29 item 9: the kubelet pulls without a Secret it cannot find, and says so in an event."""
    limits = StartLimits(300, 120, 1800, pull_secrets=("regcred",))
    refused = pod("p", waiting="ErrImagePull", message="pull access denied, repository does not exist or may require "
                                                       "authorization: authorization failed")
    refused["status"]["containerStatuses"][0]["image"] = "registry.example.com/team/img:1"
    missing = event("uid-p", "FailedToRetrieveImagePullSecret", 'Unable to retrieve some image pull secrets '
                                                                '(regcred); attempting to pull the image may not succeed.')
    said = StartWatch(limits, clock).judge([refused], "workload", [missing])
    assert "Unable to retrieve some image pull secrets (regcred)" in said
    assert "check that Secret regcred (--k8s-image-pull-secret) exists" in said and "registry.example.com" in said
