"""The Kubernetes executor against an emulated cluster.

What stands in for the cluster (see ``k8s_fixtures``): kmock's Kubernetes API
emulator serving the real HTTP and watch protocol to the real ``kubernetes``
client, and a fake Job controller and kubelet that answer each Job with a
scripted sequence of pod and Job statuses written back through that API. The
shared NFS folder is a temporary folder, mounted "in the pod" at the same path.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest_k8s import (
    deadline_exceeded,
    disrupted_then,
    exits,
    image_cannot_be_pulled,
    oom_killed,
    succeeds,
    unschedulable,
)
from k8s_fixtures import (
    CONTEXT,
    NAMESPACE,
    RUN,
    ExecutorMaker,
    JobRun,
    condition,
    drive_pods,
    running_fake_cluster,
    write_kubeconfig,
)
from k8s_fixtures import job_spec as spec
from k8s_fixtures import run_job as run

from harness.backends import get
from harness.cli import main
from harness.errors import ConfigError, ExecutorError
from harness.executors.base import ExecutorContext, JobState
from harness.executors.kubernetes import watch as job_watch
from harness.executors.kubernetes.client import KubeApi, load_configuration
from harness.executors.kubernetes.errors import ClusterUnreachable
from harness.executors.kubernetes.executor import KubernetesExecutor
from harness.executors.kubernetes.manifests import job_name
from harness.executors.kubernetes.settings import DEFAULT_TEMPLATE
from harness.executors.kubernetes.streams import WatchHandle


@pytest.fixture
def fake_cluster(tmp_path: Path):
    with running_fake_cluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    folder = tmp_path / "shared"
    folder.mkdir()
    return folder


@pytest.fixture
def make_executor(fake_cluster, shared, tmp_path):
    """Build executors that talk to the emulator through a kubeconfig, as a user's would."""
    maker = ExecutorMaker(fake_cluster, shared, tmp_path / "work")
    yield maker
    maker.close()


