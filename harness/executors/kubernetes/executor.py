"""The Kubernetes executor: each job is a batch/v1 Job in a cluster, its outputs on NFS.

One Job per (backend, phase), rendered from ``k8s/job.yaml.j2``. The pods
mount the PersistentVolumeClaim that holds the shared folder; this machine
sees the same folder as ``--shared-dir`` (as the seed's master node mounts the
NFS export), which is how run.json reaches the jobs and their results come
back. Before a run's first job, the run's folders are given to the jobs' group
and a short probe Job, run as the jobs' user, proves the pods can read and
write them (``sharing``). While a Job runs the executor follows it with
list-then-watch (``watch``), finds its pods by the Job's uid, judges pods that do not
start from their status and warning events (``starting``), streams their
logs into the run folder (``logs``) and forwards the job's progress events
from the shared folder. Once the Job has a final ``Complete`` or ``Failed``
condition it writes every pod's log and says in one line how the job ended.

The ``kubernetes`` client is imported only when the executor first talks to
a cluster (``connect``), so building the executor class, as the pytest plugin
does at start-up, does not load it. ``--emit-manifests DIR`` writes
the manifests instead of submitting them, with no cluster at all.

Clean up everything of a run (also what a killed harness left behind)::

    kbench cleanup --run-id RUN [--k8s-namespace NS]
    # or: kubectl -n NS delete jobs -l kbench.io/run-id=RUN --cascade=foreground
"""
from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.backends import Backend
from harness.errors import ExecutorError, HarnessError
from harness.executors.base import EventSink, Executor, ExecutorContext
from harness.executors.job_output import EventFollower
from harness.executors.kubernetes import manifests, sharing, status
from harness.executors.kubernetes.errors import AlreadyExists, KubeError, NotFound
from harness.executors.kubernetes.logs import PodLogStreams, save_pod_logs
from harness.executors.kubernetes.options import OPTIONS
from harness.executors.kubernetes.preflight import dry_run, preflight
from harness.executors.kubernetes.settings import K8sSettings
from harness.executors.kubernetes.starting import StartLimits, StartWatch
from harness.executors.kubernetes.watch import JobWatch
from harness.jobs import JobResult, JobSpec, JobState
from harness.rundir import result_file_problem
from harness.tuning import job_env
from harness.workload import layout
from harness.workload.data import DataError, source_key

if TYPE_CHECKING:
    from harness.executors.kubernetes.client import KubeApi

log = logging.getLogger("harness.executors.kubernetes")

DEADLINE_GRACE_S = 120.0
"""How long past a Job's activeDeadlineSeconds the harness waits for the controller to fail it."""
PROBE_TIMEOUT_S = 60.0
"""The write probe's own run time (its deadline adds --k8s-schedule-timeout for scheduling and the image pull)."""
LOG_DRAIN_S = 10.0
"""How long the log streams of a Job that ended may take to deliver their last lines."""
REPLACE_WAIT_S = 120.0
"""How long to wait for a stale Job of the same name to go away before creating ours."""


