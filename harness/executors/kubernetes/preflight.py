"""Checks before anything is submitted: is the cluster there, and may we do our work in it?

Each check fails within seconds with a message that names the fix: an
unreachable API server, a missing namespace, a permission the harness lacks
(asked with SelfSubjectAccessReview, which every authenticated user may
create), a missing PersistentVolumeClaim. A server-side dry run of a real Job,
and of a Pod built from its template (Pod Security admission enforces on pods
only), then lets the API server and its admission (Pod Security "restricted",
quotas, policies) judge the manifest without creating anything.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.errors import ExecutorError
from harness.executors.kubernetes import admission, status
from harness.executors.kubernetes.errors import Forbidden, KubeError, NotFound, Rejected
from harness.executors.kubernetes.settings import K8sSettings

if TYPE_CHECKING:
    from harness.executors.kubernetes.client import KubeApi

log = logging.getLogger("harness.executors.kubernetes")

OLDEST_SUPPORTED = (1, 27)

PERMISSIONS: tuple[tuple[str, str, str, str], ...] = (
    # (verb, resource, group, subresource): what the executor does, nothing more (k8s/base/role.yaml)
    ("create", "jobs", "batch", ""),
    ("get", "jobs", "batch", ""),
    ("list", "jobs", "batch", ""),
    ("watch", "jobs", "batch", ""),
    ("delete", "jobs", "batch", ""),
    ("list", "pods", "", ""),
    ("list", "events", "", ""),
    ("get", "pods", "", "log"),
)


def preflight(api: KubeApi, settings: K8sSettings, say: Callable[[str], None]) -> dict:
    """Raise ``ExecutorError`` if jobs cannot run; return the server's version info."""
    version = api.server_version()
    _check_version(version, say)
    _check_namespace(api)
    _check_permissions(api)
    _check_pvc(api, settings, say)
    return version


def _check_version(version: dict, say: Callable[[str], None]) -> None:
    major = _number(version.get("major"))
    minor = _number(version.get("minor"))
    if major is None or minor is None:
        return
    if (major, minor) < OLDEST_SUPPORTED:
        say(f"warning: the cluster runs Kubernetes {major}.{minor}; the harness's Jobs need "
            f"{OLDEST_SUPPORTED[0]}.{OLDEST_SUPPORTED[1]} or newer (podFailurePolicy, DisruptionTarget)")


def _number(text: object) -> int | None:
    found = re.match(r"\d+", str(text or ""))
    return int(found.group()) if found else None


def _check_namespace(api: KubeApi) -> None:
    try:
        api.read_namespace()
    except NotFound:
        raise ExecutorError(f"namespace {api.namespace} does not exist; create it with `kubectl apply -k k8s/nfs` "
                            "(or k8s/local on a laptop cluster), or pass --k8s-namespace") from None
    except Forbidden:
        log.info("may not read namespace %s; its existence is checked through the PVC instead", api.namespace)


def _check_permissions(api: KubeApi) -> None:
    try:
        denied = [p for p in PERMISSIONS if not api.can_i(*p)]
    except Forbidden:
        log.info("SelfSubjectAccessReview is not allowed; permissions will show when jobs are created")
        return
    if denied:
        what = ", ".join(f"{verb} {resource + ('/' + sub if sub else '')}" for verb, resource, _, sub in denied)
        raise ExecutorError(f"forbidden: the harness may not {what} in namespace {api.namespace}; bind the Role "
                            "in k8s/base/role.yaml to your user (see docs/kubernetes.md) or ask your cluster admin")


