"""What stands in for a Kubernetes cluster in the executor's tests.

There is no cluster here. Two stand-ins take its place:

* ``EmulatedApiServer``: kmock's ``KubernetesEmulator``, a Kubernetes API
  emulator that serves the real REST and watch protocol over HTTP on
  localhost, so the official ``kubernetes`` client talks to it unchanged.
  kmock has known gaps, filled here in the fixture, never in the product:
  it generates no metadata (we add uid, resourceVersion, creationTimestamp),
  ignores label and field selectors (we apply equality selectors), ignores
  ``dryRun`` (we answer without storing), has no SelfSubjectAccessReview or
  pod log endpoint (we answer both), cannot parse the namespace collection's
  path (we answer ``GET /api/v1/namespaces/<name>``), does not serve
  ``/version/`` (we answer as Kubernetes 1.31) and has no garbage collector
  (deleting a Job with a propagation policy deletes its pods here). Faults a
  test asks for are injected here too: a 410 Gone or a dropped connection in
  the next watch of Jobs, a 403 for one action, or an answer lost on the way
  back.
* ``FakeJobController``: a thread that plays the Job controller and kubelet.
  It notices each new Job and runs a *behaviour* for it (``conftest_k8s``): a
  scripted sequence of pod and Job statuses written back through the API (as
  a real controller and kubelet would), or, for the end-to-end test, the
  Job's container command run as a local process with the harness's local
  runtimes.

The volume: tests pass ``--k8s-mount-path`` equal to the shared folder on this
machine, so the container command's ``--shared`` path exists here as it would
inside a pod (the seed mounts its NFS export at the same path everywhere).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kubernetes import client

from harness.backends import get
from harness.executors.base import ExecutorContext
from harness.executors.kubernetes.executor import KubernetesExecutor
from harness.jobs import JobResult, JobSpec

NAMESPACE = "kbench"
STAND_IN_HEADER = "X-Kbench-Stand-In"
"""Marks the stand-in controller's and kubelet's own requests, which an emulated outage spares."""
PVC = "kbench-shared"
CONTEXT = "emulator"
SERVER_VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.4-emulated", "platform": "linux/amd64"}
RESOURCES = {
    "batch/v1/jobs": {"kind": "Job", "namespaced": True, "subresources": ["status"]},
    "v1/pods": {"kind": "Pod", "namespaced": True, "subresources": ["status", "log"]},
    "v1/events": {"kind": "Event", "namespaced": True},
    "v1/persistentvolumeclaims": {"kind": "PersistentVolumeClaim", "namespaced": True},
    "v1/resourcequotas": {"kind": "ResourceQuota", "namespaced": True},
    "v1/nodes": {"kind": "Node", "namespaced": False},
    "authorization.k8s.io/v1/selfsubjectaccessreviews": {"kind": "SelfSubjectAccessReview", "namespaced": False},
}


# -- the API server ----------------------------------------------------------------------------
def selector_matches(labels: dict[str, str], selector: str | None) -> bool:
    """Equality-based label selectors (``a=b,c!=d,e,!f``): all the product uses."""
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif re.fullmatch(r"[\w./-]+", term):
            if term not in labels:
                return False
        else:
            raise ValueError(f"the test API server supports equality selectors only, not {term!r}")
    return True


def fields_match(obj: dict, selector: str | None) -> bool:
    """Equality field selectors on the fields the product selects by (Events' too)."""
    metadata = obj.get("metadata") or {}
    involved = obj.get("involvedObject") or {}
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        key, value = term.replace("==", "=").split("=", 1)
        field = {"metadata.name": metadata.get("name"), "metadata.namespace": metadata.get("namespace"),
                 "type": obj.get("type"), "reason": obj.get("reason"),
                 "involvedObject.uid": involved.get("uid"), "involvedObject.name": involved.get("name"),
                 "involvedObject.kind": involved.get("kind")}[key]
        if field != value:
            return False
    return True


RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                                "projected", "secret"})


def restricted_violations(spec: dict) -> list[str]:
    """What Pod Security admission's "restricted" profile (latest) finds wrong with a pod spec.

    Kubernetes docs, "Pod Security Standards": the Baseline checks (host
    namespaces, privileged containers, added capabilities, hostPath volumes,
    host ports, an Unconfined seccomp profile) and the Restricted ones (volume
    types, privilege escalation, running as non-root, a non-zero runAsUser, a
    RuntimeDefault or Localhost seccomp profile, capabilities dropping ALL and
    adding at most NET_BIND_SERVICE). Messages are worded as the admission
    plugin words them.
    """
    pod_context = spec.get("securityContext") or {}
    containers = list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
    found: list[str] = []
    hosts = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hosts:
        found.append(f"host namespaces ({', '.join(hosts)})")
    for c in containers:
        context = c.get("securityContext") or {}
        name = c.get("name")
        if context.get("privileged"):
            found.append(f'privileged (container "{name}" must not set securityContext.privileged=true)')
        if any(p.get("hostPort") for p in c.get("ports") or []):
            found.append(f'hostPort (container "{name}" uses hostPort)')
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f'allowPrivilegeEscalation != false (container "{name}" must set '
                         "securityContext.allowPrivilegeEscalation=false)")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []) or set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f'unrestricted capabilities (container "{name}" must set '
                         'securityContext.capabilities.drop=["ALL"])')
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f'runAsNonRoot != true (pod or container "{name}" must set securityContext.runAsNonRoot=true)')
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            found.append(f'runAsUser=0 (pod or container "{name}" must not set runAsUser=0)')
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f'seccompProfile (pod or container "{name}" must set securityContext.seccompProfile.type '
                         'to "RuntimeDefault" or "Localhost")')
    for volume in spec.get("volumes") or []:
        kinds = [k for k in volume if k != "name"]
        for kind in kinds:
            if kind not in RESTRICTED_VOLUMES:
                found.append(f'restricted volume types (volume "{volume.get("name")}" uses restricted volume type '
                             f'"{kind}")')
    return found


