"""Keep the log of every pod of a Job in the run folder, even when the pod is deleted early.

While a Job runs, ``PodLogStreams`` follows each started pod's log into a
hidden file in the run folder (``.<phase>.<pod>.stream``), reconnecting when
the stream breaks: the Job controller deletes running pods at the deadline,
and a node or a TTL can remove a pod before the harness reads its log.
Lines carry the kubelet's timestamps: a reconnect asks for the lines since
the last one written (``sinceTime``, which the API server keeps to whole
seconds), and the few it replays from that second are recognised and skipped,
so no line is written twice and a long log is not sent again from its start.
After the kubelet rotates a container's log, only the current file is served
at all; the stream kept from the start is then the only complete copy.

When the Job is over, ``save_pod_logs`` writes the final files: the newest
pod's log becomes ``<backend>/<phase>.log`` (the same name the local executor
uses); earlier pods (retries, evicted or preempted attempts) become
``<phase>.pod-1.log``, ``<phase>.pod-2.log``... oldest first. Each is the longer
of what was streamed and the log's end read back once more; a log that neither
gives is replaced by a note and the container's termination message, which
the Job template asks to hold the log's tail (``FallbackToLogsOnError``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.executors.kubernetes import status
from harness.executors.kubernetes.errors import KubeError, NotFound
from harness.executors.kubernetes.streams import WatchHandle
from harness.workload import layout

if TYPE_CHECKING:
    from harness.executors.kubernetes.client import KubeApi

log = logging.getLogger("harness.executors.kubernetes")

RECONNECT_S = 1.0
"""Pause before following a log again after its stream ended or broke."""


@dataclass
class SavedLogs:
    final_text: str = ""
    """The newest pod's log (or what stands in for it)."""
    paths: list[Path] = field(default_factory=list)


def log_paths(job_log: Path, count: int) -> list[Path]:
    """Where the logs of ``count`` pods (oldest first) go: the newest is the job's log (``job_log``, from
    the run store), the earlier ones beside it (``<phase>.pod-1.log`` ...)."""
    earlier = [job_log.with_name(f"{job_log.stem}.pod-{i}.log") for i in range(1, count)]
    return earlier + [job_log] if count else []


def stamp_key(stamp: str) -> tuple[str, str]:
    """An RFC 3339 (nano) timestamp as a sortable key: the kubelet trims trailing zeros of the fraction."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return whole, fraction.ljust(9, "0")


class _Follower(threading.Thread):
    """Follows one pod's log into one file until the container ends or the streams are stopped."""

    def __init__(self, api: KubeApi, pod: str, container: str, path: Path, reconnect_s: float):
        super().__init__(name=f"kbench-log-{pod}", daemon=True)
        self.api = api
        self.pod = pod
        self.container = container
        self.path = path
        self.reconnect_s = reconnect_s
        self.handle = WatchHandle()
        self.container_done = threading.Event()
        self.last: tuple[str, str] = ("", "")
        self.last_stamp = ""
        """The kubelet's timestamp of the last line written: where a reconnect resumes (``sinceTime``)."""
        self.same = 0
        """Lines written with the timestamp ``last`` (a replay skips that many lines of that time)."""
        self.connections = 0

    def run(self) -> None:
        try:
            with open(self.path, "ab") as out:
                while not self.handle.stopped:
                    done_before = self.container_done.is_set()
                    try:
                        self._follow_once(out)
                    except NotFound:
                        return  # the pod is gone: what was streamed is all there is
                    except KubeError as err:
                        log.info("log stream of pod %s broke: %s", self.pod, err)
                    if done_before:
                        return  # read to the end after the container had ended
                    self.handle.pause(self.reconnect_s)
        except OSError as err:
            log.warning("cannot write the streamed log of pod %s to %s: %s", self.pod, self.path, err)

    def _follow_once(self, out) -> None:
        self.connections += 1
        last, same, skipped = self.last, self.same, 0
        for raw in self.api.follow_pod_log(self.pod, self.container, self.handle, since=self.last_stamp or None):
            stamp, _, line = raw.partition(" ")
            key = stamp_key(stamp)
            if key < last:
                continue  # replayed after a reconnect
            if key == last and skipped < same:
                skipped += 1
                continue
            out.write(line.encode("utf-8") + b"\n")
            out.flush()
            if key == self.last:
                self.same += 1
            else:
                self.last, self.same, self.last_stamp = key, 1, stamp

    def text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


