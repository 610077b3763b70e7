"""The Kubernetes executor's own errors: what went wrong with a request, and what to do about it.

Every failed request becomes one of these types (``client`` maps the
``kubernetes`` client's exceptions onto them, chained with ``from``), so the
rest of the executor catches our types and never imports the client. The
message of each names the fix.
"""
from __future__ import annotations

from harness.errors import ExecutorError
from harness.executors.kubernetes import admission

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers that can heal by themselves: retried, and waited out by a watch."""


class KubeError(ExecutorError):
    """A request to the Kubernetes API failed; ``str()`` says why and what to do."""

    def __init__(self, message: str, status: int | None = None, reason: str = "", api_message: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.api_message = api_message
        """The API server's own words (its Status message), without ours around them."""


class ClusterUnreachable(KubeError):
    """No answer from the API server (refused, timed out, dropped, TLS failure)."""


class Forbidden(KubeError):
    """401 or 403: the credentials are wrong or lack a permission, or admission refused the request."""

    refusal: admission.Refusal | None = None
    """For a 403: who refused (RBAC or an admission plugin or policy) and the fix."""


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class AlreadyExists(KubeError):
    """409 on create: an object of that name exists."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; list again and watch from there."""


class Rejected(KubeError):
    """400 or 422, or the client's own validation: the request itself is wrong."""


def error_for(what: str, status: int, reason: str, message: str, host: str, namespace: str = "NAMESPACE") -> KubeError:
    """Our error type for an HTTP error answer (``status``, the Status's ``reason`` and ``message``), naming the fix.

    A 403 names who refused (RBAC, or which admission plugin or policy) and
    that one's fix: only RBAC's is "grant the Role".
    """
    detail = f"{what}: {message}" if message else what
    error: KubeError
    if status == 401:
        error = Forbidden(f"{detail} (401 Unauthorized at {host}); your credentials were refused: refresh them "
                          "or check --k8s-context / --k8s-kubeconfig", status, reason)
    elif status == 403:
        refusal = admission.read(message, namespace)
        error = Forbidden(f"{detail} (403 Forbidden by {refusal.source}); {refusal.hint}", status, reason)
        error.refusal = refusal
    elif status == 404:
        error = NotFound(f"{detail} (404 Not Found)", status, reason)
    elif status == 409:
        error = AlreadyExists(f"{detail} (409 Conflict)", status, reason)
    elif status == 410:
        error = Gone(f"{detail} (410 Gone)", status, reason)
    elif status in (400, 422):
        error = Rejected(f"{detail} ({status} {reason or 'Invalid'}); fix the Job template "
                         "(--k8s-template) or the option that fed it", status, reason)
    else:
        error = KubeError(f"{detail} ({status} {reason}) from the Kubernetes API at {host}", status, reason)
    error.api_message = message
    return error
