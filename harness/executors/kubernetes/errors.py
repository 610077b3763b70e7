"""The Kubernetes executor's own errors: what went wrong with a request, and what to do about it.

Every failed request becomes one of these types (``client`` maps the
``kubernetes`` client's exceptions onto them, chained with ``from``), so the
rest of the executor catches our types and never imports the client. The
message of each names the fix.
"""
from __future__ import annotations

from harness.errors import ExecutorError

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers that can heal by themselves: retried, and waited out by a watch."""


class KubeError(ExecutorError):
    """A request to the Kubernetes API failed; ``str()`` says why and what to do."""

    def __init__(self, message: str, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


class ClusterUnreachable(KubeError):
    """No answer from the API server (refused, timed out, dropped, TLS failure)."""


class Forbidden(KubeError):
    """401 or 403: the credentials are wrong or lack a permission."""


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class AlreadyExists(KubeError):
    """409 on create: an object of that name exists."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; list again and watch from there."""


class Rejected(KubeError):
    """400 or 422, or the client's own validation: the request itself is wrong."""


def error_for(what: str, status: int, reason: str, message: str, host: str) -> KubeError:
    """Our error type for an HTTP error answer (``status``, the Status's ``reason`` and ``message``), naming the fix."""
    detail = f"{what}: {message}" if message else what
    if status == 401:
        return Forbidden(f"{detail} (401 Unauthorized at {host}); your credentials were refused: refresh them "
                         "or check --k8s-context / --k8s-kubeconfig", status, reason)
    if status == 403:
        return Forbidden(f"{detail} (403 Forbidden); grant the harness's user the Role in k8s/base/role.yaml "
                         "(kubectl apply -k k8s/nfs) or ask your cluster admin", status, reason)
    if status == 404:
        return NotFound(f"{detail} (404 Not Found)", status, reason)
    if status == 409:
        return AlreadyExists(f"{detail} (409 Conflict)", status, reason)
    if status == 410:
        return Gone(f"{detail} (410 Gone)", status, reason)
    if status in (400, 422):
        return Rejected(f"{detail} ({status} {reason or 'Invalid'}); fix the Job template "
                        "(--k8s-template) or the option that fed it", status, reason)
    return KubeError(f"{detail} ({status} {reason}) from the Kubernetes API at {host}", status, reason)
