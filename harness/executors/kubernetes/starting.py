"""Why a Job's pods are not starting, judged over time: when to stop waiting, and what to say.

A pod that has not started is often only slow: the scheduler waits for room,
the kubelet backs off after a registry's 429, an NFS mount is retried. The
executor should wait for those, but not for the whole job timeout when the
cause will not go away. ``StartWatch`` remembers when it first saw each pod and
each problem (on the harness's own clock: the cluster's clock may differ) and
gives up on a problem only once it has lasted its allowance:

* a pod the scheduler cannot place: ``--k8s-schedule-timeout``, counted from
  when that pod appeared, not from the submission (a replacement pod after a
  disruption gets its own allowance);
* an image that cannot be pulled: at once when the image can never be pulled
  (an invalid name, ``Never`` pull policy, a message that says it does not
  exist or access is denied); otherwise only once ``ImagePullBackOff`` has
  lasted ``--k8s-start-grace`` (a first ``ErrImagePull`` is often a 429 or a
  timeout);
* a pod stuck in ContainerCreating with a ``FailedMount`` (or attach) warning
  event, and a Job whose pods cannot be created (``FailedCreate``: admission,
  quota): once the warning has lasted ``--k8s-start-grace``, with the
  event's own message.

Pure logic over the plain JSON of pods and events; the clock is injected so the
rules can be tested without waiting.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.executors.kubernetes import status

NEVER_PULLABLE = frozenset({"InvalidImageName", "ErrImageNeverPull"})
PULL_TROUBLE = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
HOPELESS_PULL = re.compile(r"not found|manifest unknown|does not exist|pull access denied|access (to the resource "
                           r"is )?denied|unauthorized|authentication required|403 forbidden|no such image",
                           re.IGNORECASE)
"""Registry answers that waiting cannot change (as containerd, CRI-O and the registries word them)."""
MOUNT_EVENTS = frozenset({"FailedMount", "FailedAttachVolume"})
CREATE_EVENTS = frozenset({"FailedCreate"})

MOUNT_HINT = ("the nodes need an NFS client (nfs-common or nfs-utils) and the export must allow them; check "
              "server and path in k8s/nfs/pv-nfs.yaml (docs/kubernetes.md)")
CREATE_HINT = ("the Job controller cannot create its pods: fix what the message names (Pod Security, a quota, a "
               "policy) in the Job template (--k8s-template) or the namespace")


@dataclass(frozen=True)
class StartLimits:
    schedule_timeout_s: float
    """How long one pod may stay unschedulable."""
    start_grace_s: float
    """How long ImagePullBackOff, a FailedMount or a FailedCreate may last before the job fails."""


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s"


class StartWatch:
    """The first sightings of one Job's pods and problems, and the verdict they lead to."""

    def __init__(self, limits: StartLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.clock = clock
        self.started = clock()
        self._first: dict[tuple[str, str], float] = {}
        self._pull_messages: dict[str, str] = {}

    def _since(self, key: tuple[str, str], now: float) -> float:
        """Seconds since ``key`` was first seen (0 the first time)."""
        return now - self._first.setdefault(key, now)

    def _forget(self, key: tuple[str, str]) -> None:
        self._first.pop(key, None)

    def needs_events(self, pods: Sequence[dict]) -> bool:
        """Whether events could explain something now: no pod yet, or a pod not running."""
        return not pods or any((p.get("status") or {}).get("phase") == "Pending" for p in pods)

    def judge(self, pods: Sequence[dict], container: str, events: Sequence[dict] = (),
              job_uid: str | None = None) -> str | None:
        """A reason to give up on the Job now, or None to keep waiting.

        ``events`` are the namespace's warning events (any order); only those
        about this Job (``job_uid``) or its pods count.
        """
        now = self.clock()
        by_object: dict[str, list[dict]] = {}
        for event in events:
            uid = (event.get("involvedObject") or {}).get("uid")
            if uid:
                by_object.setdefault(uid, []).append(event)
        for pod in status.sort_pods(pods):
            name = status.name_of(pod)
            self._since((name, "seen"), now)
            phase = (pod.get("status") or {}).get("phase")
            if phase != "Pending":
                for what in ("unschedulable", "pull", "mount"):
                    self._forget((name, what))
                continue
            pod_events = by_object.get(_uid(pod), [])
            problem = (self._image(pod, name, container, pod_events, now)
                       or self._unschedulable(pod, name, now)
                       or self._mount(pod, name, pod_events, now))
            if problem:
                return problem
        if not pods and job_uid:
            return self._create(by_object.get(job_uid, []), now)
        return None

    # -- the rules ---------------------------------------------------------------------------------------
    def _image(self, pod: dict, name: str, container: str, events: Sequence[dict], now: float) -> str | None:
        waiting = _waiting(pod, container)
        why = waiting.get("reason") or ""
        message = status.one_line(waiting.get("message") or "", 300)
        if why not in NEVER_PULLABLE and why not in PULL_TROUBLE:
            self._forget((name, "pull"))
            return status.cannot_start(pod, container)  # CreateContainerConfigError and the like: at once
        # The registry's answer: in ErrImagePull's message, and in the kubelet's "Failed to pull image"
        # warning event (ImagePullBackOff's own message may only say "Back-off pulling image").
        pulls = [e for e in events if e.get("reason") == "Failed"
                 and str(e.get("message") or "").startswith("Failed to pull image")]
        if pulls:
            self._pull_messages[name] = status.one_line(_newest(pulls).get("message") or "", 300)
        elif why == "ErrImagePull" and message:
            self._pull_messages[name] = message
        said = self._pull_messages.get(name, "")
        if why in NEVER_PULLABLE or HOPELESS_PULL.search(message) or HOPELESS_PULL.search(said):
            return status.cannot_start(pod, container, detail=said if said and said != message else "")
        if why == "ImagePullBackOff" or why == "RegistryUnavailable":
            lasted = self._since((name, "pull"), now)
            if lasted > self.limits.start_grace_s:
                text = status.cannot_start(pod, container, detail=said)
                return f"{text} (backing off for {_seconds(lasted)}, --k8s-start-grace)"
        return None

    def _unschedulable(self, pod: dict, name: str, now: float) -> str | None:
        message = status.unschedulable(pod)
        if not message:
            self._forget((name, "unschedulable"))
            return None
        age = self._since((name, "seen"), now)
        if age > self.limits.schedule_timeout_s:
            return status.unschedulable_reason(message, age)
        return None

    def _mount(self, pod: dict, name: str, events: Sequence[dict], now: float) -> str | None:
        warnings = [e for e in events if e.get("reason") in MOUNT_EVENTS]
        if not warnings:
            self._forget((name, "mount"))
            return None
        lasted = self._since((name, "mount"), now)
        if lasted <= self.limits.start_grace_s:
            return None
        newest = _newest(warnings)
        return (f"pod {name} cannot start: {newest.get('reason')} for {_seconds(lasted)}: "
                f"{status.one_line(newest.get('message') or '', 300)}; {MOUNT_HINT}")

    def _create(self, events: Sequence[dict], now: float) -> str | None:
        warnings = [e for e in events if e.get("reason") in CREATE_EVENTS]
        if not warnings:
            self._forget(("", "create"))
            return None
        lasted = self._since(("", "create"), now)
        if lasted <= self.limits.start_grace_s:
            return None
        newest = _newest(warnings)
        return (f"no pod could be created for {_seconds(lasted)}: FailedCreate: "
                f"{status.one_line(newest.get('message') or '', 400)}; {CREATE_HINT}")


def _uid(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _waiting(pod: dict, container: str) -> dict:
    for entry in (pod.get("status") or {}).get("containerStatuses") or []:
        if entry.get("name") == container:
            return (entry.get("state") or {}).get("waiting") or {}
    return {}


def _newest(events: Sequence[dict]) -> dict:
    return max(events, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "",
                                      int(e.get("count") or 0)))