def pod_security_message(name: str, violations: list[str]) -> str:
    return f'pods "{name}" is forbidden: violates PodSecurity "restricted:latest": {", ".join(violations)}'


def rbac_denial(request: kmock.Request) -> str:
    """RBAC's 403 message, as the API server's authorizer words it."""
    verb = {"POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}.get(
        request.method.value.upper(), "list" if request.name is None else "get")
    plural = request.resource.plural if request.resource is not None else "resource"
    group = request.resource.group if request.resource is not None else ""
    where = f' in the namespace "{request.namespace}"' if request.namespace else ""
    return (f'{plural}{"." + group if group else ""} is forbidden: User "tester" cannot {verb} resource "{plural}" '
            f'in API group "{group}"{where}')


def warning_header(text: str) -> str:
    """A Warning header as the API server writes it: code 299, agent "-", the text quoted with escapes."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                      "code": code, "reason": reason, "message": message}, status=code)


@attrs.define(kw_only=True)
class EmulatedApiServer(kmock.KubernetesEmulator):
    """kmock's emulator with the gaps this suite needs filled (see the module docstring)."""

    namespaces: set[str] = attrs.field(factory=set)
    """Namespaces that exist: kmock cannot parse the namespace collection's path, so they are kept here."""
    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict)
    log_stamps: dict[tuple[str, str], list[str]] = attrs.field(factory=dict)
    broken_log_streams: int = 0
    log_lines_sent: list[tuple[str, int]] = attrs.field(factory=list)
    """(pod, lines) for each followed log stream that ended: what each connection sent."""
    rotated: dict[tuple[str, str], int] = attrs.field(factory=dict)
    """(namespace, pod) -> lines rotated away: the kubelet serves only the current file, from that line on."""
    restricted: set[str] = attrs.field(factory=set)
    """Namespaces labelled pod-security.kubernetes.io/enforce=restricted (and warn=restricted), as k8s/base sets."""
    denied: set[tuple[str, str, str]] = attrs.field(factory=set)
    """(verb, resource, subresource) that SelfSubjectAccessReview answers "not allowed"."""
    forbidden: list[tuple[str, str]] = attrs.field(factory=list)
    """(HTTP method, path regex) answered 403 Forbidden."""
    lost_answers: list[tuple[str, str]] = attrs.field(factory=list)
    """(HTTP method, path regex): do the request, then cut the connection instead of answering (once each)."""
    watch_faults: list[str] = attrs.field(factory=list)
    """"gone" or "drop", consumed by the next watches of Jobs in order."""
    outage_until: float = 0.0
    """Until this time.monotonic(), the harness's requests get 503 (the control plane is away; the nodes run on)."""
    refusals: list[tuple[str, str, int, str]] = attrs.field(factory=list)
    """(HTTP method, path regex, code, message): admission refusals, answered as the API server words them."""
    job_quota: int | None = None
    """A count/jobs.batch ResourceQuota: creating a Job beyond this many existing Jobs is refused (403)."""
    _version: int = attrs.field(default=100, init=False)
    _stamp_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        stand_in = request._raw_request.headers.get(STAND_IN_HEADER) == "cluster"
        if not stand_in and time.monotonic() < self.outage_until:
            return _status(503, "ServiceUnavailable", "the server is currently unable to handle the request")
        for method, pattern, code, message in self.refusals:
            if request.method.value.upper() == method.upper() and re.search(pattern, path):
                return _status(code, "Forbidden" if code == 403 else "Invalid", message)
        if (self.job_quota is not None and not stand_in and request.action == kmock.action.CREATE
                and request.resource is not None and request.resource.plural == "jobs"
                and not request.params.get("dryRun")):
            used = sum(1 for (resource, ns, _), obj in self._objects.items()
                       if resource.plural == "jobs" and ns == request.namespace and not obj.deleted)
            if used >= self.job_quota:
                name = (request.data or {}).get("metadata", {}).get("name", "")
                return _status(403, "Forbidden", f'jobs.batch "{name}" is forbidden: exceeded quota: jobs, requested: '
                                                 f"count/jobs.batch=1, used: count/jobs.batch={used}, limited: "
                                                 f"count/jobs.batch={self.job_quota}")
        for method, pattern in self.forbidden:
            if request.method.value.upper() == method.upper() and re.search(pattern, path):
                return _status(403, "Forbidden", rbac_denial(request))
        if path.rstrip("/") == "/version":  # the client asks for /version/, which kmock does not serve
            return aiohttp.web.json_response(dict(SERVER_VERSION))
        found = re.fullmatch(r"/api/v1/namespaces/([^/]+)", path)
        if found and request.method.value.upper() == "GET":
            if found.group(1) not in self.namespaces:
                return _status(404, "NotFound", f'namespaces "{found.group(1)}" not found')
            return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": found.group(1)}, "status": {"phase": "Active"}})
        if request.resource is not None and request.resource.plural == "selfsubjectaccessreviews":
            attributes = (request.data or {}).get("spec", {}).get("resourceAttributes", {})
            key = (attributes.get("verb"), attributes.get("resource"), attributes.get("subresource") or "")
            answer = dict(request.data, status={"allowed": key not in self.denied})
            return aiohttp.web.json_response(answer, status=201)
        if request.subresource == "log" and request.resource is not None and request.resource.plural == "pods":
            return await self._serve_log(request)
        warning = ""
        if (request.action == kmock.action.CREATE and isinstance(request.data, dict) and request.resource is not None
                and request.namespace in self.restricted):
            # Kubernetes docs, "Pod Security Admission": enforce applies to pods; for workload
            # resources (a Job's pod template) only warn and audit apply, as a Warning header.
            if request.resource.plural == "pods":
                violations = restricted_violations(request.data.get("spec") or {})
                if violations:
                    name = (request.data.get("metadata") or {}).get("name", "")
                    return _status(403, "Forbidden", pod_security_message(name, violations))
            elif request.resource.plural == "jobs":
                template = ((request.data.get("spec") or {}).get("template") or {}).get("spec") or {}
                violations = restricted_violations(template)
                if violations:
                    warning = f'would violate PodSecurity "restricted:latest": {", ".join(violations)}'
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata.setdefault("namespace", request.namespace)
            metadata.setdefault("uid", secrets.token_hex(16))
            metadata.setdefault("creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            metadata["resourceVersion"] = self._next_version()
            if request.params.get("dryRun"):
                answer = aiohttp.web.json_response(request.data, status=201)
                if warning:
                    answer.headers["Warning"] = warning_header(warning)
                return answer
        elif request.action == kmock.action.UPDATE and isinstance(request.data, dict):
            request.data.setdefault("metadata", {}).update(namespace=request.namespace,
                                                           resourceVersion=self._next_version())
        owner_uid = None
        if (request.action == kmock.action.DELETE and request.resource is not None
                and request.resource.plural == "jobs"):
            owner_uid = self._uid_of(request.resource.plural, request.namespace, request.name)
        response = await super()._handle(request)
        if warning and isinstance(response, aiohttp.web.StreamResponse) and not response.prepared:
            response.headers["Warning"] = warning_header(warning)
        for rule in list(self.lost_answers):
            method, pattern = rule
            if request.method.value.upper() == method.upper() and re.search(pattern, path):
                self.lost_answers.remove(rule)
                request._raw_request.transport.abort()
                break
        if owner_uid and request.params.get("propagationPolicy") in ("Foreground", "Background"):
            await self._collect_pods(request.namespace, owner_uid)
        return response

    def _stamped_lines(self, key: tuple[str, str]) -> list[tuple[str, str]]:
        """The pod's complete log lines so far, each with the time it was first seen (as the kubelet stamps them)."""
        text = self.pod_logs.get(key, "")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]  # a line is logged once it is complete
        with self._stamp_lock:  # the stand-in kubelet's thread stamps too, as it writes
            stamps = self.log_stamps.setdefault(key, [])
            while len(stamps) < len(lines):
                stamps.append(dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            return list(zip(stamps, lines))

    async def _serve_log(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """GET pods/<name>/log with follow, timestamps, tailLines and limitBytes as the API server serves them.

        Kubernetes API reference, "Pod" / "read log of the specified Pod":
        limitBytes cuts the answer after that many bytes (the log's start),
        tailLines keeps the last lines, timestamps prefixes RFC 3339 times,
        follow streams until the container ends. A deleted pod's log is gone (404).
        """
        key = (request.namespace, request.name)
        if key not in self.pod_logs or self._raw_of("pods", *key) is None:
            return _status(404, "NotFound", f'pods "{request.name}" not found')
        params = request.params
        stamped = params.get("timestamps") == "true"
        since = params.get("sinceTime")

        def render(entries: list[tuple[str, str]]) -> str:
            return "".join(f"{ts} {line}" if stamped else line for ts, line in entries)

        def served(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
            """What the kubelet serves: the current file only, and with sinceTime the lines stamped then or later.

            The API server passes sinceTime on to the kubelet in whole seconds
            (metav1.Time), so a line earlier in that second is served again.
            """
            entries = entries[self.rotated.get(key, 0):]
            if since:
                second = since[:19]
                entries = [(ts, line) for ts, line in entries if ts[:19] >= second]
            return entries

        if params.get("follow") != "true":
            complete = self._stamped_lines(key)
            entries = served(complete)
            partial = self.pod_logs[key][sum(len(line) for _, line in complete):]
            if partial:  # the last line, not yet ended by a newline, is shown as it is
                entries.append((dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), partial))
            if params.get("tailLines"):
                entries = entries[-int(params["tailLines"]):] if int(params["tailLines"]) else []
            text = render(entries)
            if params.get("limitBytes"):
                text = text.encode()[: int(params["limitBytes"])].decode(errors="ignore")
            return aiohttp.web.Response(text=text, content_type="text/plain")
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request._raw_request)
        sent = 0
        while True:
            for rule in list(self.lost_answers):  # a fault asked for: the stream breaks (after what was sent)
                if rule[0].upper() == "GET" and re.search(rule[1], request.url.path):
                    self.lost_answers.remove(rule)
                    self.broken_log_streams += 1
                    self.log_lines_sent.append((request.name, sent))
                    request._raw_request.transport.abort()
                    return response
            entries = served(self._stamped_lines(key))
            if len(entries) > sent:
                await response.write(render(entries[sent:]).encode())
                sent = len(entries)
            pod = self._raw_of("pods", *key)
            phase = ((pod or {}).get("status") or {}).get("phase")
            if pod is None or phase in ("Succeeded", "Failed"):
                break
            await asyncio.sleep(0.05)
        self.log_lines_sent.append((request.name, sent))
        await response.write_eof()
        return response

    def _raw_of(self, plural: str, namespace: str, name: str) -> dict | None:
        for (resource, ns, stored), obj in self._objects.items():
            if resource.plural == plural and ns == namespace and stored == name and not obj.deleted:
                return obj.raw
        return None

    def _uid_of(self, plural: str, namespace: str, name: str) -> str | None:
        return ((self._raw_of(plural, namespace, name) or {}).get("metadata") or {}).get("uid")

    async def _collect_pods(self, namespace: str, owner_uid: str) -> None:
        """The garbage collector: a Job deleted with propagation takes the pods it owns (by uid) with it.

        Kubernetes docs, "Garbage Collection", "Owners and dependents": dependents
        name their owner by uid in ``ownerReferences``, so a new Job of the same
        name never adopts, or loses, an old Job's pods.
        """
        async with self._lock:
            for (resource, ns, _name), obj in list(self._objects.items()):
                raw = obj.raw if not obj.deleted else {}
                owners = (raw.get("metadata") or {}).get("ownerReferences") or []
                if resource.plural == "pods" and ns == namespace and any(o.get("uid") == owner_uid for o in owners):
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})

    async def _serve_list(self, request: kmock.Request) -> Any:
        answer = await super()._serve_list(request)
        answer["items"] = [item for item in answer["items"] if self._selected(request, item)]
        answer["metadata"]["resourceVersion"] = str(self._version)
        return answer

    def _selected(self, request: kmock.Request, obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return (selector_matches(labels, request.params.get("labelSelector"))
                and fields_match(obj, request.params.get("fieldSelector")))

    async def _serve_watch(self, request: kmock.Request) -> Any:
        fault = None
        if (request.resource.plural == "jobs" and self.watch_faults
                and "-probe" not in (request.params.get("fieldSelector") or "")):  # the write probe's watch is spared
            fault = self.watch_faults.pop(0)
        if fault == "gone":
            yield {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                               "code": 410, "reason": "Expired",
                                               "message": "too old resource version: 1 (4242)"}}
            return
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and not self._selected(request, event.get("object") or {}):
                continue
            yield event
            if fault == "drop" and isinstance(event, dict):
                yield b'{"type": "MODIFIED", "object": {"metadata": {"na'  # half an event, then the wire is cut
                await asyncio.sleep(0.05)
                transport = request._raw_request.transport
                if transport is not None:
                    transport.abort()
                return


