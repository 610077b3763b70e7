"""What happens to a Job in the fake cluster: the behaviours its fake controller and kubelet play.

Each behaviour receives a ``JobRun`` (see ``k8s_fixtures``) and drives it the
way a real Job controller and kubelet would, through the API: pods created
from the Job's template, their status as they are scheduled, run, fail or are
disrupted, and the Job's conditions at the end. The scripted ones stand for
one situation each (an image that cannot be pulled, an OOM kill, an
eviction...); ``runs_locally`` really runs the container command, for the
end-to-end test.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from k8s_fixtures import Behaviour, JobRun, condition, drive_pods

from tests.conftest import TIMING_KNOBS


# -- scripted situations ------------------------------------------
def succeeds(events: int = 2, hold_s: float = 0.0, log: str = "training...\n") -> Behaviour:
    """One pod runs, emits progress events, writes its result and exits 0."""

    def behave(run: JobRun, pod: str | None = None) -> None:
        pod = pod or run.new_pod()
        run.running(pod)
        run.write_events({"event": "start"}, *({"event": "epoch_end", "epoch": i + 1} for i in range(events)))
        run.write_result()
        run.log(pod, log + ":::KBENCH {\"event\": \"done\"}\n")
        run.terminated(pod, 0)
        run.complete(hold_s=hold_s)

    return behave


def exits(code: int, log: str) -> Behaviour:
    """Every pod exits with ``code``; the Job controller's rules (``drive_pods``) decide retries and the end."""

    def attempt(run: JobRun, pod: str) -> None:
        run.running(pod)
        run.log(pod, log)
        run.terminated(pod, code, message=log[-200:])

    return lambda run: drive_pods(run, lambda pod: attempt(run, pod))


def oom_killed() -> Behaviour:
    """Every pod is OOMKilled (exit 137): no rule matches, so each try counts until backoffLimit."""

    def attempt(run: JobRun, pod: str) -> None:
        run.running(pod)
        run.log(pod, "epoch 1 ...\n")
        run.terminated(pod, 137, reason="OOMKilled")

    return lambda run: drive_pods(run, lambda pod: attempt(run, pod))


def image_cannot_be_pulled(answer: str = "not found", recovers: bool = False) -> Behaviour:
    """The kubelet cannot pull the image; the controller waits forever (the executor must not).

    As the kubelet reports it (Kubernetes docs, "Images", "ImagePullBackOff"):
    the container waits in ErrImagePull, then ImagePullBackOff while the kubelet
    retries with a growing delay; each failed pull is a warning event "Failed"
    whose message carries the registry's answer. With ``recovers`` the second
    pull succeeds (a 429 or a timeout that went away) and the pod runs.
    """

    def behave(run: JobRun) -> None:
        image = run.container["image"]
        pod = run.new_pod()
        for attempt in range(2):
            said = f'failed to pull and unpack image "docker.io/library/{image}": {answer}'
            run.waiting(pod, "ErrImagePull", said)
            run.pod_event(pod, "Failed", f'Failed to pull image "{image}": {said}')
            time.sleep(0.2)
            run.waiting(pod, "ImagePullBackOff", f'Back-off pulling image "{image}"')
            run.pod_event(pod, "BackOff", f'Back-off pulling image "{image}"', kind_of_event="Normal")
            if recovers and attempt == 0:
                time.sleep(1.0)
                succeeds()(run, pod)
                return
        run.wait_deleted()

    return behave


def unschedulable(message: str = "0/3 nodes are available: 3 Insufficient cpu.") -> Behaviour:
    def behave(run: JobRun) -> None:
        pod = run.new_pod()
        run.unschedulable(pod, message)
        run.wait_deleted()

    return behave


def deadline_exceeded(runs_for_s: float = 1.0) -> Behaviour:
    """The Job outlives activeDeadlineSeconds while its pod still runs.

    Kubernetes docs, "Jobs", "Job termination and cleanup": once a Job reaches
    activeDeadlineSeconds, all of its running pods are terminated (deleted:
    their logs go with them) and the Job becomes Failed with reason
    DeadlineExceeded.
    """

    def behave(run: JobRun) -> None:
        pod = run.new_pod()
        run.running(pod)
        run.log(pod, "epoch 1 ...\n")
        time.sleep(runs_for_s / 2)
        run.log(pod, "epoch 1 ...\nepoch 2 ...\n")
        time.sleep(runs_for_s / 2)
        run.delete_pod(pod)
        run.fail("DeadlineExceeded", "Job was active longer than specified deadline")

    return behave


