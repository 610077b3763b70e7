"""Why a Job's pods are not starting, judged over time: when to stop waiting, and what to say.

A pod that has not started is often only slow: the scheduler waits for room,
the kubelet backs off after a registry's 429, an NFS mount is retried, a
container runtime's name reservation clears. The executor should wait for
those, but not for the whole job timeout when the cause will not go away.
``StartWatch`` remembers when it first saw each pod and each problem (on the
harness's own clock: the cluster's clock may differ) and gives up on a problem
only once it has lasted its allowance:

* a pod the scheduler cannot place for lack of room (``Insufficient cpu``,
  ``Too many pods``), and pods the Job controller may not create because a
  quota is used up: ``--k8s-capacity-wait``, since other work (or a node pool
  scaling up) frees room; the message names ``--parallel``;
* a pod the scheduler cannot place for any other reason (no node matches its
  selector, an unbound claim): ``--k8s-schedule-timeout``, counted from when
  that pod appeared, not from the submission (a replacement pod after a
  disruption gets its own allowance);
* an image that cannot be pulled: at once when the image can never be pulled
  (an invalid name, ``Never`` pull policy, a message that says it does not
  exist or access is denied); otherwise only once ``ImagePullBackOff`` has
  lasted ``--k8s-start-grace`` (a first ``ErrImagePull`` is often a 429 or a
  timeout);
* ``CreateContainerError``, which the kubelet retries at its next sync (say
  containerd's "failed to reserve container name"): once it has lasted
  ``--k8s-start-grace``; ``CreateContainerConfigError`` (the pod's own
  settings are wrong) at once;
* a pod stuck in ContainerCreating with a ``FailedMount`` (or attach) warning
  event, and a Job whose pods cannot be created (``FailedCreate``: admission):
  once the warning has lasted ``--k8s-start-grace``, with the event's own
  message.

Events live about an hour, so only a pod's events newer than its current
state count: a ``FailedMount`` from before the pod's sandbox was ready (its
mount then succeeded) does not fail a pod that is now pulling a large image.

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
RETRIED_BY_KUBELET = frozenset({"CreateContainerError"})
"""Container states the kubelet retries at its next pod sync; they often clear by themselves."""
MOUNT_EVENTS = frozenset({"FailedMount", "FailedAttachVolume"})
CREATE_EVENTS = frozenset({"FailedCreate"})
SECRET_EVENTS = frozenset({"FailedToRetrieveImagePullSecret"})

MOUNT_HINT = ("the nodes need an NFS client (nfs-common or nfs-utils) and the export must allow them; check "
              "server and path in k8s/nfs/pv-nfs.yaml (docs/kubernetes.md)")
CREATE_HINT = ("the Job controller cannot create its pods: fix what the message names (Pod Security, a "
               "policy, a LimitRange) in the Job template (--k8s-template) or the namespace")


@dataclass(frozen=True)
class StartLimits:
    """How long each kind of trouble may last, and what the hints may name."""

    schedule_timeout_s: float
    """How long one pod may stay unschedulable for a reason other than room."""
    start_grace_s: float
    """How long ImagePullBackOff, CreateContainerError, a FailedMount or a FailedCreate may last."""
    capacity_wait_s: float = 1800.0
    """How long a pod may wait for room (nodes or quota) before the job fails."""
    pull_secrets: tuple[str, ...] = ()
    """The image pull Secrets the pods name (for the hint when a registry refuses)."""


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
        self.notices: list[str] = []
        """Lines for the user about waits that may be long (said once each); the executor takes them."""
        self._noticed: set[tuple[str, str]] = set()

    def _since(self, key: tuple[str, str], now: float) -> float:
        """Seconds since ``key`` was first seen (0 the first time)."""
        return now - self._first.setdefault(key, now)

    def _forget(self, key: tuple[str, str]) -> None:
        self._first.pop(key, None)

    def _notice(self, key: tuple[str, str], line: str) -> None:
        if key not in self._noticed:
            self._noticed.add(key)
            self.notices.append(line)

    def needs_events(self, pods: Sequence[dict]) -> bool:
        """Whether events could explain something now: no pod yet, or a pod not running."""
        return not pods or any((p.get("status") or {}).get("phase") == "Pending" for p in pods)

    def judge(self, pods: Sequence[dict], container: str, events: Sequence[dict] = (),
              job_uid: str | None = None) -> str | None:
        """A reason to give up on the Job now, or None to keep waiting.

        ``events`` are the namespace's warning events (any order); only those
        about this Job (``job_uid``) or its pods count, and a pod's only when
        newer than its current state.
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
                for what in ("unschedulable", "room", "pull", "create", "mount"):
                    self._forget((name, what))
                continue
            pod_events = current_events(pod, by_object.get(_uid(pod), []))
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
        if why in RETRIED_BY_KUBELET:
            lasted = self._since((name, "create"), now)
            if lasted > self.limits.start_grace_s:
                return f"{status.cannot_start(pod, container)} (for {_seconds(lasted)}, --k8s-start-grace)"
            return None
        self._forget((name, "create"))
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
        missing = [e for e in events if e.get("reason") in SECRET_EVENTS]
        if missing:  # the kubelet pulled without a Secret the pod names: say so beside the registry's answer
            said = "; ".join(filter(None, [said, status.one_line(_newest(missing).get("message") or "", 200)]))
        secrets = self.limits.pull_secrets
        if why in NEVER_PULLABLE or HOPELESS_PULL.search(message) or HOPELESS_PULL.search(said):
            return status.cannot_start(pod, container, detail=said if said and said != message else "",
                                       pull_secrets=secrets)
        if why == "ImagePullBackOff" or why == "RegistryUnavailable":
            lasted = self._since((name, "pull"), now)
            if lasted > self.limits.start_grace_s:
                text = status.cannot_start(pod, container, detail=said, pull_secrets=secrets)
                return f"{text} (backing off for {_seconds(lasted)}, --k8s-start-grace)"
        return None

    def _unschedulable(self, pod: dict, name: str, now: float) -> str | None:
        message = status.unschedulable(pod)
        if not message:
            self._forget((name, "unschedulable"))
            self._forget((name, "room"))
            return None
        if status.lacks_room(message):
            lasted = self._since((name, "room"), now)
            self._notice((name, "room"), f"pod {name} waits for room in the cluster ({message}); it may wait up "
                                         f"to {_seconds(self.limits.capacity_wait_s)} (--k8s-capacity-wait)")
            if lasted > self.limits.capacity_wait_s:
                return status.no_room_reason(message, lasted)
            return None
        self._forget((name, "room"))
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
        newest = _newest(warnings)
        message = status.one_line(newest.get("message") or "", 400)
        lasted = self._since(("", "create"), now)
        if status.lacks_room(message):  # a quota used up by other work: room comes back as it ends
            self._notice(("", "quota"), f"the Job's pod waits for room in the namespace's quota ({message}); it may "
                                        f"wait up to {_seconds(self.limits.capacity_wait_s)} (--k8s-capacity-wait)")
            if lasted > self.limits.capacity_wait_s:
                return status.no_room_reason(f"FailedCreate: {message}", lasted)
            return None
        if lasted <= self.limits.start_grace_s:
            return None
        return f"no pod could be created for {_seconds(lasted)}: FailedCreate: {message}; {CREATE_HINT}"


def current_events(pod: dict, events: Sequence[dict]) -> list[dict]:
    """The pod's events that happened after it entered its current state (an event of unknown time counts).

    The current state began at the pod's latest condition transition or
    container start or end (its sandbox becoming ready, say); an event from
    before it (a mount that failed once, then worked) no longer describes it.
    Times have whole seconds: an event in the same second as the transition is
    taken as older, and a trouble that persists repeats its event soon after.
    """
    since = status.state_since(pod)
    if since is None:
        return list(events)
    found = []
    for event in events:
        when = status.event_time(event)
        if when is None or when > since:
            found.append(event)
    return found


def _uid(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _waiting(pod: dict, container: str) -> dict:
    for entry in (pod.get("status") or {}).get("containerStatuses") or []:
        if entry.get("name") == container:
            return (entry.get("state") or {}).get("waiting") or {}
    return {}


def _newest(events: Sequence[dict]) -> dict:
    return max(events, key=lambda e: (status.event_time(e) or 0.0, int(e.get("count") or 0)))