class ApiServerThread:
    """Runs an ``EmulatedApiServer`` on 127.0.0.1 in its own event loop thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.server: EmulatedApiServer | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._main, name="k8s-api-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the Kubernetes API emulator did not start")

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with EmulatedApiServer() as server, kmock.Server(server) as http:
            for key, info in RESOURCES.items():
                server.resources[key] = info
            self.server = server
            self.url = str(http.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def requests(self) -> list[kmock.Request]:
        return list(self.server)

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


def write_kubeconfig(path: Path, url: str, namespace: str = NAMESPACE) -> Path:
    """A kubeconfig with one context, ``emulator``, pointing at the emulator."""
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT,
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "tester", "namespace": namespace}}],
    }
    path.write_text(yaml.safe_dump(document))
    return path


# -- acting as the cluster: a client of our own, independent of the product's wrapper ---------------
class ClusterSide:
    """What the controller and kubelet stand-ins do through the API."""

    def __init__(self, url: str, namespace: str = NAMESPACE):
        configuration = client.Configuration()
        configuration.host = url
        self.api_client = client.ApiClient(configuration)
        self.api_client.set_default_header(STAND_IN_HEADER, "cluster")  # spared by outages (the kubelet runs on)
        self.core = client.CoreV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.namespace = namespace
        self.uids: dict[str, str] = {}
        """Pod name -> uid, for events about the pods created here."""

    @staticmethod
    def _json(response: Any) -> Any:
        try:
            return json.loads(response.data or b"{}")
        finally:
            response.release_conn()

    def jobs(self) -> list[dict]:
        return self._json(self.batch.list_namespaced_job(self.namespace, _preload_content=False))["items"]

    def job(self, name: str) -> dict | None:
        try:
            return self._json(self.batch.read_namespaced_job(name, self.namespace, _preload_content=False))
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def pods(self, job: str) -> list[dict]:
        items = self._json(self.core.list_namespaced_pod(self.namespace, _preload_content=False,
                                                         label_selector=f"job-name={job}"))["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])

    def pod(self, name: str) -> dict:
        return self._json(self.core.read_namespaced_pod(name, self.namespace, _preload_content=False))

    def pod_exists(self, name: str) -> bool:
        try:
            self._json(self.core.read_namespaced_pod(name, self.namespace, _preload_content=False))
            return True
        except client.ApiException as err:
            if err.status == 404:
                return False
            raise

    def create_pvc(self, name: str, modes: tuple[str, ...] = ("ReadWriteMany",)) -> None:
        body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"accessModes": list(modes), "storageClassName": "",
                         "resources": {"requests": {"storage": "10Gi"}}},
                "status": {"phase": "Bound"}}
        self.core.create_namespaced_persistent_volume_claim(self.namespace, body, _preload_content=False).release_conn()

    def create_pod(self, job: dict, attempt: int) -> str:
        """A pod from the Job's template, labelled and owned as the Job controller does."""
        template = job["spec"]["template"]
        name = f"{job['metadata']['name'][:50]}-{attempt}{secrets.token_hex(2)}"
        labels = dict(template["metadata"].get("labels") or {})
        # Kubernetes docs, "Jobs", "Job labels": the controller sets batch.kubernetes.io/job-name and
        # batch.kubernetes.io/controller-uid (1.27+) and still the legacy job-name and controller-uid.
        labels.update({"job-name": job["metadata"]["name"], "batch.kubernetes.io/job-name": job["metadata"]["name"],
                       "controller-uid": job["metadata"]["uid"],
                       "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]})
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": self.namespace, "labels": labels,
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "controller": True,
                                                  "name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}]},
                "spec": template["spec"]}
        created = self._json(self.core.create_namespaced_pod(self.namespace, body, _preload_content=False))
        self.uids[name] = created["metadata"]["uid"]
        self.pod_status(name, phase="Pending", conditions=[])
        return name

    def event(self, kind: str, name: str, uid: str, reason: str, message: str, component: str = "kubelet",
              kind_of_event: str = "Warning", ago_s: float = 0.0) -> None:
        """A core/v1 Event about an object, as the kubelet or a controller records it (``ago_s`` seconds ago)."""
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": self.namespace},
                "involvedObject": {"kind": kind, "name": name, "namespace": self.namespace, "uid": uid,
                                   "apiVersion": "batch/v1" if kind == "Job" else "v1"},
                "reason": reason, "message": message, "type": kind_of_event, "count": 1,
                "firstTimestamp": now(ago_s), "lastTimestamp": now(ago_s), "source": {"component": component}}
        self.core.create_namespaced_event(self.namespace, body, _preload_content=False).release_conn()

    def pod_status(self, name: str, **fields: Any) -> None:
        body = {"metadata": {"namespace": self.namespace}, "status": fields}
        self.core.patch_namespaced_pod_status(name, self.namespace, body, _preload_content=False).release_conn()

    def job_status(self, name: str, **fields: Any) -> None:
        body = {"metadata": {"namespace": self.namespace}, "status": fields}
        self.batch.patch_namespaced_job_status(name, self.namespace, body, _preload_content=False).release_conn()

    def close(self) -> None:
        self.api_client.close()