def _check_pvc(api: KubeApi, settings: K8sSettings, say: Callable[[str], None]) -> None:
    try:
        claim = api.read_pvc(settings.pvc)
    except NotFound:
        raise ExecutorError(f"PersistentVolumeClaim {settings.pvc} does not exist in namespace {api.namespace}; "
                            "create it with `kubectl apply -k k8s/nfs` (see docs/kubernetes.md) or pass --k8s-pvc")
    except Forbidden:
        log.info("may not read PersistentVolumeClaim %s; a missing claim will show as an unschedulable pod",
                 settings.pvc)
        return
    modes = (claim.get("spec") or {}).get("accessModes") or []
    if "ReadWriteMany" not in modes:
        say(f"warning: PersistentVolumeClaim {settings.pvc} is {', '.join(modes) or 'without access modes'}, "
            "not ReadWriteMany; jobs on different nodes cannot share it")
    phase = (claim.get("status") or {}).get("phase")
    if phase and phase != "Bound":
        say(f"warning: PersistentVolumeClaim {settings.pvc} is {phase}, not Bound; pods wait until it binds")


def pod_from_template(job: dict) -> dict:
    """The Pod the Job controller would create from a Job's template (for a dry run)."""
    template = (job.get("spec") or {}).get("template") or {}
    metadata = dict(template.get("metadata") or {})
    metadata.update(name=f"{job['metadata']['name'][:50]}-preflight", namespace=job["metadata"].get("namespace"))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template.get("spec") or {}}


def dry_run(api: KubeApi, manifest: dict, say: Callable[[str], None] = log.info) -> None:
    """Let the API server validate and admit a Job, and a Pod from its template, without creating either.

    Pod Security admission enforces on pods, not Jobs: a Job whose template
    breaks the namespace's standard is accepted (with at most a warning) and
    its pods then fail to be created. So the pod itself is dry-run too; where
    the harness may not create pods (RBAC), the Job's warnings are said instead.

    Every refusal by admission (Pod Security, a LimitRange, a quota one job can
    never fit in, a policy webhook such as Gatekeeper or Kyverno, OpenShift's
    SCCs) is an ``ExecutorError`` naming who refused, its message and the fix,
    before any Job exists. A quota that one job fits in but other work has used
    up is said in one line: the jobs wait for room.
    """
    name = manifest["metadata"]["name"]
    warnings: list[str] = []
    try:
        warnings = api.dry_run_job(manifest)
    except NotFound as err:
        raise ExecutorError(f"{err}; check --k8s-namespace") from None
    except Forbidden as err:
        if not _waits_for_room(err, f"Job {name}", say):
            if err.refusal is None or err.refusal.rbac:
                raise
            raise _refused(f"Job {name}", err, api.namespace) from None
    try:
        api.dry_run_pod(pod_from_template(manifest))
    except (Forbidden, Rejected) as err:
        if not err.api_message:  # the client's own validation: the template is wrong, as the error says
            raise
        if _waits_for_room(err, f"the pods of Job {name}", say):
            return
        if isinstance(err, Forbidden) and err.refusal is not None and err.refusal.rbac:
            log.info("may not dry-run a pod (%s); relying on the Job's admission warnings", err)
            for text in warnings:
                say(f"warning: the API server says the pods of Job {name} {text}; they may be refused (FailedCreate)")
            return
        raise _refused(f"the pods of Job {name}", err, api.namespace) from None


def _waits_for_room(err: KubeError, what: str, say: Callable[[str], None]) -> bool:
    refusal = admission.read(err.api_message or str(err))
    if not refusal.quota_used_up:
        return False
    say(f"note: {what} would wait for room now: {status.one_line(err.api_message or str(err), 300)}; the jobs wait "
        "for it up to --k8s-capacity-wait, fewer at once with --parallel")
    return True


def _refused(what: str, err: KubeError, namespace: str) -> ExecutorError:
    """One line: who refused (which admission plugin or policy), in its own words, and the fix."""
    message = status.one_line(err.api_message or str(err), 400)
    refusal = admission.read(message, namespace)
    code = f"{err.status} " if err.status else ""
    return ExecutorError(f"{what} would be refused by {refusal.source} ({code}on a dry run, before any Job was "
                         f"created): {message}; {refusal.hint}")