class KubernetesExecutor(Executor):
    """Jobs in a Kubernetes cluster; the shared folder is an NFS-backed ReadWriteMany volume."""

    name = "kubernetes"
    options = OPTIONS

    def __init__(self, context: ExecutorContext, settings: Mapping[str, Any]):
        super().__init__(context, settings)
        self.k8s = K8sSettings.from_settings(self.settings)
        self.template = manifests.ManifestTemplate(self.k8s.template)
        self._api: KubeApi | None = None
        self._lock = threading.Lock()
        self._watches: dict[str, JobWatch] = {}
        self._run_ids: set[str] = set()
        self._closed = False
        self._events_unreadable = False
        self._probe_lock = threading.Lock()
        self._probed: dict[str, str] = {}
        """Run id -> the probe's failure ("" when it passed)."""
        atexit.register(self._at_exit)

    # -- the cluster ---------------------------------------------------------------------------
    @property
    def api(self) -> KubeApi:
        """The client wrapper, built on first use (imports the ``kubernetes`` client)."""
        with self._lock:
            if self._api is None:
                self._api = connect(self.k8s)
            return self._api

    @property
    def emitting(self) -> bool:
        return self.k8s.emit_dir is not None

    # -- before anything runs -------------------------------------------------------------------
    def check(self) -> None:
        if self.emitting:
            self.context.say(f"--emit-manifests: writing Job manifests to {self.k8s.emit_dir}; nothing is submitted")
            return
        version = preflight(self.api, self.k8s, self.context.say)
        self.context.say(f"Kubernetes {version.get('gitVersion', '?')} at {self.api.host}, namespace "
                         f"{self.k8s.namespace}, shared volume {self.k8s.pvc} (seen here as {self.context.shared_dir})")

    def stage_dataset(self, dataset: Mapping[str, Any]) -> dict:
        """Copy a data set on this machine into the shared folder, where every pod can read it."""
        if dataset.get("kind") != "path" or self.emitting:
            return dict(dataset)
        source = Path(dataset["path"]).resolve()
        shared = Path(self.context.shared_dir).resolve()
        if source.is_relative_to(shared):
            return {"kind": "shared", "path": source.relative_to(shared).as_posix()}
        try:
            key = source_key("path", str(source))
        except DataError as err:
            raise ExecutorError(str(err)) from None
        relative = layout.input_path(key, source.name)
        target = shared / relative
        if not target.exists():
            self.context.say(f"copying the data set {source} to the shared folder as {relative}")
            _copy_atomically(source, target)
        return {"kind": "shared", "path": relative}

    def prepare(self, backends: Sequence[Backend]) -> None:
        """Say what each image's jobs ask of the cluster; let the API server admit one Job per image (a dry run).

        The line is said with ``--emit-manifests`` too, so the GPU quantity,
        node selector and tolerations show without reading the manifests.
        """
        by_image: dict[str, list[Backend]] = {}
        for backend in backends:
            by_image.setdefault(self.k8s.image_for(backend.keras_line), []).append(backend)
        for image, members in by_image.items():
            names = ", ".join(b.name for b in members)
            self.context.say(f"{image} jobs ({names}): {manifests.placement(self.k8s, members[0].keras_line)}")
            if self.emitting:
                continue
            backend = members[0]
            sample = JobSpec("preflight", backend, "train", job_env(backend, self.k8s.threads), 60.0, self.k8s.threads)
            dry_run(self.api, self.template.job_manifest(sample, self.k8s), self.context.say)

    def default_parallel(self, n_jobs: int) -> int:
        return max(1, n_jobs)

    def threads_per_job(self, parallel: int) -> int:
        return self.k8s.threads

    # -- running ----------------------------------------------------------------------------------
    def run(self, job: JobSpec, on_event: EventSink) -> JobResult:
        start = time.monotonic()
        name = manifests.job_name(job.run_id, job.backend.name, job.phase)
        result = JobResult(job.backend.name, job.phase, JobState.FAILED, executor=self.name,
                           started_at=time.time())
        result.details.update(job=name, namespace=self.k8s.namespace,
                              image=self.k8s.image_for(job.backend.keras_line))
        try:
            if self.emitting:
                paths = self._emit(job)
                result.state = JobState.SKIPPED
                result.reason = f"not submitted (--emit-manifests): wrote {', '.join(str(p) for p in paths)}"
                result.details["manifests"] = [str(p) for p in paths]
            elif self.stop_requested.is_set():
                result.state, result.reason = JobState.CANCELLED, "cancelled before it started"
            else:
                self._share_run_folder(job)
                self._run_job(job, name, on_event, result)
        except HarnessError as err:
            result.state = JobState.CANCELLED if self.stop_requested.is_set() else JobState.FAILED
            result.reason = status.one_line(str(err), 500)
        result.wall_s = round(time.monotonic() - start, 3)
        result.finished_at = time.time()
        return result

    # -- the shared folder: ownership and the write probe ---------------------------------------------
    def _share_run_folder(self, job: JobSpec) -> None:
        """Before a run's first job: give its folders to the jobs' group, and prove the pods can write there.

        Once per run (later jobs wait for the first); a failure fails every job
        of the run with the same one-line reason, before any of them is submitted.
        """
        with self._probe_lock:
            if job.run_id not in self._probed:
                shared = Path(self.context.shared_dir)
                folders = sharing.probe_folders(shared, job.run_id, sorted(self._backends_of(job)))
                try:
                    for folder in folders:
                        sharing.share_folder(folder, self.k8s.uid, self.k8s.gid)
                    self._run_probe(job, folders)
                    self._probed[job.run_id] = ""
                except HarnessError as err:
                    self._probed[job.run_id] = str(err)
                finally:
                    sharing.remove_probes(folders)
            problem = self._probed[job.run_id]
        if problem:
            raise ExecutorError(problem)
        # a backend the probe did not see (a run resumed with more backends) still gets the group
        sharing.share_folder(Path(layout.backend_dir(str(self.context.shared_dir), job.run_id, job.backend.name)),
                             self.k8s.uid, self.k8s.gid)

    def _backends_of(self, job: JobSpec) -> set[str]:
        """The backends of the job's run that have a folder already (the session made them), and the job's."""
        run_dir = Path(layout.run_dir(str(self.context.shared_dir), job.run_id))
        try:
            found = {p.name for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
        except OSError:
            found = set()
        return found | {job.backend.name}

    def _run_probe(self, job: JobSpec, folders: list[Path]) -> None:
        """Run the write probe as the jobs' user; raise ``ExecutorError`` with the fix when it fails."""
        token = uuid.uuid4().hex
        shared = Path(self.context.shared_dir)
        sharing.write_harness_probes(folders, token)
        probe = dataclasses.replace(job, phase="probe", timeout_s=PROBE_TIMEOUT_S)
        values = manifests.template_values(probe, self.k8s, token)
        values["command"] = ["python", "-c", sharing.PROBE_SCRIPT, token,
                             *(sharing.in_container(f, shared, self.k8s.mount_path) for f in folders)]
        manifest = self.template.render(values)
        name = manifest["metadata"]["name"]
        self.context.say(f"checking that the jobs (uid {self.k8s.uid}, gid {self.k8s.gid}) can read and write the "
                         f"run folder: Job {name}")
        watch = JobWatch(self.api, name, self.k8s.poll_s)
        with self._lock:
            self._watches[name] = watch
        try:
            created = self._submit(probe, manifest, token)
            job_uid = (created.get("metadata") or {}).get("uid")
            selectors = manifests.pod_selectors(job_uid, name)
            starting = StartWatch(StartLimits(self.k8s.schedule_timeout_s, self.k8s.start_grace_s))
            started = time.monotonic()
            deadline = manifests.active_deadline_s(probe, self.k8s) + DEADLINE_GRACE_S
            pods: list[dict] = []
            while not status.finished(watch.poll()):
                if self.stop_requested.is_set():
                    raise ExecutorError("cancelled: the harness was interrupted")
                if watch.deleted:
                    raise ExecutorError(f"the write probe Job {name} was deleted before it finished")
                pods = self._list_pods(selectors) or pods
                events = self._warning_events() if starting.needs_events(pods) else []
                ending = self._stuck(starting, pods, events, job_uid, time.monotonic() - started, deadline)
                if ending:
                    raise ExecutorError(f"the write probe could not run: {ending[1]}")
            pods = self._list_pods(selectors) or pods
            newest = status.sort_pods(pods)[-1] if pods else {}
            text = ""
            if newest:
                try:
                    text = self.api.pod_log(status.name_of(newest), manifests.CONTAINER)
                except KubeError as err:
                    text = status.terminated(newest, manifests.CONTAINER).get("message") or str(err)
            judged = status.verdict(watch.job or {}, pods, manifests.CONTAINER, str(text), self.k8s.memory)
            if judged.state is not JobState.SUCCEEDED:
                said = status.error_line(str(text)) or judged.reason
                raise ExecutorError(
                    f"the write probe failed: {said}; the pods (uid {self.k8s.uid}, gid {self.k8s.gid}) must be "
                    f"able to read and write {shared} through PVC {self.k8s.pvc} (docs/kubernetes.md, 'Who owns "
                    "what')")
            waited = time.monotonic()
            while missing := sharing.unanswered(folders, token):
                if time.monotonic() - waited > self.k8s.result_wait_s:
                    raise ExecutorError(
                        f"the write probe ran but its file did not appear in {missing[0]} within "
                        f"{self.k8s.result_wait_s:.0f} s; --shared-dir must be this machine's mount of the volume "
                        f"behind PVC {self.k8s.pvc}")
                self.stop_requested.wait(0.5)
        finally:
            with self._lock:
                self._watches.pop(name, None)
            try:
                self.api.delete_job(name, "Foreground", retries=1)
            except KubeError as err:
                log.warning("could not delete the probe Job %s: %s", name, err)

    def _emit(self, job: JobSpec) -> list[Path]:
        """Write the job's manifest; a train job also writes its predict and fidelity jobs', which would never run."""
        later = [p for p in layout.PHASES if p != "train" and p not in layout.EXCLUSIVE_PHASES] \
            if job.phase == "train" else []  # a speed job needs no weights: it is emitted when it is run
        jobs = [job] + [dataclasses.replace(job, phase=p) for p in later]
        return [manifests.write_manifest(self.k8s.emit_dir, self.template.job_manifest(j, self.k8s)) for j in jobs]

    def _run_job(self, job: JobSpec, name: str, on_event: EventSink, result: JobResult) -> None:
        folder = Path(layout.backend_dir(str(self.context.shared_dir), job.run_id, job.backend.name))
        follower = EventFollower(folder / layout.events_name(job.phase))
        watch = JobWatch(self.api, name, self.k8s.poll_s)
        streams = PodLogStreams(self.api, manifests.CONTAINER, folder, job.phase, min(1.0, self.k8s.poll_s))
        with self._lock:
            self._watches[name] = watch
            self._run_ids.add(job.run_id)
        try:
            submission = uuid.uuid4().hex
            created = self._submit(job, self.template.job_manifest(job, self.k8s, submission), submission)
            job_uid = (created.get("metadata") or {}).get("uid")
            selectors = manifests.pod_selectors(job_uid, name)
            starting = StartWatch(StartLimits(self.k8s.schedule_timeout_s, self.k8s.start_grace_s))
            submitted = time.monotonic()
            deadline = manifests.active_deadline_s(job, self.k8s) + DEADLINE_GRACE_S
            pods: list[dict] = []
            ending: tuple[JobState, str] | None = None
            while True:
                current = watch.poll()
                for event in follower.new_events():
                    on_event(job, event)
                if self.stop_requested.is_set():
                    ending = (JobState.CANCELLED, "cancelled: the harness was interrupted")
                elif status.finished(current):
                    break
                elif watch.deleted:
                    ending = (JobState.FAILED, (f"Job {name} was deleted before it finished (kubectl, a cleanup "
                                               "or another harness?)"))
                else:
                    try:
                        pods = self._list_pods(selectors) or pods
                    except KubeError as err:
                        log.warning("cannot list the pods of Job %s: %s", name, err)
                    streams.update(pods)
                    events = self._warning_events() if starting.needs_events(pods) else []
                    ending = self._stuck(starting, pods, events, job_uid, time.monotonic() - submitted, deadline)
                    if ending and self._recheck(watch):  # the Job ended or went away meanwhile
                        if status.finished(watch.job):
                            ending = None
                            break
                        ending = (JobState.FAILED, (f"Job {name} was deleted before it finished (kubectl, a "
                                                    "cleanup or another harness?)"))
                if ending:
                    try:
                        self.api.delete_job(name, "Foreground", retries=1)
                    except KubeError as err:
                        log.warning("could not delete Job %s: %s", name, err)
                    break
            retries = 0 if ending and ending[0] is JobState.CANCELLED else None
            try:
                pods = self._list_pods(selectors, retries=retries) or pods
            except KubeError as err:
                log.warning("cannot list the pods of Job %s: %s", name, err)
            streams.stop(wait_s=0.0 if retries == 0 else LOG_DRAIN_S)
            saved = save_pod_logs(self.api, pods, manifests.CONTAINER, folder, job.phase, retries=retries,
                                  streams=streams)
            streams.remove_files()
            for event in follower.new_events():
                on_event(job, event)
            self._conclude(job, watch, pods, saved.final_text, ending, result)
            result.details.update(
                pods=[status.name_of(p) for p in status.sort_pods(pods)],
                nodes=sorted({(p.get("spec") or {}).get("nodeName") for p in pods} - {None}),
                logs=[str(p) for p in saved.paths], relists=watch.relists, reconnects=watch.reconnects)
        finally:
            streams.stop(wait_s=0.0)
            with self._lock:
                self._watches.pop(name, None)

    @staticmethod
    def _recheck(watch: JobWatch) -> bool:
        """Read the Job once more before giving up on it: True if it has ended or is gone.

        A watch can miss a change (a deletion between a list and the next
        watch, on a server that does not replay from the resourceVersion).
        """
        try:
            watch.relist()
        except KubeError as err:
            log.info("cannot read Job %s again: %s", watch.name, err)
            return False
        return watch.deleted or bool(status.finished(watch.job))

    def _list_pods(self, selectors: Sequence[str], retries: int | None = None) -> list[dict]:
        """The Job's pods, by the first selector that finds any (controller-uid, then the legacy label)."""
        for selector in selectors:
            pods = self.api.list_pods(selector, retries=retries)
            if pods:
                return pods
        return []

    def _warning_events(self) -> list[dict]:
        """The namespace's warning events, or none when they cannot be read (then only timeouts apply)."""
        if self._events_unreadable:
            return []
        try:
            return self.api.list_warning_events()
        except KubeError as err:
            if err.status in (401, 403):
                self._events_unreadable = True
                self.context.say(f"warning: cannot read events ({err}); FailedMount and FailedCreate will show only "
                                 "as timeouts: apply k8s/base/role.yaml again")
            else:
                log.warning("cannot list events: %s", err)
            return []

    def _stuck(self, starting: StartWatch, pods: list[dict], events: list[dict], job_uid: str | None,
               waited_s: float, deadline_s: float) -> tuple[JobState, str] | None:
        """A reason to stop waiting for a Job that is not over, or None."""
        problem = starting.judge(pods, manifests.CONTAINER, events, job_uid)
        if problem:
            return JobState.FAILED, problem
        if not pods and waited_s > self.k8s.schedule_timeout_s:
            return JobState.FAILED, (f"no pod was created within {waited_s:.0f} s; see `kubectl -n "
                                     f"{self.k8s.namespace} describe job` for the reason (quota, admission)")
        if waited_s > deadline_s:
            return JobState.TIMED_OUT, (f"the Job did not end {DEADLINE_GRACE_S:.0f} s after its deadline; is the "
                                        "cluster's Job controller running?")
        return None

    def _conclude(self, job: JobSpec, watch: JobWatch, pods: list[dict], final_log: str,
                  ending: tuple[JobState, str] | None, result: JobResult) -> None:
        newest = status.sort_pods(pods)[-1] if pods else {}
        if ending:
            result.state, result.reason = ending
            result.exit_code = status.exit_code(newest, manifests.CONTAINER) if newest else None
        else:
            judged = status.verdict(watch.job or {}, pods, manifests.CONTAINER, final_log, self.k8s.memory)
            result.state, result.reason, result.exit_code = judged.state, judged.reason, judged.exit_code
            if judged.state is JobState.SUCCEEDED:
                self._expect_result_file(job, result)
        if not result.ok:
            result.log_tail = status.log_tail(final_log)

    def _expect_result_file(self, job: JobSpec, result: JobResult) -> None:
        """A Complete Job counts only if its result file shows up here (NFS may lag)."""
        path = Path(layout.backend_dir(str(self.context.shared_dir), job.run_id, job.backend.name),
                    layout.result_name(job.phase))
        waited = time.monotonic()
        while not path.is_file():
            if time.monotonic() - waited > self.k8s.result_wait_s:
                result.state = JobState.FAILED
                result.reason = (f"the Job completed but {path} did not appear within {self.k8s.result_wait_s:.0f} s; "
                                 f"--shared-dir must be this machine's mount of the volume behind PVC {self.k8s.pvc}")
                return
            try:  # listing the folder makes an NFS client revalidate its cached directory entries
                os.listdir(path.parent)
            except OSError:
                pass
            if self.stop_requested.wait(0.5):
                result.state, result.reason = JobState.CANCELLED, "cancelled while waiting for the result file"
                return
        problem = result_file_problem(path)
        if problem:
            result.state = JobState.FAILED
            result.reason = f"the Job completed but its result is unusable: {problem}"

    def _submit(self, job: JobSpec, manifest: dict, submission: str) -> dict:
        """Create the Job and return it as created; replace one of the same name left by an earlier session."""
        name = manifest["metadata"]["name"]
        try:
            return self.api.create_job(manifest)
        except AlreadyExists:
            pass
        try:
            existing = self.api.read_job(name)
        except NotFound:
            existing = {}
        metadata = existing.get("metadata") or {}
        if (metadata.get("annotations") or {}).get(manifests.SUBMISSION_ANNOTATION) == submission:
            return existing  # our own create, retried after its answer was lost
        if existing and (metadata.get("labels") or {}).get(manifests.RUN_LABEL) != manifests.label_value(job.run_id):
            raise KubeError(f"a Job named {name} already exists in namespace {self.k8s.namespace} and is not from "
                            f"run {job.run_id}; delete it or choose another --run-id")
        if existing:
            log.info("replacing Job %s, left by an earlier session of run %s", name, job.run_id)
            self.api.delete_job(name, "Foreground")
            waited = time.monotonic()
            while True:
                try:
                    self.api.read_job(name)
                except NotFound:
                    break
                if time.monotonic() - waited > REPLACE_WAIT_S or self.stop_requested.wait(0.5):
                    raise KubeError(f"the earlier Job {name} did not go away within {REPLACE_WAIT_S:.0f} s; delete "
                                    f"it (kubectl -n {self.k8s.namespace} delete job {name}) and run again")
        return self.api.create_job(manifest)

    # -- stopping ---------------------------------------------------------------------------------
    def cancel_all(self) -> None:
        """Stop waiting, and delete the run's unfinished Jobs with their pods (Foreground propagation)."""
        super().cancel_all()
        with self._lock:
            watches = dict(self._watches)
            run_ids = set(self._run_ids)
            api = self._api
        for watch in watches.values():
            watch.stop()
        if api is None or self.emitting:
            return
        names = set(watches)
        for run_id in run_ids:
            try:
                listed = api.list_jobs(label_selector=manifests.run_selector(run_id)).get("items") or []
            except HarnessError as err:
                log.warning("cannot list the Jobs of run %s: %s", run_id, err)
                continue
            names.update(status.name_of(j) for j in listed if not status.finished(j))
        for name in sorted(names):
            try:
                api.delete_job(name, "Foreground", retries=1)
            except HarnessError as err:
                self.context.say(f"could not delete Job {name}: {err}")

    def _at_exit(self) -> None:
        if not self._closed and self._watches:
            self.cancel_all()

    def close(self) -> None:
        self._closed = True
        atexit.unregister(self._at_exit)
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy a file or folder to ``target`` (inside its own new folder) so that it appears complete or not at all."""
    folder = target.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if source.is_dir():
            shutil.copytree(source, staging / target.name)
        else:
            shutil.copy2(source, staging / target.name)
        try:
            os.rename(staging, folder)
        except OSError:
            if not target.exists():  # not a race with another harness that staged it first
                raise
    except OSError as err:
        raise ExecutorError(f"cannot copy the data set {source} into the shared folder ({err}); check that "
                            f"{folder.parent} is writable") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- the cluster ------------------------------------------------------------------------------------
def connect(k8s: K8sSettings) -> KubeApi:
    """A client for the cluster the settings name (kubeconfig, context, namespace).

    The one place the ``kubernetes`` client is imported, here rather than at the
    top: the pytest plugin builds every executor class at start-up to read its
    options, and the client takes a quarter of a second to import that a local
    run, or ``pytest --help``, should not pay.
    """
    from harness.executors.kubernetes.client import KubeApi, load_configuration

    return KubeApi(load_configuration(k8s.kubeconfig, k8s.context), k8s.namespace)


# -- cleanup command ---------------------------------------------------------------------------------
def cleanup(run_id: str, settings: Mapping[str, Any], say: Any = print) -> list[str]:
    """Delete every Job of a run (and, by Foreground propagation, their pods); return their names."""
    k8s = K8sSettings.from_settings(settings)
    api = connect(k8s)
    try:
        listed = api.list_jobs(label_selector=manifests.run_selector(run_id)).get("items") or []
        names = sorted(status.name_of(j) for j in listed)
        for name in names:
            api.delete_job(name, "Foreground")
            say(f"deleted Job {name}")
        if not names:
            say(f"no Jobs of run {run_id} in namespace {k8s.namespace}")
        return names
    finally:
        api.close()

