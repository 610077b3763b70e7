"""Follow one Job until it ends, through everything a real API server does to a watch.

The pattern is the one client-go's informers use: list (to learn the current
state and a resourceVersion), then watch from that resourceVersion. Each watch
lasts one short window (the server is asked to end it, and the client stops
reading soon after in case it does not), after which the caller gets control
back to check pods, progress and cancellation, and the next window resumes
from the last resourceVersion seen. A 410 Gone (the version was compacted)
means list again; a dropped connection or a 5xx means reconnect after a pause
that grows to 30 s. A control plane that is away (a managed cluster's upgrade
takes minutes) is waited out up to the Job's own deadline: the Job runs on
meanwhile, and only past that does the watch give up, with our
``ClusterUnreachable``.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from harness.executors.kubernetes import status
from harness.executors.kubernetes.errors import (
    TRANSIENT_STATUSES,
    ClusterUnreachable,
    Gone,
    KubeError,
)
from harness.executors.kubernetes.streams import WatchHandle

if TYPE_CHECKING:
    from harness.executors.kubernetes.client import KubeApi

log = logging.getLogger("harness.executors.kubernetes")

MAX_PAUSE_S = 30.0
"""The longest pause between reconnects while the API server is away."""


class JobWatch:
    """The latest known state of one Job, refreshed one window at a time."""

    def __init__(self, api: KubeApi, name: str, window_s: float, give_up_after_s: float):
        self.api = api
        self.name = name
        self.window_s = window_s
        self.handle = WatchHandle()
        self.job: dict | None = None
        self.deleted = False
        """True once the Job is gone (deleted by someone, or by its TTL)."""
        self.resource_version: str | None = None
        self.relists = 0
        self.reconnects = 0
        self._failures = 0
        self._broken_since: float | None = None
        self._give_up_at = time.monotonic() + give_up_after_s
        """Past this the Job's deadline has passed: an API server still away is given up on."""

    @property
    def healthy(self) -> bool:
        """False while the API server is away (the last watch broke and none has worked since)."""
        return self._failures == 0

    @property
    def field_selector(self) -> str:
        return f"metadata.name={self.name}"

    def stop(self) -> None:
        """End the current window at once (from another thread)."""
        self.handle.stop()

    def relist(self) -> None:
        """Read the Job's current state and the resourceVersion to watch from."""
        answer = self.api.list_jobs(field_selector=self.field_selector)
        items = [item for item in answer.get("items") or [] if status.name_of(item) == self.name]
        self.job = items[0] if items else None
        self.deleted = self.job is None
        self.resource_version = str((answer.get("metadata") or {}).get("resourceVersion") or "") or None
        self.relists += 1

    def poll(self) -> dict | None:
        """Wait up to one window for the Job to change; return its latest state (None when gone)."""
        if self.handle.stopped:
            return self.job
        try:
            if self.resource_version is None:
                self.relist()
                if status.finished(self.job) or self.deleted:
                    return self.job
            for event in self.api.watch_jobs(self.field_selector, self.resource_version, self.window_s,
                                             self.handle):
                self._apply(event)
                if status.finished(self.job) or self.deleted:
                    break
            self._failures, self._broken_since = 0, None
        except Gone as err:
            log.info("watch of Job %s expired (%s); listing again", self.name, err)
            self.resource_version = None
        except ClusterUnreachable as err:
            self._broken(err)
        except KubeError as err:
            if err.status not in TRANSIENT_STATUSES:
                raise
            self._broken(err)
        return self.job

    def _apply(self, event: dict) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        version = status.resource_version(obj)
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        if status.name_of(obj) != self.name:
            return
        self.resource_version = version or self.resource_version
        if kind == "DELETED":
            self.job, self.deleted = None, True
        elif kind in ("ADDED", "MODIFIED"):
            self.job, self.deleted = obj, False

    def _broken(self, err: KubeError) -> None:
        """A watch that broke: pause (longer each time, up to the deadline), then the next poll reconnects."""
        now = time.monotonic()
        self._failures += 1
        self.reconnects += 1
        if self._broken_since is None:
            self._broken_since = now
        if now >= self._give_up_at:
            raise ClusterUnreachable(
                f"lost the Kubernetes API for {now - self._broken_since:.0f} s ({self._failures} tries), past the "
                f"deadline of Job {self.name}: {err}") from err
        pause = min(MAX_PAUSE_S, 0.25 * 2 ** min(self._failures - 1, 10), max(0.0, self._give_up_at - now))
        log.warning("watch of Job %s broke (%s); reconnecting in %.2f s", self.name, err, pause)
        self.handle.pause(pause)
