"""The one door to the Kubernetes API: configuration, bounded retries, our own errors.

Every request the executor makes goes through ``KubeApi.call`` (or, for watch
streams, ``KubeApi.watch_jobs``): transient failures (a dropped connection, a
timeout, 429 and 5xx answers) are retried a bounded number of times with a
log line per attempt; everything else becomes one of the ``KubeError`` types
below, whose message says what to do. Objects come back as plain dicts (the
JSON the server sent), so the rest of the executor never depends on the
client's model classes.

The only module that imports the ``kubernetes`` client; the executor imports it
when it first talks to a cluster (``executor.connect``), so ``pytest --help``
and the local executor never load the client.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from harness.errors import ExecutorError
from harness.executors.kubernetes import kubeconfig as kubeconfig_file
from harness.executors.kubernetes.errors import (
    TRANSIENT_STATUSES,
    ClusterUnreachable,
    Gone,
    KubeError,
    NotFound,
    Rejected,
    error_for,
)
from harness.executors.kubernetes.streams import WatchHandle

log = logging.getLogger("harness.executors.kubernetes")

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
RETRIES = 4
"""Attempts per call after the first, for transient failures only."""
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
LOG_TAIL_LINES = 200_000
"""Lines of a pod's log read back after it ended (the stream kept while it ran usually has them all)."""
LOG_READ_TIMEOUT_S = 600.0
"""A followed log that prints nothing this long is reconnected (quiet epochs are normal)."""
FIELD_MANAGER = "kbench-harness"


def _status_message(err: client.ApiException) -> tuple[str, str]:
    """The API's own (reason, message) from an error answer, when it sent a Status."""
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    return str(body.get("reason") or err.reason or ""), str(body.get("message") or err.reason or "").strip()


def api_error(what: str, err: client.ApiException, host: str, namespace: str = "NAMESPACE") -> KubeError:
    """Turn a client ``ApiException`` into our error type with a message that names the fix."""
    reason, message = _status_message(err)
    return error_for(what, err.status or 0, reason, message, host, namespace)


