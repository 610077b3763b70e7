"""The local executor: each job is a child process on this machine.

Jobs run in their own process group with output to ``<backend>/<phase>.log``,
a timeout, an optional memory limit, and a parent-death signal so that a killed
harness does not leave them running. A failed job is a failed result with its
exit status and the tail of its log, never a crash of the harness.

A job runs in its backend's runtime (``harness.runtimes``): a managed one, or
with ``--runtime current`` the Python that runs the harness. With ``--device
gpu`` each Keras 3 job is given one NVIDIA GPU of its own
(``CUDA_VISIBLE_DEVICES``), never one another job holds; there are as many
jobs at once as GPUs, and a job of a phase that runs alone always gets the
first GPU, so every backend is timed on the same one. Keras 2's jobs stay on
the CPU. On the CPU, jobs are shown no GPU at all.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from harness import phases, runtimes, tuning
from harness.backends import Backend
from harness.errors import RuntimeSetupError
from harness.executors import local_gpus
from harness.executors.base import EventSink, Executor
from harness.executors.job_log import (
    LOG_TAIL_LINES,
    EventFollower,
    error_line,
    log_tail,
    read_log_end,
)
from harness.jobs import JobResult, JobSpec, JobState
from harness.run_store import RunStore, result_file_problem
from harness.workload import layout

WAIT_S = 0.5
MEMORY_EVERY_S = 2.0
KILL_GRACE_S = 10.0
WORKLOAD_SOURCE = Path(__file__).resolve().parent.parent  # the harness package


class LocalExecutor(Executor):
    """Processes on this machine; the shared folder is a local directory."""

    name = "local"

    def __init__(self, context, settings):
        super().__init__(context, settings)
        self._runtimes: dict[str, runtimes.Runtime] = {}
        self._setup_errors: dict[str, str] = {}
        self._procs: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._code_dir: Path | None = None
        self._cpu_sets: queue.Queue | None = None
        self._found: local_gpus.Found | None = None
        self._device = "cpu"
        """``cpu`` or ``gpu``: ``--device`` as decided on this machine (``check``)."""
        self._free_gpus: queue.Queue | None = None
        self._versions: dict[str, dict] = {}
        """What each backend imported in the current environment (``--runtime current``)."""

    # -- before running -------------------------------------------------------------
    def check(self) -> None:
        """Decide ``--device`` here: ``gpu`` without a visible GPU is refused before any job."""
        mode = self.settings.get("device") or "cpu"
        self._found = local_gpus.find()
        self._device = local_gpus.choose(mode, self._found)
        if mode == "auto":
            self.context.say(f"--device auto: {self._device.upper()}, {local_gpus.describe(self._found)}")
        if self._device == "gpu":
            self._free_gpus = queue.Queue()
            for gpu in self._found.gpus:
                self._free_gpus.put(gpu)

    def runtime(self, backend: Backend) -> runtimes.Runtime:
        key = "current" if self.context.runtime == "current" and backend.keras_line == "3" else backend.runtime
        if key not in self._runtimes:
            self._runtimes[key] = runtimes.for_backend(backend.runtime, backend.keras_line, self.context.runtime,
                                                       self.context.work_dir)
        return self._runtimes[key]

    def device(self, backend: Backend) -> str:
        """Keras 3's backends compute on the GPU when there is one to use; Keras 2.3.1's Theano and CNTK
        builds here are CPU builds, so they stay on the CPU."""
        return "gpu" if self._device == "gpu" and backend.keras_line == "3" else "cpu"

    def unavailable(self, backends: Sequence[Backend]) -> dict[str, str]:
        """Backends that cannot run here, each with one sentence; in the current environment (and on a
        GPU) each Keras 3 backend is imported once first, so one that cannot be is skipped, not failed."""
        reasons = {}
        probes = []
        for backend in backends:
            runtime = self.runtime(backend)
            if runtime.unavailable_reason:
                reasons[backend.name] = f"{backend.name} cannot run on this machine: {runtime.unavailable_reason}"
            elif backend.keras_line == "3" and runtime.ready and (runtime.is_current or self._device == "gpu"):
                probes.append(backend)
        for backend, (versions, problem) in zip(probes, self._probe(probes)):
            if versions is not None:
                self._versions[backend.name] = versions
                continue
            runtime = self.runtime(backend)
            if runtimes.NO_GPU in problem:
                fix = f"install a CUDA build of {backend.library} for that Python, or pass --device cpu"
            elif runtime.is_current:
                fix = (f"install Keras 3 and {backend.library} there, or run pytest from a Python that has "
                       "them (pip install -e . in it), or drop --runtime current")
            else:
                fix = f"delete {runtime.root} to rebuild the {runtime.spec.name} runtime"
            reasons[backend.name] = (f"keras with {backend.library} cannot be used by {runtime.python}: "
                                     f"{problem}; {fix}")
        if self._versions and self.context.runtime == "current":
            first = next(iter(self._versions.values()))
            libraries = ", ".join(f"{b} {v.get('library')}" for b, v in self._versions.items())
            self.context.say(f"runtime: the current Python, {first.get('executable')} ({first.get('python')}): "
                             f"keras {first.get('keras')}; {libraries}")
        return reasons

    def _probe(self, backends: Sequence[Backend]) -> list[tuple[dict | None, str | None]]:
        """``runtimes.probe`` for each backend, side by side (each is mostly one import)."""
        if not backends:
            return []
        found: dict[str, tuple[dict | None, str | None]] = {}

        def one(backend: Backend) -> None:
            gpu = self._found.gpus[0] if self.device(backend) == "gpu" and self._found else None
            env = self._env(backend, tuning.job_env(backend, 1, self.device(backend)), None, gpu)
            found[backend.name] = runtimes.probe(self.runtime(backend), backend.library, env)

        threads = [threading.Thread(target=one, args=(b,), name=f"probe-{b.name}") for b in backends]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [found[b.name] for b in backends]

    def facts(self, backends: Sequence[Backend]) -> dict[str, Any]:
        """run.json's record of where the jobs ran: the device (the GPUs, and each backend's device), the
        runtime (and what the current environment imported)."""
        device: dict[str, Any] = {"kind": self._device, "backends": {b.name: self.device(b) for b in backends}}
        if self._device == "gpu" and self._found is not None:
            device.update(self._found.facts())
        runtime: dict[str, Any] = {"mode": self.context.runtime}
        if self.context.runtime == "current":
            runtime.update(python=sys.executable, versions=dict(self._versions))
        return {"device": device, "runtime": runtime}

    def default_parallel(self, n_jobs: int) -> int:
        """One job per core. Measured on 2 cores (benchmarks/perf.py): two one-thread
        jobs side by side train more images per second in total than one two-thread
        job at a time on every backend (XLA's CPU thread pool barely scales).
        On GPUs, one job per GPU: jobs never share one."""
        if self._device == "gpu" and self._found is not None:
            return max(1, min(n_jobs, len(self._found.gpus)))
        return max(1, min(n_jobs, len(os.sched_getaffinity(0))))

    def threads_per_job(self, parallel: int) -> int:
        """The cores shared out, so parallel jobs never oversubscribe them."""
        cpus = len(os.sched_getaffinity(0))
        return max(1, cpus // max(1, parallel))

    def set_concurrency(self, parallel: int, threads: int) -> None:
        """Share the cores out: job slot k gets cores [k*threads, (k+1)*threads).

        Measured here: a JAX job told to use one thread still keeps about 1.4
        cores busy; pinned, parallel jobs cannot take each other's cores.
        """
        mode = self.settings.get("pin_cpus") or "auto"
        cpus = sorted(os.sched_getaffinity(0))
        if self._device == "gpu":  # a GPU job's host threads (dispatch, the driver's) are not kept to a slice
            self._cpu_sets = None
            return
        if mode == "no" or parallel * threads > len(cpus):
            if mode == "yes":
                self.context.say(f"--pin-cpus yes: {parallel} jobs x {threads} threads do not fit "
                                 f"{len(cpus)} cores; jobs are not pinned")
            self._cpu_sets = None
            return
        self._cpu_sets = queue.Queue()
        for slot in range(parallel):
            self._cpu_sets.put(tuple(cpus[slot * threads:(slot + 1) * threads]))

    def prepare(self, backends: Sequence[Backend]) -> None:
        self._code_dir = stage_workload(self.context.work_dir)
        for backend in backends:
            runtime = self.runtime(backend)
            if runtime.spec.name in self._setup_errors or runtime.ready:
                continue
            try:
                runtimes.ensure(runtime, say=self.context.say)
            except RuntimeSetupError as err:
                self._setup_errors[runtime.spec.name] = str(err)

    # -- running ---------------------------------------------------------------------
    def run(self, job: JobSpec, on_event: EventSink) -> JobResult:
        started_at, start = time.time(), time.monotonic()
        result = JobResult(job.backend.name, job.phase, JobState.FAILED, executor=self.name,
                           started_at=started_at)
        runtime = self.runtime(job.backend)
        setup_error = self._setup_errors.get(runtime.spec.name) or runtime.unavailable_reason
        if setup_error or not runtime.ready:
            result.reason = setup_error or f"the {runtime.spec.name} runtime was not built; run prepare first"
            return _finish(result, start)
        if self.stop_requested.is_set():
            result.state, result.reason = JobState.CANCELLED, "cancelled before it started"
            return _finish(result, start)

        files = RunStore(self.context.shared_dir, job.run_id).job_files(job.backend.name, job.phase)
        folder, log_path, events_path = files.folder, files.log, files.events
        folder.mkdir(parents=True, exist_ok=True)
        result.details["log"] = str(log_path)
        exclusive = phases.alone(job.phase)
        wants_gpu = job.env.get("KBENCH_DEVICE") == "gpu"
        gpu = self._take_gpu(exclusive) if wants_gpu else None
        if wants_gpu and gpu is None:
            if self.stop_requested.is_set():
                result.state, result.reason = JobState.CANCELLED, "cancelled while it waited for a free GPU"
            else:
                result.reason = "the job was planned for a GPU, but this executor runs on the CPU (--device cpu)"
            return _finish(result, start)
        env = self._env(job.backend, job.env, self._code_dir or stage_workload(self.context.work_dir), gpu)
        argv = [str(runtime.python)] + job.workload_args(str(self.context.shared_dir))
        cpus = None if gpu is not None else self._alone_cpus(job.threads) if exclusive else self._take_cpus()
        if cpus:
            result.details["cpus"] = list(cpus)
        if gpu is not None:
            result.details["gpu"] = {"index": gpu.index, "name": gpu.name, "uuid": gpu.uuid}
        try:
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=str(folder), start_new_session=True,
                                        preexec_fn=functools.partial(_child_setup, cpus))  # noqa: PLW1509
            with self._lock:
                self._procs[proc.pid] = proc
            try:
                ending = self._supervise(proc, job, start, events_path, on_event, result)
            finally:
                with self._lock:
                    self._procs.pop(proc.pid, None)
        finally:
            if cpus and not exclusive:
                self._cpu_sets.put(cpus)
            if gpu is not None and not exclusive:
                self._free_gpus.put(gpu)
        result.exit_code = proc.returncode
        result.log_tail = log_tail(read_log_end(log_path), LOG_TAIL_LINES)
        if ending:
            result.state, result.reason = ending
        elif proc.returncode == 0:
            result_path = files.result
            if not result_path.is_file():
                result.reason = f"exited 0 but wrote no {result_path.name}"
            elif problem := result_file_problem(result_path):
                result.reason = f"exited 0 but its result is unusable: {problem}"
            else:
                result.state = JobState.SUCCEEDED
                if gpu is not None:
                    result.details["gpu_memory"] = _gpu_memory(result_path)
        else:
            result.reason = describe_exit(proc.returncode, log_path)
        return _finish(result, start)

    def _env(self, backend: Backend, job_env, code_dir: Path | None,
             gpu: local_gpus.Gpu | None = None) -> dict[str, str]:
        """A job's environment: the harness's, the job's, the runtime's; the staged workload first on the
        path (a managed runtime sees nothing else; the current environment keeps its own PYTHONPATH, where
        a user's packages may live); its one GPU, or none on the CPU."""
        runtime = self.runtime(backend)
        env = dict(os.environ)
        env.update(job_env)
        env.update(runtime.env)
        path = [str(code_dir)] if code_dir is not None else []
        if runtime.is_current and os.environ.get("PYTHONPATH"):
            path.append(os.environ["PYTHONPATH"])
        if path:
            env["PYTHONPATH"] = os.pathsep.join(path)
        elif not runtime.is_current:
            env.pop("PYTHONPATH", None)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu.uuid or gpu.index
            if not gpu.uuid:  # an index from the driver's list counts in PCI order; CUDA's own order may differ
                env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        elif self._found is not None and self._found.gpus:  # a CPU job here: shown no GPU at all
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env

    def _take_gpu(self, exclusive: bool) -> local_gpus.Gpu | None:
        """A free GPU, waiting for one if need be (``--parallel`` above the GPUs: jobs never share one);
        a job that runs alone gets the first GPU, the same for every backend. None once cancelled."""
        if self._free_gpus is None or self._found is None:
            return None
        if exclusive:  # nothing else runs beside it (the scheduler's rule), so the first GPU is free
            return self._found.gpus[0]
        while not self.stop_requested.is_set():
            try:
                return self._free_gpus.get(timeout=WAIT_S)
            except queue.Empty:
                continue
        return None

    def _alone_cpus(self, threads: int) -> tuple[int, ...] | None:
        """A job that runs alone (the speed phase) is pinned to its own thread count's cores, the
        same cores for every backend, unless pinning is off or the threads exceed the cores."""
        cpus = sorted(os.sched_getaffinity(0))
        if (self.settings.get("pin_cpus") or "auto") == "no" or threads > len(cpus):
            return None
        return tuple(cpus[:threads])

    def _take_cpus(self) -> tuple[int, ...] | None:
        if self._cpu_sets is None:
            return None
        try:
            return self._cpu_sets.get(timeout=5)
        except queue.Empty:  # more jobs than slots: run unpinned rather than wait
            return None

    def _supervise(self, proc, job, start, events_path, on_event, result):
        """Wait for the process; return (state, reason) if the harness ended it.

        Cheap on purpose, since the job shares the machine: the wait wakes every
        half second (at once when the job ends); memory is read every two seconds,
        the whole process tree only when a memory limit needs it.
        """
        follower = EventFollower(events_path)
        limit_mb = self.settings.get("job_memory_mb")
        peak_mb = 0.0
        ending = None
        next_memory_check = 0.0
        while True:
            try:
                proc.wait(timeout=WAIT_S)
                break
            except subprocess.TimeoutExpired:
                pass
            for event in follower.new_events():
                on_event(job, event)
            now = time.monotonic()
            rss = None
            if now >= next_memory_check:
                next_memory_check = now + (WAIT_S if limit_mb else MEMORY_EVERY_S)
                rss = _tree_rss_mb(proc.pid) if limit_mb else _rss_mb(proc.pid)
                peak_mb = max(peak_mb, rss)
            if self.stop_requested.is_set():
                ending = (JobState.CANCELLED, "cancelled: the harness was interrupted")
            elif now - start > job.timeout_s:
                ending = (JobState.TIMED_OUT, (f"timed out after {job.timeout_s:.0f} s; raise the profile's "
                          "job timeout (--job-timeout) or use a smaller profile"))
            elif limit_mb and rss is not None and rss > limit_mb:
                ending = (JobState.FAILED, (f"used {rss:.0f} MiB, over the {limit_mb} MiB memory limit "
                          "(--job-memory-mb); raise the limit or use a smaller profile"))
            if ending:
                kill_group(proc)
                break
        proc.wait()
        if ending is None and proc.returncode != 0 and self.stop_requested.is_set():
            ending = (JobState.CANCELLED, "cancelled: the harness was interrupted")
        for event in follower.new_events():
            on_event(job, event)
        result.details["peak_rss_mb"] = round(peak_mb, 1)
        return ending

    def cancel_all(self) -> None:
        super().cancel_all()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)


def _gpu_memory(result_path: Path) -> dict | None:
    """The GPU memory a finished job recorded (``gpu_memory`` in its result), for its status."""
    try:
        with open(result_path) as handle:
            return json.load(handle).get("gpu_memory")
    except (OSError, ValueError, AttributeError):
        return None


def _finish(result: JobResult, start: float) -> JobResult:
    result.wall_s = round(time.monotonic() - start, 3)
    result.finished_at = time.time()
    return result


# -- process handling ---------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _child_setup(cpus: tuple[int, ...] | None) -> None:
    """In the child, before the workload starts: die with the harness; keep to its cores.

    Only a system call each (prctl, sched_setaffinity), as is safe between fork and exec.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    if cpus:
        os.sched_setaffinity(0, cpus)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(proc: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the job's process group, then SIGKILL what is left after the grace period."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)


def _rss_mb(pid: int) -> float:
    """Resident memory of one process (a single /proc read)."""
    try:
        return psutil.Process(pid).memory_info().rss / (1024 * 1024)
    except psutil.Error:
        return 0.0


def _tree_rss_mb(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / (1024 * 1024)


def describe_exit(code: int, log_path: Path) -> str:
    """One line on why a job's process ended badly."""
    message = error_line(read_log_end(log_path))
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        why = f"killed by {name}"
        if -code == signal.SIGKILL:
            why += " (the kernel's out-of-memory killer does this; check memory use)"
        return why + (f"; last error: {message}" if message else "")
    if message:
        return f"exited with status {code}: {message}"
    return f"exited with status {code}; see the log tail"


# -- the code a job imports -----------------------------------------------------------
def stage_workload(work_dir: Path) -> Path:
    """Copy the workload (and only it) to a folder a job's PYTHONPATH can point at.

    A runtime must import ``harness.workload`` without seeing the harness's own
    environment (its numpy would shadow the runtime's).
    """
    workload = WORKLOAD_SOURCE / "workload"
    files = ([WORKLOAD_SOURCE / "__init__.py"] + sorted(workload.glob("*.py"))
             + sorted((workload / layout.MODELS).glob("*.py")))  # the shipped models, too
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(WORKLOAD_SOURCE)).encode() + b"\0" + path.read_bytes())
    target = Path(work_dir) / "workload" / digest.hexdigest()[:12]
    if (target / "harness" / "workload" / "__main__.py").exists():
        return target
    staging = Path(str(target) + f".partial-{os.getpid()}-{threading.get_ident()}")
    (staging / "harness" / "workload" / layout.MODELS).mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy2(path, staging / path.relative_to(WORKLOAD_SOURCE.parent))
    try:
        os.rename(staging, target)
    except OSError:  # another process staged the same code first
        shutil.rmtree(staging, ignore_errors=True)
    return target