def now(ago_s: float = 0.0) -> str:
    """An RFC 3339 time in whole seconds, as the API writes lastTimestamp and lastTransitionTime."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, reason: str = "", message: str = "", status: str = "True", ago_s: float = 0.0) -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now(ago_s), "lastProbeTime": now(ago_s)}


class JobRun:
    """One Job as the fake controller and kubelet see it; a behaviour drives it."""

    def __init__(self, side: ClusterSide, server: EmulatedApiServer, job: dict):
        self.side = side
        self.server = server
        self.job = job
        self.name = job["metadata"]["name"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        self.container = container
        self.command: list[str] = list(container.get("command") or []) + list(container.get("args") or [])
        self.env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
        self.pods: list[str] = []
        self.started = time.monotonic()
        """When the controller first saw the Job: its activeDeadlineSeconds count from here (status.startTime)."""

    def arg(self, flag: str) -> str:
        return self.command[self.command.index(flag) + 1]

    @property
    def phase(self) -> str:
        return self.command[self.command.index("harness.workload") + 1]

    @property
    def backend_dir(self) -> Path:
        return Path(self.arg("--shared"), "runs", self.arg("--run-id"), self.arg("--backend"))

    # pods ------------------------------------------------------------------------------
    def new_pod(self) -> str:
        """Create the next pod from the template, as the Job controller does.

        Kubernetes docs, "Jobs" / "Pod Security Admission": when admission refuses
        the pod, the controller records a FailedCreate warning event on the Job
        ("Error creating: ...") and tries again later, for as long as the Job exists.
        """
        while True:
            try:
                name = self.side.create_pod(self.job, len(self.pods) + 1)
                break
            except client.ApiException as err:
                if err.status != 403:
                    raise
                message = json.loads(err.body or "{}").get("message", "")
                self.job_event("FailedCreate", f"Error creating: {message}")
                if self.wait_deleted(0.3):
                    raise client.ApiException(status=404, reason="the Job was deleted") from None
        self.pods.append(name)
        self.job_status(active=1)
        return name

    def waiting(self, pod: str, reason: str, message: str = "") -> None:
        self.side.pod_status(pod, phase="Pending", containerStatuses=[{
            "name": self.container["name"], "image": self.container["image"], "ready": False, "restartCount": 0,
            "imageID": "", "state": {"waiting": {"reason": reason, "message": message}}}])

    def delete_pod(self, pod: str) -> None:
        """The controller deletes a pod (deadline, TTL): its log goes with it."""
        self.side.core.delete_namespaced_pod(pod, self.side.namespace, _preload_content=False).release_conn()

    def pod_event(self, pod: str, reason: str, message: str, kind_of_event: str = "Warning", ago_s: float = 0.0) -> None:
        self.side.event("Pod", pod, self.side.uids[pod], reason, message, kind_of_event=kind_of_event, ago_s=ago_s)

    def job_event(self, reason: str, message: str) -> None:
        self.side.event("Job", self.name, self.job["metadata"]["uid"], reason, message, component="job-controller")

    def unschedulable(self, pod: str, message: str) -> None:
        self.side.pod_status(pod, phase="Pending", conditions=[
            condition("PodScheduled", "Unschedulable", message, status="False")])

    def running(self, pod: str, node: str = "node-1") -> None:
        self.side.core.patch_namespaced_pod(pod, self.side.namespace, {"spec": {"nodeName": node}},
                                            _preload_content=False).release_conn()
        self.side.pod_status(pod, phase="Running", conditions=[condition("PodScheduled")], containerStatuses=[{
            "name": self.container["name"], "image": self.container["image"], "ready": True, "restartCount": 0,
            "imageID": "sha256:0", "state": {"running": {"startedAt": now()}}}])

    def terminated(self, pod: str, exit_code: int, reason: str = "", message: str = "",
                   conditions: list[dict] | None = None, pod_reason: str = "", pod_message: str = "") -> None:
        fields: dict[str, Any] = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{
                "name": self.container["name"], "image": self.container["image"], "ready": False,
                "restartCount": 0, "imageID": "sha256:0",
                "state": {"terminated": {"exitCode": exit_code, "reason": reason or (
                    "Completed" if exit_code == 0 else "Error"), "message": message, "finishedAt": now()}}}]}
        if conditions is not None:
            fields["conditions"] = conditions
        if pod_reason:
            fields.update(reason=pod_reason, message=pod_message)
        self.side.pod_status(pod, **fields)

    def log(self, pod: str, text: str) -> None:
        """The container's whole output so far; its new lines are stamped now, as the kubelet stamps them."""
        self.server.pod_logs[(self.side.namespace, pod)] = text
        self.server._stamped_lines((self.side.namespace, pod))

    # the Job ---------------------------------------------------------------------------
    def job_status(self, **fields: Any) -> None:
        self.side.job_status(self.name, **fields)

    def complete(self, hold_s: float = 0.0) -> None:
        """Success as 1.31+ reports it: SuccessCriteriaMet first, Complete ``hold_s`` later."""
        self.job_status(conditions=[condition("SuccessCriteriaMet", "CompletionsReached")], active=0, succeeded=1)
        time.sleep(hold_s)
        self.job_status(conditions=[condition("SuccessCriteriaMet", "CompletionsReached"),
                                    condition("Complete", "CompletionsReached")], completionTime=now())

    def fail(self, reason: str, message: str = "", hold_s: float = 0.0) -> None:
        self.job_status(conditions=[condition("FailureTarget", reason, message)], active=0)
        time.sleep(hold_s)
        self.job_status(conditions=[condition("FailureTarget", reason, message),
                                    condition("Failed", reason, message)], failed=len(self.pods))

    def past_deadline(self) -> bool:
        deadline = (self.job.get("spec") or {}).get("activeDeadlineSeconds")
        return deadline is not None and time.monotonic() - self.started > float(deadline)

    def deadline_exceeded(self, pod: str | None = None) -> None:
        """Kubernetes docs, "Jobs", "Job termination and cleanup": past activeDeadlineSeconds the running pods
        are terminated (deleted, their logs with them) and the Job fails with reason DeadlineExceeded."""
        if pod is not None:
            self.delete_pod(pod)
        self.fail("DeadlineExceeded", "Job was active longer than specified deadline")

    def ended(self) -> bool:
        """Whether the Job has its final Complete or Failed condition."""
        current = self.side.job(self.name) or {}
        return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in (current.get("status") or {}).get("conditions") or [])

    def still_exists(self) -> bool:
        """False once this Job was deleted (a new Job of the same name is another Job)."""
        current = self.side.job(self.name)
        return current is not None and current["metadata"]["uid"] == self.job["metadata"]["uid"]

    def wait_deleted(self, timeout_s: float = 30.0) -> bool:
        limit = time.monotonic() + timeout_s
        while time.monotonic() < limit:
            if not self.still_exists():
                return True
            time.sleep(0.05)
        return False

    # files on the shared volume -----------------------------------------------------------
    def write_events(self, *events: dict) -> None:
        self.backend_dir.mkdir(parents=True, exist_ok=True)
        with open(self.backend_dir / f"{self.phase}.events.jsonl", "a") as handle:
            for event in events:
                record = {"v": 1, "t": time.time(), "backend": self.arg("--backend"), "phase": self.phase}
                record.update(event)
                handle.write(json.dumps(record) + "\n")

    def write_result(self) -> None:
        self.backend_dir.mkdir(parents=True, exist_ok=True)
        (self.backend_dir / f"{self.phase}.json").write_text(json.dumps({"schema": 1, "phase": self.phase}))