def disrupted_then(reason: str, then: str, pod_reason: str = "", message: str = "") -> Behaviour:
    """The first pod is disrupted (evicted, preempted); what follows is ``then``.

    ``then``: "succeeds" (the replacement pod completes), "BackoffLimitExceeded"
    (every pod is disrupted the same way, and the controller's rules decide),
    or "DeadlineExceeded" (the Job's deadline passes while the replacement runs:
    the controller deletes it and fails the Job, see ``deadline_exceeded``).
    A disruption with a DisruptionTarget condition matches the Job's Ignore
    rule and is not counted; an eviction without one counts as a failure.
    """

    def attempt(run: JobRun, pod: str) -> None:
        run.running(pod)
        if len(run.pods) == 1 or then == "BackoffLimitExceeded":
            run.log(pod, "epoch 1 ...\n")
            conditions = [condition("DisruptionTarget", reason, message)] if reason else []
            run.terminated(pod, 137, conditions=conditions, pod_reason=pod_reason, pod_message=message)
        elif then == "succeeds":
            run.write_events({"event": "start"}, {"event": "epoch_end", "epoch": 1})
            run.write_result()
            run.log(pod, "training...\n")
            run.terminated(pod, 0)
        else:
            run.log(pod, "epoch 1 ...\n")
            run.delete_pod(pod)
            run.fail("DeadlineExceeded", "Job was active longer than specified deadline")

    return lambda run: drive_pods(run, lambda pod: attempt(run, pod))


# -- the end-to-end kubelet: run the container command here ---------------------------------------
def runs_locally(images: dict[str, Any], work_dir: Path, scratch: Path) -> Behaviour:
    """Run each pod's container command as a local process with the harness's local runtimes.

    ``images`` maps an image to the built ``harness.runtimes.Runtime`` that
    stands in for it (its interpreter is the image's ``python``); the code the
    images copy is staged under ``work_dir`` as the local executor stages it;
    each pod's /tmp emptyDir is a fresh folder under ``scratch``. The Job
    controller's rules are the unit tests' stand-in's (``drive_pods``:
    backoffLimit, podFailurePolicy's Ignore, FailJob and Count, and
    activeDeadlineSeconds, past which the running pod is deleted and the Job
    fails); a deleted Job kills its process.
    """
    from harness.executors.local import kill_group, stage_workload

    code_dir = stage_workload(work_dir)  # what the images copy to /opt/kbench

    def behave(run: JobRun) -> None:
        runtime = images[run.container["image"]]

        def attempt(pod: str) -> None:
            run.running(pod, node=f"node-{len(run.pods)}")
            tmp = scratch / pod / "tmp"  # the pod's /tmp emptyDir
            tmp.mkdir(parents=True)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            # the suite's short timed sections (tests/conftest.py), as a cluster's pods would get them in their env
            env.update({k: os.environ[k] for k in TIMING_KNOBS if k in os.environ})
            env.update({k: v.replace("/tmp", str(tmp), 1) if v.startswith("/tmp") else v for k, v in run.env.items()})
            env.update(runtime.env)
            env["PYTHONPATH"] = str(code_dir)
            argv = [str(runtime.python)] + run.command[1:]
            log_path = tmp / "container.log"
            with open(log_path, "wb") as log:
                log.write(f"$ {shlex.join(run.command)}\n".encode())
                log.flush()
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=str(tmp), start_new_session=True)
                ending = ""
                while proc.poll() is None:
                    run.log(pod, log_path.read_text(errors="replace"))
                    if not run.side.pod_exists(pod):
                        ending = "deleted"
                    elif run.past_deadline():
                        ending = "DeadlineExceeded"
                    if ending:
                        kill_group(proc, grace_s=5)
                        break
                    time.sleep(0.2)
            text = log_path.read_text(errors="replace")
            run.log(pod, text)
            if ending == "deleted":
                return
            if ending == "DeadlineExceeded":
                run.deadline_exceeded(pod)
                return
            run.terminated(pod, proc.returncode if proc.returncode >= 0 else 128 - proc.returncode,
                           message=text[-2048:] if proc.returncode else "")

        drive_pods(run, attempt)

    return behave