class PodLogStreams:
    """Follows the log of every started pod of one Job into the run folder while the Job runs."""

    def __init__(self, api: KubeApi, container: str, job_log: Path, reconnect_s: float = RECONNECT_S):
        folder, phase = job_log.parent, job_log.stem
        self.api = api
        self.container = container
        self.folder = folder
        self.phase = phase
        self.reconnect_s = reconnect_s
        self._followers: dict[str, _Follower] = {}

    def update(self, pods: Sequence[dict]) -> None:
        """Start following pods whose container has started; note those whose container has ended."""
        for pod in pods:
            name = status.name_of(pod)
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Running", "Succeeded", "Failed") or not name:
                continue
            follower = self._followers.get(name)
            if follower is None:
                try:
                    self.folder.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    log.warning("cannot stream logs into %s: %s", self.folder, err)
                    return
                path = self.folder / f".{self.phase}.{name}.stream"
                path.unlink(missing_ok=True)
                follower = _Follower(self.api, name, self.container, path, self.reconnect_s)
                self._followers[name] = follower
                follower.start()
            if phase in ("Succeeded", "Failed"):
                follower.container_done.set()

    def streamed(self, name: str) -> str:
        follower = self._followers.get(name)
        return follower.text() if follower is not None else ""

    def stop(self, wait_s: float = 10.0) -> None:
        """Give the followers up to ``wait_s`` to read to the end of their logs, then stop them all."""
        deadline = time.monotonic() + wait_s
        for follower in self._followers.values():
            follower.container_done.set()
        for follower in self._followers.values():
            follower.join(max(0.0, deadline - time.monotonic()))
            follower.handle.stop()
            follower.join(1.0)

    def remove_files(self) -> None:
        for follower in self._followers.values():
            follower.path.unlink(missing_ok=True)


def save_pod_logs(api: KubeApi, pods: Sequence[dict], container: str, job_log: Path,
                  retries: int | None = None, streams: PodLogStreams | None = None) -> SavedLogs:
    """Write each pod's log (the newest to the job's log, ``job_log``); never raises for a log that cannot be
    read."""
    folder = job_log.parent
    ordered = status.sort_pods(pods)
    saved = SavedLogs()
    if not ordered:
        return saved
    folder.mkdir(parents=True, exist_ok=True)
    for pod, path in zip(ordered, log_paths(job_log, len(ordered))):
        name = status.name_of(pod)
        streamed = streams.streamed(name) if streams is not None else ""
        try:
            text = api.pod_log(name, container, retries=retries)
            if not isinstance(text, str):
                text = str(text)
            if len(streamed) > len(text):
                text = streamed  # the read-back is the log's end; the stream has it all
        except KubeError as err:
            log.info("no log for pod %s: %s", name, err)
            text = streamed or stand_in(pod, container, str(err))
        try:
            layout.atomic_write_bytes(str(path), text.encode("utf-8"))
            saved.paths.append(path)
        except OSError as err:
            log.warning("cannot write %s: %s", path, err)
        saved.final_text = text
    return saved


def stand_in(pod: dict, container: str, why: str) -> str:
    """What a log file says when the log itself is unavailable."""
    message = status.terminated(pod, container).get("message") or ""
    text = f"# log of pod {status.name_of(pod)} unavailable: {status.one_line(why, 300)}\n"
    if message:
        text += "# the container's termination message (the log's tail) follows\n" + message
        if not message.endswith("\n"):
            text += "\n"
    return text