# -- the happy path ------------------------------------------------------------------------------------
def test_a_completed_job_succeeds_with_its_events_forwarded_and_its_log_kept(fake_cluster, make_executor, shared):
    """One Job is created with strict field validation; its events reach the caller; its log is kept."""
    fake_cluster.behave(succeeds(events=2, log="hello from the pod\n"))
    result, events = run(make_executor())

    assert result.state is JobState.SUCCEEDED, result.reason
    assert result.exit_code == 0 and result.executor == "kubernetes"
    assert [e["event"] for e in events] == ["start", "epoch_end", "epoch_end"]
    assert (shared / "runs" / RUN / "tensorflow" / "train.log").read_text().startswith("hello from the pod")
    assert result.details["job"] == job_name(RUN, "tensorflow", "train")
    creates = fake_cluster.requests("POST", r"/namespaces/kbench/jobs$")
    assert len(creates) == 1
    assert creates[0].params["fieldValidation"] == "Strict"
    body = creates[0].data
    assert body["metadata"]["labels"]["kbench.io/run-id"] == RUN
    assert body["metadata"]["labels"]["kbench.io/backend"] == "tensorflow"
    assert body["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_results_are_read_only_after_the_complete_condition(fake_cluster, make_executor):
    """SuccessCriteriaMet (1.31+) comes while pods may still write to NFS: only Complete ends the wait."""
    moments: dict[str, float] = {}

    def slow_to_complete(job: JobRun) -> None:
        pod = job.new_pod()
        job.running(pod)
        job.log(pod, "done\n")
        job.terminated(pod, 0)
        job.job_status(conditions=[condition("SuccessCriteriaMet", "CompletionsReached")], active=0, succeeded=1)
        time.sleep(1.0)
        job.write_result()
        moments["complete"] = time.time()
        job.job_status(conditions=[condition("SuccessCriteriaMet", "CompletionsReached"),
                                   condition("Complete", "CompletionsReached")])

    fake_cluster.behave(slow_to_complete)
    result, _ = run(make_executor())

    assert result.state is JobState.SUCCEEDED, result.reason
    assert result.finished_at >= moments["complete"]


def test_a_complete_job_whose_result_never_reaches_the_shared_folder_fails(fake_cluster, make_executor):
    """The executor trusts the shared folder, not the exit code: no result file, no success."""

    def forgets_its_result(job: JobRun) -> None:
        pod = job.new_pod()
        job.log(pod, "")
        job.terminated(pod, 0)
        job.complete()

    fake_cluster.behave(forgets_its_result)
    result, _ = run(make_executor())

    assert result.state is JobState.FAILED
    assert "did not appear" in result.reason and "--shared-dir" in result.reason


def test_a_gpu_job_goes_through_the_real_clients_request_validation(fake_cluster, make_executor):
    """Issue 28 item 3: with --k8s-gpus 1 the Job (and the write probe before it) is created and runs.

    The real ``kubernetes`` client (37) validates every request body with
    pydantic before sending it; the old template's ``nvidia.com/gpu: 1`` (an
    integer) was refused there, so every GPU run failed before any Job existed.
    The stand-ins: kmock's API emulator and the stand-in Job controller.
    """
    fake_cluster.behave(succeeds())
    result, _ = run(make_executor(k8s_gpus=1, k8s_node_selector="pool=gpu", k8s_toleration="dedicated=ml:NoSchedule"))

    assert result.state is JobState.SUCCEEDED, result.reason
    created = fake_cluster.requests("POST", r"/jobs$", probes=True)
    assert len(created) == 2  # the write probe and the job
    for request in created:
        pod = request.data["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["nodeSelector"] == {"pool": "gpu"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


# -- creating: names and duplicates ----------------------------------------------------------------------
def test_a_job_left_by_an_earlier_session_of_the_run_is_replaced(fake_cluster, make_executor):
    """409 on create: the stale Job of the same run is deleted (with its pods), then ours is created."""
    executor = make_executor()
    stale = executor.template.job_manifest(spec(), executor.k8s)
    fake_cluster.side.batch.create_namespaced_job(NAMESPACE, stale, _preload_content=False).release_conn()
    fake_cluster.behave(succeeds())

    result, _ = run(executor)

    assert result.state is JobState.SUCCEEDED, result.reason
    creates = fake_cluster.requests("POST", r"/jobs$")
    assert len(creates) == 3  # the stale one, our refused one (409), ours again
    deletes = fake_cluster.requests("DELETE", r"/jobs/")
    assert [d.params.get("propagationPolicy") for d in deletes] == ["Foreground"]


def test_pods_left_by_an_earlier_job_of_the_same_name_are_not_taken_for_ours(fake_cluster, make_executor):
    """Issue 13 item 8: an earlier Job's pod (same name labels, another controller-uid) cannot fail ours.

    Kubernetes docs, "Jobs", "Job labels": the Job controller labels each pod
    with ``batch.kubernetes.io/controller-uid`` (and the legacy ``controller-uid``),
    the Job's uid; "Garbage Collection", "Background cascading deletion": a
    deleted Job's pods go away later, so kubectl's default deletion can leave them
    beside the next Job of that name.
    """
    executor = make_executor()
    earlier = executor.template.job_manifest(spec(), executor.k8s)
    earlier["metadata"]["uid"] = "uid-of-an-earlier-job"
    leftover = fake_cluster.side.create_pod(earlier, 1)
    fake_cluster.side.pod_status(leftover, phase="Pending", containerStatuses=[{
        "name": "workload", "image": "kbench-keras3:0.0.1", "ready": False, "restartCount": 0, "imageID": "",
        "state": {"waiting": {"reason": "InvalidImageName", "message": "couldn't parse image reference"}}}])
    fake_cluster.behave(succeeds())

    result, _ = run(executor)

    assert result.state is JobState.SUCCEEDED, result.reason
    assert leftover not in result.details["pods"] and len(result.details["pods"]) == 1
    selectors = [r.params.get("labelSelector") for r in fake_cluster.requests("GET", r"/pods$")]
    assert selectors and all(s.startswith("batch.kubernetes.io/controller-uid=") for s in selectors)


def test_a_job_of_the_same_name_from_another_run_is_left_alone(fake_cluster, make_executor):
    """A name clash with a Job this run did not make is reported, not deleted."""
    executor = make_executor()
    other = executor.template.job_manifest(spec(), executor.k8s)
    other["metadata"]["labels"]["kbench.io/run-id"] = "someone-else"
    fake_cluster.side.batch.create_namespaced_job(NAMESPACE, other, _preload_content=False).release_conn()

    result, _ = run(executor)

    assert result.state is JobState.FAILED
    assert "already exists" in result.reason and "not from run run-1" in result.reason
    assert not fake_cluster.requests("DELETE")


def test_a_create_whose_answer_was_lost_recognises_its_own_job(fake_cluster, make_executor):
    """The connection drops after the server created the Job: the retry's 409 is ours, not a stale Job."""
    fake_cluster.behave(succeeds())
    executor = make_executor()
    assert run(executor, spec("jax"))[0].state is JobState.SUCCEEDED  # the run's write probe is done
    fake_cluster.server.lost_answers.append(("POST", r"/jobs$"))

    result, _ = run(executor)

    assert result.state is JobState.SUCCEEDED, result.reason
    ours = [r for r in fake_cluster.requests("POST", r"/jobs$") if r.data["metadata"]["name"].endswith("-train")
            and "tensorflow" in r.data["metadata"]["name"]]
    assert len(ours) == 2
    assert not fake_cluster.requests("DELETE")


# -- failures, each said in one line --------------------------------------------------------------------
TRACEBACK = "Traceback (most recent call last):\n  File \"train.py\"\nValueError: boom\n"


@pytest.mark.parametrize(("behaviour", "state", "words"), [
    pytest.param(exits(1, TRACEBACK + "kbench-error: ValueError: boom\n"), JobState.FAILED,
                 ["exit code 1: ValueError: boom"], id="non-zero-exit"),
    pytest.param(exits(3, "kbench-error: cannot read run.json\n"), JobState.FAILED,
                 ["exit code 3: cannot read run.json", "not retried"], id="exit-code-retrying-cannot-fix"),
    pytest.param(oom_killed(), JobState.FAILED, ["OOMKilled", "4Gi", "--k8s-memory"], id="oom-killed"),
    pytest.param(image_cannot_be_pulled(), JobState.FAILED, ["cannot pull image kbench-keras3:0.1.0",
                                                             "ErrImagePull", "not found"], id="image-pull"),
    pytest.param(unschedulable(), JobState.FAILED, ["waited", "for room in the cluster (--k8s-capacity-wait)",
                                                    "3 Insufficient cpu", "lower --parallel"], id="no-room"),
    pytest.param(unschedulable("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
                 JobState.FAILED, ["not scheduled within", "didn't match", "--k8s-node-selector", "--k8s-arch"],
                 id="no-node-matches"),
    pytest.param(deadline_exceeded(), JobState.TIMED_OUT, ["ran past its deadline"], id="deadline"),
    pytest.param(disrupted_then("", "BackoffLimitExceeded", pod_reason="Evicted",
                                message="The node was low on resource: memory."), JobState.FAILED,
                 ["evicted from node node-1: The node was low on resource: memory."], id="evicted"),
    pytest.param(disrupted_then("", "BackoffLimitExceeded", pod_reason="Evicted",
                                message='Usage of EmptyDir volume "tmp" exceeds the limit "2Gi". '), JobState.FAILED,
                 ["evicted: ephemeral storage: Usage of EmptyDir volume", "counted as a failed try"],
                 id="evicted-ephemeral-storage"),
    pytest.param(disrupted_then("PreemptionByScheduler", "DeadlineExceeded",
                                message="Preempted in order to admit critical pod"), JobState.TIMED_OUT,
                 ["ran past its deadline", "preempted by the scheduler"], id="preempted"),
])
def test_a_failed_job_says_why_in_one_line(fake_cluster, make_executor, behaviour, state, words):
    """Each failure reason is read from the pod's (or Job's) status and reported in one line."""
    fake_cluster.behave(behaviour)
    result, _ = run(make_executor())

    assert result.state is state
    assert "\n" not in result.reason
    for word in words:
        assert word in result.reason


def test_a_replacement_pod_gets_its_own_schedule_timeout(fake_cluster, make_executor):
    """Issue 13 item 6: the schedule timeout counts from each pod's creation, not from the submission.

    Kubernetes docs, "Jobs", "Handling Pod and container failures" / "Pod failure
    policy": a pod that matches the Ignore rule (DisruptionTarget) is replaced
    without counting against backoffLimit; its replacement must wait for room
    like any new pod, however old the Job already is.
    """

    def disrupted_late_then_briefly_unschedulable(job: JobRun) -> None:
        first = job.new_pod()
        job.running(first)
        time.sleep(1.5)  # the Job is now older than --k8s-schedule-timeout (1 s)
        job.terminated(first, 137, conditions=[condition("DisruptionTarget", "PreemptionByScheduler")])
        second = job.new_pod()
        job.unschedulable(second, "0/3 nodes are available: 3 Insufficient cpu.")
        time.sleep(0.6)  # within its own allowance
        succeeds()(job, second)

    fake_cluster.behave(disrupted_late_then_briefly_unschedulable)
    result, _ = run(make_executor())

    assert result.state is JobState.SUCCEEDED, result.reason
    assert len(result.details["pods"]) == 2


def test_a_transient_image_pull_error_is_waited_out(fake_cluster, make_executor):
    """Issue 13 item 5: a first ErrImagePull (a 429, a timeout) is not fatal; the next pull succeeds.

    Kubernetes docs, "Images", "ImagePullBackOff": the kubelet keeps retrying
    with an increasing back-off delay (up to five minutes).
    """
    fake_cluster.behave(image_cannot_be_pulled("unexpected status 429 Too Many Requests", recovers=True))
    result, _ = run(make_executor(k8s_start_grace=10.0))

    assert result.state is JobState.SUCCEEDED, result.reason


def test_a_pull_that_keeps_backing_off_fails_after_the_grace_with_the_registrys_answer(fake_cluster, make_executor):
    """Issue 13 item 5: ImagePullBackOff that lasts past --k8s-start-grace fails, naming the registry's answer."""
    fake_cluster.behave(image_cannot_be_pulled("dial tcp 10.0.0.9:443: i/o timeout"))
    started = time.monotonic()
    result, _ = run(make_executor(k8s_start_grace=1.0))

    assert result.state is JobState.FAILED
    assert "cannot pull image kbench-keras3:0.1.0" in result.reason
    assert "i/o timeout" in result.reason and "--k8s-start-grace" in result.reason
    assert 1.0 < time.monotonic() - started < 10


def test_an_image_that_does_not_exist_fails_at_once_without_waiting_for_the_grace(fake_cluster, make_executor):
    """Issue 13 item 5: "not found" or "access denied" from the registry cannot heal: no grace period."""
    fake_cluster.behave(image_cannot_be_pulled("docker.io/library/kbench-keras3:0.1.0: not found"))
    started = time.monotonic()
    result, _ = run(make_executor(k8s_start_grace=60.0))

    assert result.state is JobState.FAILED and "not found" in result.reason
    assert time.monotonic() - started < 10


def test_the_log_of_a_pod_deleted_at_the_deadline_is_kept(fake_cluster, make_executor, shared):
    """Issue 13 item 7: the controller deletes running pods at activeDeadlineSeconds; the log was streamed."""
    fake_cluster.behave(deadline_exceeded(runs_for_s=1.5))
    result, _ = run(make_executor())

    assert result.state is JobState.TIMED_OUT
    kept = (shared / "runs" / RUN / "tensorflow" / "train.log").read_text()
    assert kept == "epoch 1 ...\nepoch 2 ...\n"
    assert not list((shared / "runs" / RUN / "tensorflow").glob(".*.stream"))


def test_a_log_stream_that_breaks_is_followed_again_without_repeating_lines(fake_cluster, make_executor, shared):
    """Issue 13 item 7: a dropped log stream is reconnected; the kubelet's timestamps keep lines unique."""

    def prints_while_the_stream_breaks(job: JobRun) -> None:
        pod = job.new_pod()
        job.running(pod)
        text = ""
        for i in range(6):
            text += f"line {i}\n"
            job.log(pod, text)
            time.sleep(0.3)
            if i == 2:
                fake_cluster.server.lost_answers.append(("GET", rf"/pods/{pod}/log$"))
        job.delete_pod(pod)
        job.fail("DeadlineExceeded", "Job was active longer than specified deadline")

    fake_cluster.behave(prints_while_the_stream_breaks)
    run(make_executor())

    assert fake_cluster.server.broken_log_streams == 1
    kept = (shared / "runs" / RUN / "tensorflow" / "train.log").read_text()
    assert kept == "".join(f"line {i}\n" for i in range(6))


def test_the_end_of_a_long_log_is_kept_where_the_error_line_is(fake_cluster, make_executor, shared):
    """Issue 13 item 7: a log longer than any byte limit keeps its end (the ``kbench-error:`` line).

    Kubernetes API reference, PodLogOptions: ``limitBytes`` stops after that many
    bytes from the start; ``tailLines`` keeps the end.
    """
    long_log = ("x" * 999 + "\n") * 17_500 + "kbench-error: ValueError: at the very end\n"  # 17.5 MB
    fake_cluster.behave(exits(1, long_log))
    result, _ = run(make_executor())

    assert result.state is JobState.FAILED
    assert "exit code 1: ValueError: at the very end" in result.reason
    kept = (shared / "runs" / RUN / "tensorflow" / "train.log").read_text()
    assert kept.endswith("kbench-error: ValueError: at the very end\n")


def test_the_stand_in_ttl_controller_deletes_a_finished_job_with_its_pods(fake_cluster, make_executor):
    """What a too-short --k8s-ttl would do (the option refuses it): the Job and its pods vanish after the TTL."""
    executor = make_executor()
    manifest = executor.template.job_manifest(spec(), executor.k8s)
    manifest["spec"]["ttlSecondsAfterFinished"] = 0
    created = fake_cluster.side.batch.create_namespaced_job(NAMESPACE, manifest, _preload_content=False)
    created.release_conn()
    job = JobRun(fake_cluster.side, fake_cluster.server, fake_cluster.side.job(manifest["metadata"]["name"]))
    pod = job.new_pod()
    job.terminated(pod, 0)
    job.complete()

    assert job.wait_deleted(5)
    limit = time.monotonic() + 5
    while fake_cluster.side.pod_exists(pod) and time.monotonic() < limit:
        time.sleep(0.05)
    assert not fake_cluster.side.pod_exists(pod)


@pytest.mark.parametrize("ttl", [0, 30, 60])
def test_a_ttl_that_would_delete_a_job_before_its_results_are_read_is_refused(make_executor, ttl):
    """Issue 13 item 7: "TTL mechanism for finished Jobs" (Kubernetes docs) deletes the Job and its pods.

    A TTL shorter than --k8s-result-wait plus the time to read logs would let
    the TTL controller remove them first.
    """
    with pytest.raises(ConfigError, match=rf"--k8s-ttl: {ttl} s is too short.*use 61 or more"):
        make_executor(k8s_ttl=ttl)


@pytest.mark.parametrize(("code", "pods", "words"), [
    (1, 2, "exit code 1: boom (2 pods)"),
    (3, 1, "exit code 3: boom (not retried: the input or usage is wrong)"),
])
def test_retries_follow_the_jobs_backoff_limit_and_pod_failure_policy(fake_cluster, make_executor, code, pods, words):
    """Kubernetes docs, "Jobs", "Pod backoff failure policy" and "Pod failure policy": exit 1 matches no
    rule and counts (backoffLimit 1: a second pod, then BackoffLimitExceeded); exit 3 matches the FailJob
    rule and ends the Job at once (PodFailurePolicy). The stand-in controller applies the Job's own rules."""
    fake_cluster.behave(exits(code, "kbench-error: boom\n"))
    result, _ = run(make_executor())

    assert result.state is JobState.FAILED
    assert len(result.details["pods"]) == pods and result.reason == words
    reason = fake_cluster.side.job(job_name(RUN, "tensorflow", "train"))["status"]["conditions"][-1]["reason"]
    assert reason == ("BackoffLimitExceeded" if code == 1 else "PodFailurePolicy")


def test_a_crash_reports_the_log_tail(fake_cluster, make_executor):
    fake_cluster.behave(exits(1, TRACEBACK + "kbench-error: ValueError: boom\n"))
    result, _ = run(make_executor())

    assert result.exit_code == 1
    assert "ValueError: boom" in result.log_tail and "Traceback" in result.log_tail


@pytest.mark.parametrize("behaviour", [image_cannot_be_pulled(), unschedulable()], ids=["image-pull", "unschedulable"])
def test_a_job_that_cannot_start_is_deleted_with_its_pods(fake_cluster, make_executor, behaviour):
    """The executor gives up on a stuck Job and deletes it so that it does not linger in the cluster."""
    fake_cluster.behave(behaviour)
    run(make_executor())

    deletes = fake_cluster.requests("DELETE", r"/jobs/")
    assert deletes and deletes[0].params["propagationPolicy"] == "Foreground"
    assert fake_cluster.jobs() == []


def test_a_disrupted_pod_is_replaced_and_every_pods_log_is_kept(fake_cluster, make_executor, shared):
    """An eviction does not fail the Job (podFailurePolicy Ignore): the next pod runs; both logs are kept."""
    fake_cluster.behave(disrupted_then("EvictionByEvictionAPI", "succeeds", message="Eviction API: evicting"))
    result, _ = run(make_executor())

    assert result.state is JobState.SUCCEEDED, result.reason
    folder = shared / "runs" / RUN / "tensorflow"
    assert (folder / "train.pod-1.log").read_text() == "epoch 1 ...\n"
    assert (folder / "train.log").read_text().startswith("training...")
    assert len(result.details["pods"]) == 2


def test_a_job_deleted_by_someone_else_fails(fake_cluster, make_executor):
    def deleted_by_a_user(job: JobRun) -> None:
        pod = job.new_pod()
        job.running(pod)
        time.sleep(0.3)
        job.side.batch.delete_namespaced_job(job.name, NAMESPACE, propagation_policy="Background",
                                             _preload_content=False).release_conn()

    fake_cluster.behave(deleted_by_a_user)
    result, _ = run(make_executor())

    assert result.state is JobState.FAILED
    assert "was deleted before it finished" in result.reason


# -- watching through the real world -----------------------------------------------------------------
def test_the_watch_lists_again_after_410_gone(fake_cluster, make_executor):
    """The first watch answers 410 Gone (its resourceVersion was compacted): list again, watch on."""
    fake_cluster.server.watch_faults.append("gone")
    fake_cluster.behave(succeeds(hold_s=0.5))
    result, _ = run(make_executor())

    assert result.state is JobState.SUCCEEDED, result.reason
    assert result.details["relists"] >= 2
    lists = [r for r in fake_cluster.requests("GET", r"/jobs$") if "watch" not in r.params
             and r.params.get("fieldSelector")]
    assert len(lists) >= 2


def test_the_watch_reconnects_after_a_dropped_connection(fake_cluster, make_executor):
    """The connection is cut mid-event: reconnect from the last resourceVersion, never crash."""
    fake_cluster.server.watch_faults.append("drop")
    fake_cluster.behave(succeeds(hold_s=0.5))
    result, _ = run(make_executor())

    assert result.state is JobState.SUCCEEDED, result.reason
    assert result.details["reconnects"] >= 1
    watches = [r for r in fake_cluster.requests("GET", r"/jobs$") if r.params.get("watch") == "true"]
    assert len(watches) >= 2 and all(w.params.get("resourceVersion") for w in watches)


def test_an_outage_past_the_jobs_deadline_ends_the_watch_with_a_clear_error(tmp_path, monkeypatch):
    """The API server is gone for good (nothing listens): once the Job's deadline has passed, a clear error.

    The pauses between reconnects are cut short here (``WatchHandle.pause``), so
    that many reconnects fit in the test's second.
    """
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "gone", f"http://127.0.0.1:{port}")
    api = KubeApi(load_configuration(str(kubeconfig), CONTEXT), NAMESPACE, retries=0)
    monkeypatch.setattr(WatchHandle, "pause", lambda self, seconds: self._stopped.wait(min(seconds, 0.01)))
    watch = job_watch.JobWatch(api, "kbench-run-1-jax-train", window_s=0.2, give_up_after_s=1.0)
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable, match=r"lost the Kubernetes API for \d+ s \(\d+ tries\), past the "
                                                 "deadline of Job kbench-run-1-jax-train"):
        while time.monotonic() - started < 10:
            watch.poll()
    assert watch.reconnects > 9 and 1.0 <= time.monotonic() - started < 5
    api.close()


# -- stopping ----------------------------------------------------------------------------------------------
def test_cancel_deletes_the_running_job_and_its_pods(fake_cluster, make_executor):
    """Ctrl-C: cancel_all returns the running job as CANCELLED promptly and deletes it, pods included."""

    def runs_until_deleted(job: JobRun) -> None:
        pod = job.new_pod()
        job.running(pod)
        job.wait_deleted()

    fake_cluster.behave(runs_until_deleted)
    executor = make_executor(k8s_poll_interval=2.0)
    results = []
    worker = threading.Thread(target=lambda: results.append(run(executor)[0]))
    worker.start()
    limit = time.monotonic() + 10
    while time.monotonic() < limit and not fake_cluster.side.pods(job_name(RUN, "tensorflow", "train")):
        time.sleep(0.05)
    cancelled_at = time.monotonic()
    executor.cancel_all()
    worker.join(10)

    assert results and results[0].state is JobState.CANCELLED
    assert time.monotonic() - cancelled_at < 5
    deletes = fake_cluster.requests("DELETE", r"/jobs/")
    assert deletes and {d.params["propagationPolicy"] for d in deletes} == {"Foreground"}
    assert fake_cluster.jobs() == []
    assert fake_cluster.side.pods(job_name(RUN, "tensorflow", "train")) == []


def test_cleanup_deletes_every_job_of_a_run_and_nothing_else(fake_cluster, make_executor, capsys):
    """``kbench cleanup --run-id`` selects by the run's label."""
    executor = make_executor()
    for job in (spec("tensorflow"), spec("jax"), spec("torch", run_id="other-run")):
        manifest = executor.template.job_manifest(job, executor.k8s)
        fake_cluster.side.batch.create_namespaced_job(NAMESPACE, manifest, _preload_content=False).release_conn()

    code = main(["cleanup", "--run-id", RUN, "--k8s-kubeconfig", str(fake_cluster.kubeconfig),
                 "--k8s-context", CONTEXT])

    assert code == 0
    left = sorted(j["metadata"]["name"] for j in fake_cluster.jobs())
    assert left == [job_name("other-run", "torch", "train")]
    assert {d.params["propagationPolicy"] for d in fake_cluster.requests("DELETE")} == {"Foreground"}
    assert "deleted Job" in capsys.readouterr().out


# -- before anything is submitted ---------------------------------------------------------------------------
def test_check_passes_and_names_the_cluster(make_executor):
    said: list[str] = []
    make_executor(said).check()
    assert any("Kubernetes v1.31" in line and "namespace kbench" in line for line in said)


def test_an_unreachable_api_is_a_clear_error_within_seconds(tmp_path, shared):
    """Nothing listens on the port: check() fails fast and says what to check."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "dead-kubeconfig", f"http://127.0.0.1:{port}")
    executor = KubernetesExecutor(ExecutorContext(shared, tmp_path, None, print),
                                  {"k8s_kubeconfig": str(kubeconfig), "k8s_context": CONTEXT})
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=rf"cannot reach the Kubernetes API at http://127.0.0.1:{port}: "
                                            "connection refused; check --k8s-context"):
        executor.check()
    assert time.monotonic() - started < 10
    executor.close()


def test_a_missing_kubeconfig_is_a_clear_error(tmp_path, shared, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    executor = KubernetesExecutor(ExecutorContext(shared, tmp_path, None, print),
                                  {"k8s_kubeconfig": str(tmp_path / "nope")})
    with pytest.raises(ExecutorError, match="no kubeconfig at .*nope; pass --k8s-kubeconfig"):
        executor.check()


def test_an_unknown_context_is_a_clear_error(fake_cluster, make_executor):
    with pytest.raises(ExecutorError, match="check --k8s-context"):
        make_executor(k8s_context="no-such-context").check()


def test_a_missing_namespace_is_named(make_executor):
    with pytest.raises(ExecutorError, match="namespace elsewhere does not exist; create it with"):
        make_executor(k8s_namespace="elsewhere").check()


def test_a_missing_pvc_is_named(make_executor):
    with pytest.raises(ExecutorError, match="PersistentVolumeClaim no-such-claim does not exist in namespace kbench"):
        make_executor(k8s_pvc="no-such-claim").check()


def test_missing_permissions_are_listed(fake_cluster, make_executor):
    """SelfSubjectAccessReview says which actions the credentials lack, before anything is created."""
    fake_cluster.server.denied.update({("create", "jobs", ""), ("get", "pods", "log")})
    with pytest.raises(ExecutorError, match=r"forbidden: the harness may not create jobs, get pods/log in "
                                            "namespace kbench; bind the Role"):
        make_executor().check()
    assert not fake_cluster.requests("POST", r"/jobs$")


def test_a_forbidden_job_fails_the_dry_run_and_the_job_not_the_harness(fake_cluster, make_executor):
    """A 403 (RBAC, or admission such as Pod Security) stops prepare(); in run() it is a failed job."""
    fake_cluster.server.forbidden.append(("POST", r"/jobs$"))
    executor = make_executor()
    with pytest.raises(ExecutorError, match="403 Forbidden"):
        executor.prepare([get("tensorflow")])
    result, _ = run(executor)
    assert result.state is JobState.FAILED
    assert "create Job" in result.reason and "403 Forbidden" in result.reason


@pytest.fixture
def escalating_template(tmp_path: Path) -> Path:
    """The default Job template, changed to allow privilege escalation: "restricted" refuses its pods."""
    text = DEFAULT_TEMPLATE.read_text()
    assert "allowPrivilegeEscalation: false" in text
    path = tmp_path / "escalating.yaml.j2"
    path.write_text(text.replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"))
    return path


def test_a_template_that_pod_security_refuses_fails_the_preflight_in_seconds(fake_cluster, make_executor,
                                                                             escalating_template):
    """Issue 13 item 2: Pod Security admission enforces on pods; a Job only gets a warning.

    Kubernetes docs, "Pod Security Admission", "Workload resources and Pod
    templates": enforcement applies to the pods, warn and audit also to the
    templates of workload resources. So the Job's dry run passes and the
    preflight dry-runs a pod built from the template as well.
    """
    executor = make_executor(k8s_template=str(escalating_template))
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=r"the pods of Job .* would be refused by Pod Security admission "
                                            r"\(\"restricted:latest\"\) .*violates PodSecurity "
                                            r"\"restricted:latest\": allowPrivilegeEscalation != false"):
        executor.prepare([get("tensorflow")])
    assert time.monotonic() - started < 5
    pod_dry_runs = fake_cluster.requests("POST", r"/pods$")
    assert pod_dry_runs and all(r.params.get("dryRun") == "All" for r in pod_dry_runs)
    assert fake_cluster.jobs() == []


def test_without_leave_to_dry_run_pods_the_jobs_pod_security_warnings_are_said(fake_cluster, make_executor,
                                                                               escalating_template):
    """Issue 13 item 2: the API server's Warning headers on the Job's dry run are read, not dropped."""
    fake_cluster.server.forbidden.append(("POST", r"/pods$"))
    said: list[str] = []
    make_executor(said, k8s_template=str(escalating_template)).prepare([get("tensorflow")])

    assert any("warning: the API server says the pods of Job" in line and "would violate PodSecurity" in line
               and "allowPrivilegeEscalation != false" in line for line in said), said


def test_pods_that_cannot_be_created_fail_the_job_with_the_controllers_event(fake_cluster, make_executor,
                                                                             escalating_template):
    """Issue 13 item 4: FailedCreate (here Pod Security) fails the job after --k8s-start-grace, with its message.

    Kubernetes docs, "Jobs": the Job controller records a FailedCreate event
    when it cannot create a pod and keeps retrying; the harness would otherwise
    wait for the schedule timeout and say only "no pod was created".
    """
    fake_cluster.behave(succeeds())
    executor = make_executor(k8s_template=str(escalating_template), k8s_schedule_timeout=30.0)
    started = time.monotonic()
    result, _ = run(executor)

    assert result.state is JobState.FAILED
    assert "FailedCreate: Error creating: pods" in result.reason
    assert "violates PodSecurity" in result.reason and "--k8s-template" in result.reason
    assert time.monotonic() - started < 10
    assert fake_cluster.jobs() == []


def test_a_pod_stuck_on_its_nfs_mount_fails_with_the_kubelets_event(fake_cluster, make_executor):
    """Issue 13 item 4: ContainerCreating with FailedMount events fails after --k8s-start-grace, naming the fix.

    Kubernetes docs, "Debug Pods": a pod stuck in ContainerCreating shows why in
    its events; the kubelet records FailedMount each time mounting a volume
    fails (here: no NFS client on the node) and keeps retrying.
    """
    mount_error = ('MountVolume.SetUp failed for volume "kbench-shared-volume" : mount failed: exit status 32 '
                   "Output: mount: wrong fs type, bad option, bad superblock on nfs.example:/srv/nfs/kbench; for "
                   "several filesystems (e.g. nfs, cifs) you might need a /sbin/mount.<type> helper program.")

    def cannot_mount(job: JobRun) -> None:
        pod = job.new_pod()
        job.waiting(pod, "ContainerCreating")
        while job.still_exists():
            job.pod_event(pod, "FailedMount", mount_error)
            time.sleep(0.3)

    fake_cluster.behave(cannot_mount)
    executor = make_executor()
    results: list = []
    worker = threading.Thread(target=lambda: results.append(run(executor)[0]), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(15)
    if not results:
        executor.cancel_all()
        worker.join(10)
        pytest.fail("the job was still waiting 15 s after its pod got stuck on its mount")

    assert results[0].state is JobState.FAILED
    assert "FailedMount" in results[0].reason and "mount.<type> helper" in results[0].reason
    assert "NFS client" in results[0].reason
    assert time.monotonic() - started < 10


def test_prepare_dry_runs_one_job_per_image_and_creates_nothing(fake_cluster, make_executor):
    make_executor().prepare([get("tensorflow"), get("jax"), get("theano"), get("cntk")])

    dry = fake_cluster.requests("POST", r"/jobs$")
    assert [r.params.get("dryRun") for r in dry] == ["All", "All"]
    assert sorted(r.data["spec"]["template"]["spec"]["containers"][0]["image"] for r in dry) == [
        "kbench-keras2:0.1.0", "kbench-keras3:0.1.0"]
    assert fake_cluster.jobs() == []


# -- who owns the run folder (issue 13 item 1) ----------------------------------------------------------------
@pytest.fixture
def world_traversable_shared(tmp_path: Path):
    """A shared folder that another uid can reach (tmp_path's parents are 0700), as an NFS mount would be."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="kbench-nfs-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def writes_its_result_as_the_jobs_user(job: JobRun) -> None:
    """A pod whose container writes into the run folder as the pod's runAsUser/runAsGroup, as on a node."""
    context = job.job["spec"]["template"]["spec"]["securityContext"]
    script = ("import sys; open(sys.argv[1], 'w').write('{\"schema\": 1}')")

    def attempt(pod: str) -> None:
        job.running(pod)
        done = subprocess.run(["/usr/bin/python3", "-c", script, str(job.backend_dir / f"{job.phase}.json")],
                              capture_output=True, text=True, check=False, cwd="/", user=context["runAsUser"],
                              group=context["runAsGroup"], extra_groups=[])
        said = done.stderr.strip().splitlines()[-1:] if done.returncode else []
        job.log(pod, "".join(f"kbench-error: {line}\n" for line in said))
        job.terminated(pod, done.returncode)

    drive_pods(job, attempt)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the fake pods as the jobs' uid")
def test_folders_the_harness_made_become_writable_for_the_jobs_user(fake_cluster, make_executor,
                                                                    world_traversable_shared):
    """The harness makes runs/<run>/<backend>/ as itself (0755); the pods, as uid 1000, must write there.

    The harness gives those folders to the jobs' group (setgid, group-writable),
    then a write probe run as the jobs' uid proves it before the job is submitted.
    """
    shared = world_traversable_shared
    (shared / "runs" / RUN / "tensorflow").mkdir(parents=True)  # as the session's RunStore does, as root
    fake_cluster.controller.probe_as_job_user = True
    fake_cluster.behave(writes_its_result_as_the_jobs_user)
    said: list[str] = []
    executor = make_executor(said, k8s_mount_path=str(shared))
    executor.context = dataclasses.replace(executor.context, shared_dir=shared)

    result, _ = run(executor)

    assert result.state is JobState.SUCCEEDED, result.reason
    folder = shared / "runs" / RUN / "tensorflow"
    assert folder.stat().st_gid == 1000 and folder.stat().st_mode & 0o2070 == 0o2070
    assert any("can read and write the run folder" in line for line in said)
    assert not list(shared.rglob(".kbench-probe-*"))
    assert [j["metadata"]["name"] for j in fake_cluster.jobs()] == [job_name(RUN, "tensorflow", "train")]  # no probe


def test_pods_that_do_not_see_the_harnesss_folder_fail_the_probe_in_seconds(fake_cluster, make_executor, shared,
                                                                            tmp_path):
    """--shared-dir that is not the volume's mount: the probe finds no harness file; no job is submitted."""
    elsewhere = tmp_path / "another-volume"
    elsewhere.mkdir()
    fake_cluster.behave(succeeds())
    executor = make_executor(k8s_mount_path=str(elsewhere))
    started = time.monotonic()

    result, _ = run(executor)

    assert result.state is JobState.FAILED
    assert result.reason.startswith("the write probe failed: the pod does not see the file the harness wrote in ")
    assert "(docs/kubernetes.md, 'Who owns what')" in result.reason
    assert time.monotonic() - started < 10
    assert not fake_cluster.requests("POST", r"/jobs$")  # the benchmark Job was never submitted
    second, _ = run(executor, spec("jax"))
    assert second.reason == result.reason  # one probe per run; every job gets its answer


# -- the data set ------------------------------------------------------------------------------------------
def test_a_local_data_set_is_copied_into_the_shared_folder(make_executor, shared, tmp_path):
    archive = tmp_path / "cifar-mini.tar.gz"
    archive.write_bytes(b"not really a tarball, but the executor only copies it")
    folder = tmp_path / "images"
    (folder / "train" / "cat").mkdir(parents=True)
    (folder / "train" / "cat" / "1.png").write_bytes(b"png")
    executor = make_executor()

    staged_file = executor.stage_dataset({"kind": "path", "path": str(archive)})
    staged_again = executor.stage_dataset({"kind": "path", "path": str(archive)})
    staged_folder = executor.stage_dataset({"kind": "path", "path": str(folder)})

    assert staged_file["kind"] == "shared" and staged_file == staged_again
    assert (shared / staged_file["path"]).read_bytes() == archive.read_bytes()
    assert (shared / staged_folder["path"] / "train" / "cat" / "1.png").read_bytes() == b"png"
    assert staged_file["path"].startswith("inputs/")
    assert executor.stage_dataset({"kind": "keras"}) == {"kind": "keras"}
    inside = shared / "data.tar"
    inside.write_bytes(b"x")
    assert executor.stage_dataset({"kind": "path", "path": str(inside)}) == {"kind": "shared", "path": "data.tar"}


def test_no_credential_from_the_kubeconfig_reaches_the_run_folder_or_the_terminal(fake_cluster, make_executor,
                                                                                   shared):
    """The emulator's kubeconfig carries a bearer token; nothing the executor writes or says may hold it."""
    fake_cluster.behave(succeeds(events=1, log="pod output\n"))
    said: list[str] = []
    executor = make_executor(said)
    executor.check()
    result, _ = run(executor)
    assert result.state is JobState.SUCCEEDED, result.reason
    token = "test-token"
    assert token in fake_cluster.kubeconfig.read_text()
    assert not any(token in line for line in said)
    assert token not in repr(result.to_json())
    for path in shared.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