Behaviour = Callable[[JobRun], None]


def pod_failure_action(job: dict, pod: dict) -> str:
    """What the Job's podFailurePolicy says about a failed pod: Ignore, FailJob, or Count when no rule matches.

    Kubernetes docs, "Jobs", "Pod failure policy": rules are evaluated in order
    and the first match wins; ``onExitCodes`` matches a container's non-zero
    exit code (In / NotIn), ``onPodConditions`` a pod condition's type and
    status; a failed pod that matches no rule counts towards backoffLimit.
    """
    status = pod.get("status") or {}
    for rule in ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []:
        codes = rule.get("onExitCodes")
        if codes:
            for container in status.get("containerStatuses") or []:
                if codes.get("containerName") not in (None, container.get("name")):
                    continue
                code = ((container.get("state") or {}).get("terminated") or {}).get("exitCode")
                if code in (None, 0):
                    continue
                if (code in codes["values"]) == (codes.get("operator") == "In"):
                    return rule["action"]
        for pattern in rule.get("onPodConditions") or []:
            for condition_ in status.get("conditions") or []:
                if condition_.get("type") == pattern["type"] and condition_.get("status") == pattern.get("status",
                                                                                                          "True"):
                    return rule["action"]
    return "Count"


def drive_pods(run: JobRun, attempt: Callable[[str], None]) -> None:
    """The Job controller's loop: a pod per try, until success or until the Job's rules say it failed.

    ``attempt(pod)`` plays the kubelet for one pod and leaves it terminated.
    Kubernetes docs, "Jobs": "Pod backoff failure policy" (backoffLimit counts
    failed pods; past it the Job fails with BackoffLimitExceeded), "Pod failure
    policy" (Ignore: a new pod, not counted; FailJob: the Job fails at once
    with reason PodFailurePolicy).
    """
    failures = 0
    while True:
        if run.past_deadline():
            run.deadline_exceeded()
            return
        pod = run.new_pod()
        attempt(pod)
        if not run.still_exists() or run.ended():
            return
        state = run.side.pod(pod)
        if (state.get("status") or {}).get("phase") == "Succeeded":
            run.complete()
            return
        action = pod_failure_action(run.job, state)
        if action == "FailJob":
            run.fail("PodFailurePolicy", f"Container {run.container['name']} for pod {run.side.namespace}/{pod} "
                     "failed with an exit code matching FailJob rule at index 1")
            return
        if action == "Ignore":
            continue
        failures += 1
        if failures > int(run.job["spec"].get("backoffLimit", 6)):
            run.fail("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            return


def runs_probe(run: JobRun, as_job_user: bool) -> None:
    """The kubelet for the harness's write probe: run its ``python -c`` here, as the pod's user when asked.

    Run as the pod's runAsUser/runAsGroup (no supplementary groups), file
    permissions are the kernel's, as on a node; the folders are the same paths
    here and "in the pod" (--k8s-mount-path equals the shared folder in tests).
    """
    context = run.job["spec"]["template"]["spec"].get("securityContext") or {}

    def attempt(pod: str) -> None:
        run.running(pod)
        identity: dict[str, Any] = {}
        if as_job_user:
            identity = {"user": context["runAsUser"], "group": context["runAsGroup"], "extra_groups": []}
        done = subprocess.run(["/usr/bin/python3", *run.command[1:]], capture_output=True, text=True, check=False,
                              cwd="/", timeout=60, **identity)
        text = done.stdout + done.stderr
        run.log(pod, text)
        run.terminated(pod, done.returncode, message=text[-2048:] if done.returncode else "")

    drive_pods(run, attempt)


class FakeJobController:
    """Plays the Job controller and kubelet: runs a behaviour for every new Job."""

    def __init__(self, url: str, server: EmulatedApiServer, behaviour: Behaviour | None = None):
        self.side = ClusterSide(url)
        self.server = server
        self.behaviour = behaviour
        self.runs: dict[str, JobRun] = {}
        self.probe_as_job_user = False
        """Run the write probe as the pod's runAsUser/runAsGroup (needs root), not as this test's user."""
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._loop, name="fake-job-controller", daemon=True)
        self._thread.start()

    def _collect_finished(self, jobs: list[dict], finished_at: dict[str, float]) -> None:
        """The TTL-after-finished controller: delete a finished Job (and its pods) ``ttlSecondsAfterFinished`` later.

        Kubernetes docs, "Automatic Cleanup for Finished Jobs": once a Job is
        Complete or Failed, the TTL controller deletes it with cascading
        (background) deletion after the TTL; its pods and their logs go too.
        """
        for job in jobs:
            ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
            ended = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                        for c in (job.get("status") or {}).get("conditions") or [])
            if ttl is None or not ended:
                continue
            uid = job["metadata"]["uid"]
            finished_at.setdefault(uid, time.monotonic())
            if time.monotonic() - finished_at[uid] >= ttl:
                with contextlib.suppress(client.ApiException):
                    self.side.batch.delete_namespaced_job(job["metadata"]["name"], self.side.namespace,
                                                          propagation_policy="Background",
                                                          _preload_content=False).release_conn()

    def _loop(self) -> None:
        seen: set[str] = set()
        finished_at: dict[str, float] = {}
        while not self._stop.is_set():
            try:
                jobs = self.side.jobs()
                self._collect_finished(jobs, finished_at)
            except Exception:  # noqa: BLE001 - the server is going away at teardown
                jobs = []
            for job in jobs:
                uid = job["metadata"]["uid"]
                probe = (job["metadata"].get("labels") or {}).get("kbench.io/phase") == "probe"
                if uid in seen or (self.behaviour is None and not probe):
                    continue
                seen.add(uid)
                run = JobRun(self.side, self.server, job)
                self.runs[run.name] = run
                behaviour = (lambda r: runs_probe(r, self.probe_as_job_user)) if probe else self.behaviour
                thread = threading.Thread(target=self._drive, args=(run, behaviour), name=f"fake-kubelet-{run.name}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
            self._stop.wait(0.05)

    def _drive(self, run: JobRun, behaviour: Behaviour) -> None:
        try:
            behaviour(run)
        except Exception as err:  # noqa: BLE001 - reported by the fixture at teardown
            deleted = isinstance(err, client.ApiException) and err.status == 404 and not run.still_exists()
            if not self._stop.is_set() and not deleted:  # a deleted Job's kubelet just stops
                self.errors.append(err)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for thread in self._threads:
            thread.join(10)
        self.side.close()


# -- the whole stand-in ---------------------------------------------------------------------------------
class FakeCluster:
    """An API emulator with a namespace and a PVC, and a fake controller waiting for Jobs."""

    def __init__(self, tmp_path: Path):
        self.api = ApiServerThread()
        self.server: EmulatedApiServer = self.api.server
        self.url = self.api.url
        self.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", self.url)
        self.side = ClusterSide(self.url)
        self.server.namespaces.add(NAMESPACE)
        self.server.restricted.add(NAMESPACE)
        self.side.create_pvc(PVC)
        self.controller = FakeJobController(self.url, self.server)

    def behave(self, behaviour: Behaviour) -> None:
        self.controller.behaviour = behaviour

    def requests(self, method: str | None = None, pattern: str = "", probes: bool = False) -> list[kmock.Request]:
        """The requests made so far; those about the harness's write probe Job only with ``probes``."""
        return [r for r in self.api.requests()
                if (method is None or r.method.value.upper() == method.upper()) and re.search(pattern, r.url.path)
                and (probes or not _about_probe(r))]

    def jobs(self) -> list[dict]:
        return self.side.jobs()

    def close(self) -> None:
        self.controller.close()
        self.side.close()
        self.api.close()


def _about_probe(request: kmock.Request) -> bool:
    name = ((request.data if isinstance(request.data, dict) else {}).get("metadata") or {}).get("name") or ""
    return request.url.path.endswith("-probe") or name.endswith("-probe") or "-probe-" in request.url.path


@contextlib.contextmanager
def running_fake_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    """A fake cluster for one test; re-raises what went wrong in its controller threads.

    Test modules wrap it in their own ``fake_cluster`` fixture.
    """
    cluster = FakeCluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()
    if cluster.controller.errors:
        raise cluster.controller.errors[0]


# -- the executor under test, as a user's kubeconfig reaches the stand-in ----------------------------------
RUN = "run-1"


def job_spec(backend: str = "tensorflow", phase: str = "train", run_id: str = RUN, timeout_s: float = 60) -> JobSpec:
    return JobSpec(run_id, get(backend), phase, {"KERAS_BACKEND": get(backend).keras_backend}, timeout_s, 2)


def run_job(executor: KubernetesExecutor, job: JobSpec | None = None) -> tuple[JobResult, list[dict]]:
    """Run one job to its end; return its result and the progress events it forwarded."""
    events: list[dict] = []
    result = executor.run(job or job_spec(), lambda _job, event: events.append(event))
    return result, events


class ExecutorMaker:
    """Builds executors that talk to the stand-in through a kubeconfig, with short timeouts; closes them all."""

    def __init__(self, cluster: FakeCluster, shared: Path, work: Path):
        self.cluster, self.shared, self.work = cluster, shared, work
        self.built: list[KubernetesExecutor] = []

    def __call__(self, said: list[str] | None = None, **options: Any) -> KubernetesExecutor:
        settings = {"k8s_kubeconfig": str(self.cluster.kubeconfig), "k8s_context": CONTEXT,
                    "k8s_mount_path": str(self.shared), "k8s_poll_interval": 0.2, "k8s_schedule_timeout": 1.0,
                    "k8s_result_wait": 1.0, "k8s_start_grace": 1.0, "k8s_capacity_wait": 1.0}
        settings.update(options)
        sink = said if said is not None else []
        executor = KubernetesExecutor(ExecutorContext(self.shared, self.work, None, sink.append), settings)
        self.built.append(executor)
        return executor

    def close(self) -> None:
        for executor in self.built:
            executor.close()
