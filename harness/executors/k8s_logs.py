"""Keep the log of every pod of a Job in the run folder.

The newest pod's log becomes ``<backend>/<phase>.log`` (the same name the local
executor uses); earlier pods of the same Job (retries, evicted or preempted
attempts) become ``<phase>.pod-1.log``, ``<phase>.pod-2.log``... oldest first.
A log the API cannot give (the pod or its node is gone) is replaced by a note
and the container's termination message, which the Job template asks to hold
the log's tail (``terminationMessagePolicy: FallbackToLogsOnError``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.executors import k8s_status as status
from harness.executors.k8s_client import KubeApi, KubeError
from harness.workload import layout

log = logging.getLogger("harness.executors.kubernetes")


@dataclass
class SavedLogs:
    final_text: str = ""
    """The newest pod's log (or what stands in for it)."""
    paths: list[Path] = field(default_factory=list)


def log_paths(folder: Path, phase: str, count: int) -> list[Path]:
    """Where the logs of ``count`` pods (oldest first) go; the newest is ``<phase>.log``."""
    earlier = [folder / f"{phase}.pod-{i}.log" for i in range(1, count)]
    return earlier + [folder / layout.log_name(phase)] if count else []


def save_pod_logs(api: KubeApi, pods: Sequence[dict], container: str, folder: Path, phase: str,
                  retries: int | None = None) -> SavedLogs:
    """Fetch and write each pod's log; never raises for a log that cannot be read."""
    ordered = status.sort_pods(pods)
    saved = SavedLogs()
    if not ordered:
        return saved
    folder.mkdir(parents=True, exist_ok=True)
    for pod, path in zip(ordered, log_paths(folder, phase, len(ordered))):
        name = status.name_of(pod)
        try:
            text = api.pod_log(name, container, retries=retries)
            if not isinstance(text, str):
                text = str(text)
        except KubeError as err:
            log.info("no log for pod %s: %s", name, err)
            text = stand_in(pod, container, str(err))
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
