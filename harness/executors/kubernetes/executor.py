"""The Kubernetes executor: each job is a batch/v1 Job in a cluster, its outputs on NFS.

One Job per (backend, phase), rendered from ``k8s/job.yaml.j2``. The pods
mount the PersistentVolumeClaim that holds the shared folder; this machine
sees the same folder as ``--shared-dir`` (as the seed's master node mounts the
NFS export), which is how run.json reaches the jobs and their results come
back. Before a run's first job, the run's folders are given to the jobs' group
and a short probe Job, run as the jobs' user, proves the pods can read and
write them and read the staged data set (``sharing``). Before any Job, the
executor reads how many fit in the cluster (``capacity``) and submits no more
at once. Each Job is created and followed by a ``following.JobFollower``:
list-then-watch that waits out an API server that is away, pods found by the
Job's uid and judged while they do not start (``starting``), and a Job the
harness gives up on deleted (or the exact cleanup command said). Meanwhile its
pods' logs are streamed into the run folder (``logs``) and the job's progress
events are forwarded from the shared folder. Once the Job has a final
``Complete`` or ``Failed`` condition it writes every pod's log and says in one
line how the job ended.

The ``kubernetes`` client is imported only when the executor first talks to
a cluster (``connect``), so building the executor class, as the pytest plugin
does at start-up, does not load it. ``--emit-manifests DIR`` writes the
manifests instead of submitting them, with no cluster at all.

Clean up everything of a run (also what a killed harness left behind)::

    kbench cleanup --run-id RUN [--k8s-namespace NS]
    # or: kubectl -n NS delete jobs -l kbench.io/run-id=RUN --cascade=foreground
"""
from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import phases
from harness.backends import Backend
from harness.errors import ExecutorError, HarnessError
from harness.executors.base import EventSink, Executor, ExecutorContext
from harness.executors.job_log import EventFollower
from harness.executors.kubernetes import capacity, manifests, sharing, status
from harness.executors.kubernetes.errors import ClusterUnreachable, Forbidden, KubeError
from harness.executors.kubernetes.following import Followed, JobFollower, Jobs, cleanup_command
from harness.executors.kubernetes.logs import PodLogStreams, save_pod_logs
from harness.executors.kubernetes.preflight import dry_run, preflight
from harness.executors.kubernetes.settings import K8sSettings
from harness.jobs import JobResult, JobSpec, JobState
from harness.run_store import RunStore, result_file_problem
from harness.tuning import job_env
from harness.workload import layout
from harness.workload.data import DataError, source_key

if TYPE_CHECKING:
    from harness.executors.kubernetes.client import KubeApi

log = logging.getLogger("harness.executors.kubernetes")

PROBE_TIMEOUT_S = 60.0
"""The write probe's own run time (its deadline adds the time to wait for room, to schedule and to pull)."""
LOG_DRAIN_S = 10.0
"""How long the log streams of a Job that ended may take to deliver their last lines."""