def _connection_error(what: str, err: BaseException, host: str) -> ClusterUnreachable:
    cause: BaseException = err
    while isinstance(cause, urllib3.exceptions.MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    text = str(cause)
    if "Connection refused" in text or isinstance(cause, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(cause, (urllib3.exceptions.ConnectTimeoutError, socket.timeout, TimeoutError)):
        why = "no answer (timed out)"
    elif isinstance(cause, urllib3.exceptions.SSLError):
        why = f"TLS failed ({text})"
    elif isinstance(cause, urllib3.exceptions.NameResolutionError):
        why = "its name does not resolve"
    else:
        why = f"{type(cause).__name__}: {text}"
    return ClusterUnreachable(f"{what}: cannot reach the Kubernetes API at {host}: {why}; check --k8s-context "
                              "or your kubeconfig, and that the cluster is running")


# -- configuration ------------------------------------------------------------------------
def load_configuration(kubeconfig: str | None, context: str | None) -> client.Configuration:
    """A client configuration from a kubeconfig, or from the pod's service account in a cluster.

    Every way the file can be wrong is one ``ExecutorError`` line naming the
    file and the fix (``kubeconfig``), never the loader's own exception.
    """
    configuration = client.Configuration()
    chosen = kubeconfig_file.source(kubeconfig)
    in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    if not kubeconfig and in_cluster and not chosen.first.exists():
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as err:
            raise ExecutorError(f"cannot use the pod's service account: {err}; {kubeconfig_file.FIX}") from None
    else:
        # like kubectl, a KUBECONFIG list skips the files that do not exist; one file must exist
        named = [path for path in chosen.paths if path.exists()] if len(chosen.paths) > 1 else list(chosen.paths)
        for path in named or [chosen.first]:
            said = kubeconfig_file.problem(path, chosen.given_by)
            if said:
                raise ExecutorError(said)
        try:
            config.load_kube_config(config_file=chosen.value, context=context, client_configuration=configuration,
                                    persist_config=False)
        except ConfigException as err:
            raise ExecutorError(kubeconfig_file.unusable(chosen.first, chosen.given_by, context, err, True)) from None
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, yaml.YAMLError, OSError) as err:
            # the loader indexes the YAML as it expects it to be: a file of another shape breaks it anywhere
            raise ExecutorError(kubeconfig_file.unusable(chosen.first, chosen.given_by, context, err, False)) from None
    # The wrapper below retries; urllib3 must not retry on its own as well.
    configuration.retries = False
    configuration.connection_pool_maxsize = 32
    return configuration


# -- the wrapper ----------------------------------------------------------------------------
class KubeApi:
    """Every call the executor makes to the cluster, each through ``call``."""

    def __init__(self, configuration: client.Configuration, namespace: str, retries: int = RETRIES,
                 sleep: Callable[[float], None] = time.sleep):
        self.configuration = configuration
        self.namespace = namespace
        self.host = configuration.host
        self.retries = retries
        self._sleep = sleep
        self.api_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.authz = client.AuthorizationV1Api(self.api_client)
        self.versions = client.VersionApi(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    # -- the door -------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., Any], *args: Any, retries: int | None = None,
             read_timeout_s: float = READ_TIMEOUT_S, warnings: list[str] | None = None, **kwargs: Any) -> Any:
        """Run one request and return its JSON as plain data (or text for logs).

        ``what`` names the action for messages ("create Job x"). Retries only
        what can heal by itself; raises a ``KubeError`` otherwise. The API
        server's ``Warning`` headers (admission, deprecations) are logged, and
        added to ``warnings`` when given.
        """
        attempts = 1 + (self.retries if retries is None else retries)
        for attempt in range(1, attempts + 1):
            try:
                response = fn(*args, _preload_content=False,
                              _request_timeout=(CONNECT_TIMEOUT_S, read_timeout_s), **kwargs)
                try:
                    data = response.data
                finally:
                    response.release_conn()
                said = warning_texts(response.headers)
                for text in said:
                    log.info("%s: the API server warns: %s", what, text)
                if warnings is not None:
                    warnings.extend(said)
                log.debug("%s: ok (attempt %d)", what, attempt)
                return _decode(data, response.headers.get("Content-Type", ""))
            except client.ApiException as err:
                error: KubeError = api_error(what, err, self.host, self.namespace)
                transient = err.status in TRANSIENT_STATUSES
                delay = _retry_after(err)
            except pydantic.ValidationError as err:
                raise Rejected(f"{what}: the client refused the request before sending it: "
                               f"{_first_pydantic_error(err)}; fix the Job template (--k8s-template)") from err
            except (urllib3.exceptions.HTTPError, OSError) as err:
                error = _connection_error(what, err, self.host)
                transient = True
                delay = None
            if not transient or attempt == attempts:
                log.info("%s: failed after %d attempt(s): %s", what, attempt, error)
                raise error
            wait = delay if delay is not None else BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)]
            log.warning("%s: attempt %d of %d failed (%s); retrying in %.1f s", what, attempt, attempts,
                        error, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    # -- what the executor asks ----------------------------------------------------------
    def server_version(self, retries: int = 1) -> dict:
        return self.call("read the server version", self.versions.get_code, retries=retries,
                         read_timeout_s=CONNECT_TIMEOUT_S)

    def read_namespace(self) -> dict:
        return self.call(f"read namespace {self.namespace}", self.core.read_namespace, self.namespace, retries=1)

    def read_pvc(self, name: str) -> dict:
        return self.call(f"read PersistentVolumeClaim {name}", self.core.read_namespaced_persistent_volume_claim,
                         name, self.namespace, retries=1)

    def can_i(self, verb: str, resource: str, group: str = "", subresource: str = "") -> bool:
        """Ask the API server whether our credentials allow one action in the namespace."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": self.namespace, "verb": verb, "group": group,
                                            "resource": resource, "subresource": subresource}},
        }
        answer = self.call(f"ask whether we may {verb} {resource}", self.authz.create_self_subject_access_review,
                           review, retries=1)
        return bool((answer.get("status") or {}).get("allowed"))

    def dry_run_job(self, manifest: dict) -> list[str]:
        """Let the API server validate and admit a Job without creating it; return its warnings."""
        warnings: list[str] = []
        self.call(f"dry-run create Job {manifest['metadata']['name']}", self.batch.create_namespaced_job,
                  self.namespace, manifest, field_validation="Strict", field_manager=FIELD_MANAGER, dry_run="All",
                  warnings=warnings)
        return warnings

    def dry_run_pod(self, manifest: dict) -> list[str]:
        """Let the API server admit a Pod without creating it (Pod Security enforces on pods only)."""
        warnings: list[str] = []
        self.call(f"dry-run create Pod {manifest['metadata']['name']}", self.core.create_namespaced_pod,
                  self.namespace, manifest, field_manager=FIELD_MANAGER, dry_run="All", retries=1,
                  warnings=warnings)
        return warnings

    def create_job(self, manifest: dict, dry_run: bool = False) -> dict:
        name = manifest["metadata"]["name"]
        extra = {"dry_run": "All"} if dry_run else {}
        return self.call(f"{'dry-run ' if dry_run else ''}create Job {name}", self.batch.create_namespaced_job,
                         self.namespace, manifest, field_validation="Strict", field_manager=FIELD_MANAGER, **extra)

    def read_job(self, name: str) -> dict:
        return self.call(f"read Job {name}", self.batch.read_namespaced_job, name, self.namespace)

    def list_jobs(self, label_selector: str | None = None, field_selector: str | None = None) -> dict:
        return self.call("list Jobs", self.batch.list_namespaced_job, self.namespace,
                         label_selector=label_selector, field_selector=field_selector)

    def delete_job(self, name: str, propagation: str = "Foreground", retries: int | None = None) -> bool:
        """Delete a Job and (by the propagation policy) its pods; False if it was already gone."""
        try:
            self.call(f"delete Job {name}", self.batch.delete_namespaced_job, name, self.namespace,
                      propagation_policy=propagation, retries=retries)
        except NotFound:
            return False
        return True

    def list_pods(self, label_selector: str, retries: int | None = None) -> list[dict]:
        answer = self.call("list pods", self.core.list_namespaced_pod, self.namespace, label_selector=label_selector,
                           retries=retries)
        return list(answer.get("items") or [])

    def list_resource_quotas(self) -> list[dict]:
        """The namespace's ResourceQuotas, with what each has left (``status.hard``, ``status.used``)."""
        answer = self.call("list ResourceQuotas", self.core.list_namespaced_resource_quota, self.namespace,
                           retries=1)
        return list(answer.get("items") or [])

    def list_nodes(self) -> list[dict]:
        """The cluster's nodes (a cluster-scoped read that many namespaced users may not do: ``Forbidden``)."""
        answer = self.call("list nodes", self.core.list_node, retries=1)
        return list(answer.get("items") or [])

    def list_warning_events(self) -> list[dict]:
        """The namespace's warning events (FailedMount, FailedCreate, Failed pulls...), as core/v1 Events."""
        answer = self.call("list warning events", self.core.list_namespaced_event, self.namespace,
                           field_selector="type=Warning", retries=0)
        return list(answer.get("items") or [])

    def pod_log(self, name: str, container: str, tail_lines: int = LOG_TAIL_LINES, retries: int | None = None) -> str:
        """The end of a container's log: its last ``tail_lines`` lines.

        The end, not the start: ``limitBytes`` would keep the start of a long log,
        and the workload's ``kbench-error:`` line is at the end.
        """
        return self.call(f"read the log of pod {name}", self.core.read_namespaced_pod_log, name, self.namespace,
                         container=container, tail_lines=tail_lines, retries=retries)

    def follow_pod_log(self, name: str, container: str, handle: WatchHandle, since: str | None = None) -> Iterator[str]:
        """The lines of a container's log, each after its RFC 3339 timestamp, as the container prints them.

        ``since`` (an RFC 3339 time) starts at the lines stamped then or later,
        as ``kubectl logs --since-time`` does: a reconnect resumes where the
        last stream ended instead of replaying the log from its start. (The
        generated client has no ``sinceTime`` parameter, though the API's
        PodLogOptions has one, so the request is built here.) Ends when the
        container ends, the connection drops quietly, nothing is printed for
        ``LOG_READ_TIMEOUT_S`` or ``handle.stop()`` is called; errors are our
        types (``NotFound`` once the pod is gone).
        """
        what = f"follow the log of pod {name}"
        query = [("container", container), ("follow", "true"), ("timestamps", "true")]
        if since:
            query.append(("sinceTime", since))
        try:
            request = self.api_client.param_serialize(
                method="GET", resource_path="/api/v1/namespaces/{namespace}/pods/{name}/log",
                path_params={"namespace": self.namespace, "name": name}, query_params=query,
                header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"])
            answer = self.api_client.call_api(*request, _request_timeout=(CONNECT_TIMEOUT_S, LOG_READ_TIMEOUT_S))
            if not 200 <= answer.status <= 299:
                answer.read()
                raise client.ApiException.from_response(http_resp=answer, body=None, data=None)
        except client.ApiException as err:
            raise api_error(what, err, self.host, self.namespace) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _connection_error(what, err, self.host) from err
        response = answer.response
        handle.attach(response)
        try:
            yield from iter_lines(response)
        except urllib3.exceptions.ReadTimeoutError:
            return
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if handle.stopped:
                return
            raise _connection_error(what + " (the stream broke)", err, self.host) from err
        finally:
            handle.detach()
            response.close()
            response.release_conn()

    def watch_jobs(self, field_selector: str, resource_version: str | None, timeout_s: float,
                   handle: WatchHandle | None = None) -> Iterator[dict]:
        """Stream watch events (plain dicts) of Jobs for up to about ``timeout_s`` seconds.

        The server is asked to end the stream after ``timeout_s``; the client
        gives up reading a little later, and this generator also stops once
        that time has passed, so a caller regains control every window even
        from a server that ignores the timeout. A watch that ends by time,
        by the server or by ``handle.stop()`` simply ends; errors are our types.
        """
        what = "watch Jobs"
        window = max(1, round(timeout_s))
        deadline = time.monotonic() + timeout_s
        kwargs: dict[str, Any] = {"field_selector": field_selector, "watch": True,
                                  "timeout_seconds": window, "allow_watch_bookmarks": True}
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            response = self.batch.list_namespaced_job(
                self.namespace, _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, timeout_s + min(2.0, timeout_s)), **kwargs)
        except client.ApiException as err:
            raise api_error(what, err, self.host, self.namespace) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _connection_error(what, err, self.host) from err
        if handle is not None:
            handle.attach(response)
        try:
            for line in iter_lines(response):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    log.warning("%s: skipped a line that is not JSON: %.200s", what, line)
                    continue
                if event.get("type") == "ERROR":
                    raise _watch_error(what, event.get("object") or {}, self.host)
                yield event
                if time.monotonic() > deadline or (handle is not None and handle.stopped):
                    return
        except urllib3.exceptions.ReadTimeoutError:
            return  # the client-side timeout: nothing happened in the window
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if handle is not None and handle.stopped:
                return
            raise _connection_error(what + " (the stream broke)", err, self.host) from err
        finally:
            if handle is not None:
                handle.detach()
            response.close()
            response.release_conn()


def _watch_error(what: str, status: dict, host: str) -> KubeError:
    code = int(status.get("code") or 500)
    message = str(status.get("message") or status.get("reason") or "")
    if code == 410:
        return Gone(f"{what}: {message} (410 Gone)", code, str(status.get("reason") or "Expired"))
    error = KubeError(f"{what}: the server ended the watch with {code}: {message}", code,
                      str(status.get("reason") or ""))
    return error


def iter_lines(response: Any) -> Iterator[str]:
    """A streamed answer's complete lines as they arrive, in time linear in its length.

    The client's own ``iter_resp_lines`` copies the rest of its buffer for
    every line, which takes seconds when a followed log arrives as one large
    chunk (a reconnect to a long log, an 18 MB log seen at once).
    """
    pending = b""
    for segment in response.stream(amt=None, decode_content=False):
        if isinstance(segment, str):
            segment = segment.encode("utf-8")
        parts = (pending + segment).split(b"\n") if pending else segment.split(b"\n")
        pending = parts.pop()
        for part in parts:
            yield part.decode("utf-8", errors="replace")


def warning_texts(headers: Any) -> list[str]:
    """The texts of an answer's ``Warning: 299 - "text"`` headers (RFC 7234 form, as the API server sends)."""
    try:
        values = headers.getlist("Warning") if hasattr(headers, "getlist") else [headers.get("Warning")]
    except (AttributeError, TypeError):
        return []
    texts = []
    for value in values:
        if not value:
            continue
        found = re.match(r'^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"', value)
        texts.append(found.group(1).replace('\\"', '"') if found else value.strip())
    return texts


def _decode(data: bytes, content_type: str) -> Any:
    if not data:
        return {}
    text = data.decode("utf-8", errors="replace")
    if "json" in content_type.lower() or (not content_type and text[:1] in "{["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _retry_after(err: client.ApiException) -> float | None:
    try:
        value = (err.headers or {}).get("Retry-After")
        return min(30.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _first_pydantic_error(err: pydantic.ValidationError) -> str:
    errors = err.errors()
    if not errors:
        return str(err)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg')}"