class KubernetesExecutor(Executor):
    """Jobs in a Kubernetes cluster; the shared folder is an NFS-backed ReadWriteMany volume."""

    name = "kubernetes"

    def __init__(self, context: ExecutorContext, settings: Mapping[str, Any]):
        super().__init__(context, settings)
        self.k8s = K8sSettings.from_settings(self.settings)
        self.template = manifests.ManifestTemplate(self.k8s.template)
        self._api: KubeApi | None = None
        self._lock = threading.Lock()
        self._jobs = Jobs()
        self._closed = False
        self._events_unreadable = False
        self._probe_lock = threading.Lock()
        self._probed: dict[str, str] = {}
        """Run id -> the probe's failure ("" when it passed)."""
        self._inputs: list[Path] = []
        """Data sets staged in the shared folder: the probe reads them as the pods will."""
        self._backends: list[str] = ["tensorflow"]
        """The run's backends (``prepare``): where their nodes may be decides the room."""
        self._room: capacity.Room | None = None
        self._slots: threading.BoundedSemaphore | None = None
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
    def unavailable(self, backends: Sequence[Backend]) -> dict[str, str]:
        """Backends the images' architectures cannot run (cntk outside amd64), each with the reason."""
        found = {b.name: self.k8s.architecture_problem(b.name) for b in backends}
        return {name: why for name, why in found.items() if why}

    def check(self) -> None:
        if self.emitting:
            self.context.say(f"--emit-manifests: writing Job manifests to {self.k8s.emit_dir}; nothing is submitted")
            return
        version = preflight(self.api, self.k8s, self.context.say)
        self.context.say(f"Kubernetes {version.get('gitVersion', '?')} at {self.api.host}, namespace "
                         f"{self.k8s.namespace}, shared volume {self.k8s.pvc} (seen here as {self.context.shared_dir})")

    def stage_dataset(self, dataset: Mapping[str, Any]) -> dict:
        """Copy a data set on this machine into the shared folder, readable by every pod."""
        if dataset.get("kind") != "path" or self.emitting:
            return dict(dataset)
        source = Path(dataset["path"]).resolve()
        shared = Path(self.context.shared_dir).resolve()
        if source.is_relative_to(shared):
            self._inputs.append(source)
            return {"kind": "shared", "path": source.relative_to(shared).as_posix()}
        try:
            key = source_key("path", str(source))
        except DataError as err:
            raise ExecutorError(str(err)) from None
        relative = layout.input_path(key, source.name)
        target = shared / relative
        if not target.exists():
            self.context.say(f"copying the data set {source} to the shared folder as {relative}")
        sharing.stage_input(source, target)
        self._inputs.append(target)
        return {"kind": "shared", "path": relative}

    def prepare(self, backends: Sequence[Backend]) -> None:
        """Say what each image's jobs ask of the cluster; let the API server admit one Job per image (a dry run).

        The line is said with ``--emit-manifests`` too, so the GPU quantity,
        node selector and tolerations show without reading the manifests.
        """
        by_image: dict[tuple[str, str], list[Backend]] = {}
        for backend in backends:
            said = manifests.placement(self.k8s, backend.name)
            by_image.setdefault((self.k8s.image_for(backend.keras_line), said), []).append(backend)
        self._backends = [b.name for b in backends] or self._backends
        dry_run_images: set[str] = set()
        for (image, said), members in by_image.items():
            self.context.say(f"{image} jobs ({', '.join(b.name for b in members)}): {said}")
            if self.emitting or image in dry_run_images:
                continue
            dry_run_images.add(image)
            backend = members[0]
            sample = JobSpec("preflight", backend, "train", job_env(backend, self.k8s.threads), 60.0, self.k8s.threads)
            dry_run(self.api, self.template.job_manifest(sample, self.k8s), self.context.say)

    def default_parallel(self, n_jobs: int) -> int:
        """Every job at once, unless the namespace's quota or the nodes have room for fewer: then that many."""
        room = self.room()
        if room.jobs is None or room.jobs >= n_jobs:
            return max(1, n_jobs)
        fit = max(1, room.jobs)
        self.context.say(f"the cluster has room for {room.jobs} of the {n_jobs} jobs at once ({room.limit}); "
                         f"submitting {fit} at a time (--parallel to choose)")
        return fit

    def threads_per_job(self, parallel: int) -> int:
        return self.k8s.threads

    def set_concurrency(self, parallel: int, threads: int) -> None:
        """Submit at most as many Jobs at once as fit, whatever ``--parallel`` asked for (said in one line)."""
        room = self.room()
        if room.jobs is not None and parallel > max(1, room.jobs):
            fit = max(1, room.jobs)
            self.context.say(f"--parallel {parallel}: the cluster has room for {room.jobs} job(s) at once "
                             f"({room.limit}); submitting at most {fit} at a time")
            self._slots = threading.BoundedSemaphore(fit)

    def room(self) -> capacity.Room:
        """How many Jobs fit at once, from the namespace's ResourceQuotas and (where readable) the nodes; once."""
        if self._room is not None:
            return self._room
        if self.emitting:
            self._room = capacity.Room(None)
            return self._room
        rooms = []
        try:
            quotas = self.api.list_resource_quotas()
        except KubeError as err:
            log.info("cannot read the namespace's ResourceQuotas (%s); not counting them", err)
            quotas = []
        try:
            nodes = self.api.list_nodes()
        except KubeError as err:
            log.info("cannot read the nodes (%s); counting quotas only", err)
            nodes = None
        for arches in sorted({self.k8s.architectures_for(name) for name in self._backends}):
            needs = capacity.JobNeeds(
                self.k8s.cpu_cores, capacity.quantity(self.k8s.memory) or 0.0, self.k8s.gpus, self.k8s.gpu_resource,
                self.k8s.node_selector, arches, self.k8s.pod_tolerations)
            rooms.append(capacity.quota_room(quotas, needs))
            if nodes:
                rooms.append(capacity.node_room(nodes, needs))
        self._room = capacity.tightest(*rooms)
        return self._room

    # -- running ----------------------------------------------------------------------------------
    def run(self, job: JobSpec, on_event: EventSink) -> JobResult:
        start = time.monotonic()
        name = manifests.job_name(job.run_id, job.backend.name, job.phase)
        result = JobResult(job.backend.name, job.phase, JobState.FAILED, executor=self.name,
                           started_at=time.time())
        result.details.update(job=name, namespace=self.k8s.namespace,
                              image=self.k8s.image_for(job.backend.keras_line))
        slot = False
        try:
            if self.emitting:
                paths = self._emit(job)
                result.state = JobState.SKIPPED
                result.reason = f"not submitted (--emit-manifests): wrote {', '.join(str(p) for p in paths)}"
                result.details["manifests"] = [str(p) for p in paths]
            elif not (slot := self._take_slot()):
                result.state, result.reason = JobState.CANCELLED, "cancelled before it started"
            else:
                self._share_run_folder(job)
                self._run_job(job, on_event, result)
        except HarnessError as err:
            result.state = JobState.CANCELLED if self.stop_requested.is_set() else JobState.FAILED
            result.reason = status.one_line(str(err), 600)
        finally:
            if slot and self._slots is not None:
                self._slots.release()
        result.wall_s = round(time.monotonic() - start, 3)
        result.finished_at = time.time()
        return result

    def _take_slot(self) -> bool:
        """Wait for room to submit (``set_concurrency``); False once the harness is interrupted."""
        if self._slots is None:
            return not self.stop_requested.is_set()
        while not self.stop_requested.is_set():
            if self._slots.acquire(timeout=0.5):
                return True
        return False

    def _follower(self, job: JobSpec, manifest: dict, submission: str) -> JobFollower:
        return JobFollower(self.api, self.k8s, self._jobs, job, manifest, submission, self.stop_requested,
                           self.context.say, self._warning_events)

    def _create(self, follower: JobFollower) -> None:
        """Create the Job; if the API server stopped answering, the create may have happened: clean up or say how."""
        try:
            follower.create()
        except ClusterUnreachable as err:
            _, reason = follower.give_up((JobState.FAILED, str(err)))
            raise ExecutorError(reason) from None

    # -- the shared folder: ownership and the write probe ---------------------------------------------
    def _share_run_folder(self, job: JobSpec) -> None:
        """Before a run's first job: give its folders to the jobs' group, and prove the pods can write there.

        Once per run (later jobs wait for the first); a failure fails every job
        of the run with the same one-line reason, before any of them is submitted.
        A folder the harness could not hand over fails the run only if the
        probe then fails too (an all_squash export needs no hand-over).
        """
        with self._probe_lock:
            if job.run_id not in self._probed:
                shared = Path(self.context.shared_dir)
                folders = sharing.probe_folders(RunStore(shared, job.run_id), sorted(self._backends_of(job)))
                not_shared: list[str] = []
                try:
                    for folder in folders:
                        try:
                            sharing.share_folder(folder, self.k8s.uid, self.k8s.gid)
                        except sharing.NotShared as err:
                            not_shared.append(str(err))
                    self._run_probe(job, folders, not_shared)
                    self._probed[job.run_id] = ""
                except HarnessError as err:
                    self._probed[job.run_id] = str(err)
                finally:
                    sharing.remove_probes(folders)
            problem = self._probed[job.run_id]
        if problem:
            raise ExecutorError(problem)
        # a backend the probe did not see (a run resumed with more backends) still gets the group
        try:
            sharing.share_folder(RunStore(self.context.shared_dir, job.run_id).backend_dir(job.backend.name),
                                 self.k8s.uid, self.k8s.gid)
        except sharing.NotShared as err:
            log.info("%s; the probe passed for the run's other folders, so going on", err)

    def _backends_of(self, job: JobSpec) -> set[str]:
        """The backends of the job's run that have a folder already (the session made them), and the job's."""
        run_dir = RunStore(self.context.shared_dir, job.run_id).path
        try:
            found = {p.name for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
        except OSError:
            found = set()
        return found | {job.backend.name}

    def _run_probe(self, job: JobSpec, folders: list[Path], not_shared: list[str]) -> None:
        """Run the write probe as the jobs' user; raise ``ExecutorError`` with the fix when it fails."""
        token = uuid.uuid4().hex
        shared = Path(self.context.shared_dir)
        sharing.write_harness_probes(folders, token)
        probe = dataclasses.replace(job, phase="probe", timeout_s=PROBE_TIMEOUT_S)
        command = sharing.probe_command(token, folders, self._inputs, shared, self.k8s.mount_path)
        manifest = self.template.render(manifests.probe_values(probe, self.k8s, token, command))
        name = manifest["metadata"]["name"]
        self.context.say(f"checking that the jobs (uid {self.k8s.uid}, gid {self.k8s.gid}) can read and write the "
                         f"run folder: Job {name}")
        follower = self._follower(probe, manifest, token)
        try:
            self._create(follower)
            followed = follower.follow()
            if followed.ending:
                raise ExecutorError(f"the write probe could not run: {followed.ending[1]}")
            pods = follower.list_pods() or followed.pods
            newest = status.sort_pods(pods)[-1] if pods else {}
            text = ""
            if newest:
                try:
                    text = self.api.pod_log(status.name_of(newest), manifests.CONTAINER)
                except KubeError as err:
                    text = status.terminated(newest, manifests.CONTAINER).get("message") or str(err)
            judged = status.verdict(followed.job or {}, pods, manifests.CONTAINER, str(text), self.k8s.memory)
            if judged.state is not JobState.SUCCEEDED:
                said = status.error_line(str(text)) or judged.reason
                if not_shared:  # what the harness could not arrange is then the likely cause
                    raise ExecutorError(f"{not_shared[0]}; the write probe then failed: {said}")
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
            if not_shared:
                self.context.say(f"the harness could not give {len(not_shared)} folder(s) to group {self.k8s.gid}, "
                                 "but the pods can read and write them (the write probe passed): the export maps "
                                 "users itself (all_squash?), so ownership is left as it is")
        finally:
            follower.close(concluded=False)
            try:
                self.api.delete_job(name, "Foreground", retries=1)
            except KubeError as err:
                log.warning("could not delete the probe Job %s: %s", name, err)

    def _emit(self, job: JobSpec) -> list[Path]:
        """Write the job's manifest; a train job also writes its predict and fidelity jobs', which would never run."""
        later = [p for p in phases.names() if p != "train" and not phases.alone(p)] \
            if job.phase == "train" else []  # a speed job needs no weights: it is emitted when it is run
        jobs = [job] + [dataclasses.replace(job, phase=p) for p in later]
        return [manifests.write_manifest(self.k8s.emit_dir, self.template.job_manifest(j, self.k8s)) for j in jobs]

    # -- one benchmark job ----------------------------------------------------------------------------
    def _run_job(self, job: JobSpec, on_event: EventSink, result: JobResult) -> None:
        files = RunStore(self.context.shared_dir, job.run_id).job_files(job.backend.name, job.phase)
        events = EventFollower(files.events)
        streams = PodLogStreams(self.api, manifests.CONTAINER, files.log, min(1.0, self.k8s.poll_s))
        submission = uuid.uuid4().hex
        follower = self._follower(job, self.template.job_manifest(job, self.k8s, submission), submission)
        concluded = False
        try:
            self._create(follower)

            def step(pods: list[dict]) -> None:
                for event in events.new_events():
                    on_event(job, event)
                streams.update(pods)

            followed = follower.follow(step)
            retries = 0 if followed.ending and followed.ending[0] is JobState.CANCELLED else None
            pods = follower.list_pods(retries=retries) or followed.pods
            streams.stop(wait_s=0.0 if retries == 0 else LOG_DRAIN_S)
            saved = save_pod_logs(self.api, pods, manifests.CONTAINER, files.log, retries=retries,
                                  streams=streams)
            streams.remove_files()
            for event in events.new_events():
                on_event(job, event)
            self._conclude(job, followed, pods, saved.final_text, result)
            concluded = followed.ending is None
            watch = follower.watch
            result.details.update(
                pods=[status.name_of(p) for p in status.sort_pods(pods)],
                nodes=sorted({(p.get("spec") or {}).get("nodeName") for p in pods} - {None}),
                logs=[str(p) for p in saved.paths], relists=watch.relists, reconnects=watch.reconnects)
        finally:
            streams.stop(wait_s=0.0)
            follower.close(concluded)

    def _conclude(self, job: JobSpec, followed: Followed, pods: list[dict], final_log: str,
                  result: JobResult) -> None:
        newest = status.sort_pods(pods)[-1] if pods else {}
        if followed.ending:
            result.state, result.reason = followed.ending
            result.exit_code = status.exit_code(newest, manifests.CONTAINER) if newest else None
        else:
            judged = status.verdict(followed.job or {}, pods, manifests.CONTAINER, final_log, self.k8s.memory)
            result.state, result.reason, result.exit_code = judged.state, judged.reason, judged.exit_code
            if judged.state is JobState.SUCCEEDED:
                self._expect_result_file(job, result)
        if not result.ok:
            result.log_tail = status.log_tail(final_log)

    def _expect_result_file(self, job: JobSpec, result: JobResult) -> None:
        """A Complete Job counts only if its result file shows up here (NFS may lag)."""
        path = RunStore(self.context.shared_dir, job.run_id).job_files(job.backend.name, job.phase).result
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

    def _warning_events(self) -> list[dict]:
        """The namespace's warning events, or none when they cannot be read (then only timeouts apply)."""
        if self._events_unreadable:
            return []
        try:
            return self.api.list_warning_events()
        except Forbidden as err:
            self._events_unreadable = True
            self.context.say(f"warning: cannot read events ({err}); FailedMount and FailedCreate will show only "
                             "as timeouts: apply k8s/base/role.yaml again")
        except KubeError as err:
            log.warning("cannot list events: %s", err)
        return []

    # -- stopping ---------------------------------------------------------------------------------
    def cancel_all(self) -> None:
        """Stop waiting, and delete the run's unfinished Jobs with their pods (Foreground propagation)."""
        super().cancel_all()
        with self._jobs.lock:
            watches = dict(self._jobs.watches)
            run_ids = set(self._jobs.run_ids)
        with self._lock:
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
        failed = []
        for name in sorted(names):
            try:
                api.delete_job(name, "Foreground", retries=1)
            except HarnessError as err:
                failed.append(name)
                log.warning("could not delete Job %s: %s", name, err)
        for run_id in sorted(run_ids) if failed else ():
            self.context.say(f"could not delete Job(s) {', '.join(failed)}; delete them with "
                             f"`{cleanup_command(run_id, self.k8s)}`")

    def _at_exit(self) -> None:
        if not self._closed and self._jobs.watches:
            self.cancel_all()

    def close(self) -> None:
        self._closed = True
        atexit.unregister(self._at_exit)
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()


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
