"""The Job manifest of one job: its name, labels and the values ``k8s/job.yaml.j2`` renders.

Users read and change the template; this module only computes the values it
needs and turns the rendered YAML into the plain manifest that is submitted
(or written out by ``--emit-manifests``). No ``kubernetes`` client here: a
manifest can be produced on a machine without a cluster.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

from harness import __version__
from harness.errors import ConfigError
from harness.executors.kubernetes.settings import K8sSettings
from harness.jobs import JobSpec

CONTAINER = "workload"
"""The container's name; the podFailurePolicy's exit-code rule names it too."""

LABEL_PREFIX = "kbench.io/"
RUN_LABEL = LABEL_PREFIX + "run-id"
BACKEND_LABEL = LABEL_PREFIX + "backend"
PHASE_LABEL = LABEL_PREFIX + "phase"
JOB_LABEL = LABEL_PREFIX + "job"
"""On the pod template, so the executor finds a Job's pods without relying on controller labels."""
SUBMISSION_ANNOTATION = LABEL_PREFIX + "submission"
"""A fresh token per create call: a create retried after a lost answer recognises its own Job."""

NO_RETRY_EXIT_CODES = (2, 3)
"""The workload's exit codes for bad usage and bad input: a retry would fail the same way."""

CONTAINER_HOME = "/tmp"
"""The root filesystem is read-only; HOME (Keras's ~/.keras, Theano's compile dir) lives on the /tmp emptyDir."""

MAX_NAME = 63
_NOT_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


def label_value(text: str) -> str:
    """``text`` as a valid label value: unchanged when it already is one, else a slug and a hash."""
    if re.fullmatch(r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?", text):
        return text
    slug = _NOT_LABEL_CHARS.sub("-", text).strip("-._")[:52].strip("-._")
    return f"{slug}-{_short_hash(text)}" if slug else _short_hash(text)


def job_name(run_id: str, backend: str, phase: str) -> str:
    """``kbench-<run>-<backend>-<phase>``: unique per run, the same in every session of that run.

    A run id too long for a 63-character name is cut and given a hash of
    the whole id, so two long run ids never share Job names.
    """
    slug = _NOT_NAME_CHARS.sub("-", run_id.lower()).strip("-")
    tail = f"-{backend}-{phase}"
    name = f"kbench-{slug}{tail}"
    if len(name) <= MAX_NAME and slug == run_id:
        return name
    room = MAX_NAME - len("kbench-") - len(tail) - 9
    return f"kbench-{slug[:room].strip('-')}-{_short_hash(run_id)}{tail}"


def run_selector(run_id: str) -> str:
    """Label selector for everything of one run (what the cleanup command deletes)."""
    return f"{RUN_LABEL}={label_value(run_id)}"


def job_selector(name: str) -> str:
    """Label selector for the pods of one Job."""
    return f"{JOB_LABEL}={name}"


CONTROLLER_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
"""What the Job controller labels its pods with: the current label (1.27+), then the legacy one."""


def pod_selectors(job_uid: str | None, name: str) -> list[str]:
    """Label selectors for the pods of exactly this Job, in the order to try.

    The Job's uid, not its name: pods of an earlier Job of the same name (left
    by kubectl's default background deletion) carry the same name labels.
    The harness's own label is the last resort when the uid is unknown.
    """
    if job_uid:
        return [f"{label}={job_uid}" for label in CONTROLLER_UID_LABELS]
    return [job_selector(name)]


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def labels(job: JobSpec, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kbench",
        "app.kubernetes.io/component": "workload",
        "app.kubernetes.io/managed-by": "kbench-harness",
        RUN_LABEL: label_value(job.run_id),
        BACKEND_LABEL: job.backend.name,
        PHASE_LABEL: job.phase,
        JOB_LABEL: name,
    }


def container_env(job: JobSpec, settings: K8sSettings) -> list[tuple[str, str]]:
    """The job's environment plus what the pod's read-only root filesystem needs."""
    env = dict(job.env)
    env.setdefault("HOME", CONTAINER_HOME)
    if settings.gpus > 0 and env.get("JAX_PLATFORMS") == "cpu":
        del env["JAX_PLATFORMS"]  # the harness pins JAX to the CPU for local runs; a GPU job should use the GPU
    return sorted(env.items())


def active_deadline_s(job: JobSpec, settings: K8sSettings) -> int:
    """The job's own timeout plus the time allowed to wait for room, to schedule the pod and to pull its image.

    A backstop: the Job controller counts it from the Job's start, however long
    the pod waited for room; the harness itself stops a pod that has run past
    the job's own timeout.
    """
    return math.ceil(job.timeout_s + settings.capacity_wait_s + settings.schedule_timeout_s)


def template_values(job: JobSpec, settings: K8sSettings, submission: str = "") -> dict[str, Any]:
    """Every value ``k8s/job.yaml.j2`` uses, for one job."""
    name = job_name(job.run_id, job.backend.name, job.phase)
    return {
        "name": name,
        "namespace": settings.namespace,
        "labels": labels(job, name),
        "annotations": {
            RUN_LABEL: job.run_id,
            LABEL_PREFIX + "harness-version": __version__,
            **({SUBMISSION_ANNOTATION: submission} if submission else {}),
        },
        "container": CONTAINER,
        "image": settings.image_for(job.backend.keras_line),
        "pull_policy": settings.pull_policy,
        "command": ["python"] + job.workload_args(settings.mount_path),
        "env": container_env(job, settings),
        "cpu": settings.cpu,
        "memory": settings.memory,
        "gpus": settings.gpus,
        "gpu_resource": settings.gpu_resource,
        "node_selector": dict(settings.node_selector),
        "architectures": list(settings.architectures_for(job.backend.name)),
        "tolerations": [t.manifest() for t in settings.pod_tolerations],
        "image_pull_secrets": list(settings.image_pull_secrets),
        "uid": settings.uid,
        "gid": settings.gid,
        "pvc": settings.pvc,
        "mount_path": settings.mount_path,
        "backoff_limit": settings.backoff_limit,
        "active_deadline_seconds": active_deadline_s(job, settings),
        "ttl_seconds": settings.ttl_s,
        "no_retry_exit_codes": list(NO_RETRY_EXIT_CODES),
        "tmp_size": "2Gi",
    }


def probe_values(job: JobSpec, settings: K8sSettings, token: str, command: list[str]) -> dict[str, Any]:
    """The write probe's values: a job's (same image, user, volume and placement), with the probe's command."""
    values = template_values(job, settings, token)
    values["command"] = list(command)
    return values


def placement(settings: K8sSettings, backend: str) -> str:
    """What each job of a backend asks of the cluster, in words: resources, nodes, tolerations, pull secrets."""
    asks = f"{settings.cpu} CPU, {settings.memory}"
    if settings.gpus:
        asks += f", {settings.gpus} {settings.gpu_resource}"
    nodes = [f"{key}={value}" for key, value in settings.node_selector]
    arches = settings.architectures_for(backend)
    if arches:
        nodes.insert(0, f"kubernetes.io/arch in ({', '.join(arches)})")
    text = asks + (f" on nodes with {', '.join(nodes)}" if nodes else " on any node")
    if settings.pod_tolerations:
        text += f", tolerating {', '.join(str(t) for t in settings.pod_tolerations)}"
    if settings.image_pull_secrets:
        text += f", pulling with Secret {', '.join(settings.image_pull_secrets)}"
    return text


class ManifestTemplate:
    """The Job template, loaded once; renders the plain manifest of a job."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            source = self.path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read the Job template {self.path} ({err.strerror}); pass --k8s-template "
                              "with the path of k8s/job.yaml.j2 from the harness's repository") from None
        environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                         autoescape=False)
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateSyntaxError as err:
            raise ConfigError(f"the Job template {self.path} has a syntax error at line {err.lineno}: "
                              f"{err.message}; fix it or pass --k8s-template") from None

    def render_text(self, values: Mapping[str, Any]) -> str:
        try:
            return self._template.render(**values)
        except jinja2.TemplateError as err:
            raise ConfigError(f"the Job template {self.path} failed to render: {err}; fix it or pass "
                              "--k8s-template") from None

    def render(self, values: Mapping[str, Any]) -> dict[str, Any]:
        text = self.render_text(values)
        try:
            manifest = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"the Job template {self.path} does not render valid YAML ({err}); fix it or "
                              "pass --k8s-template") from None
        if not isinstance(manifest, dict) or manifest.get("kind") != "Job":
            raise ConfigError(f"the Job template {self.path} must render one batch/v1 Job; fix it or pass "
                              "--k8s-template")
        return manifest

    def job_manifest(self, job: JobSpec, settings: K8sSettings, submission: str = "") -> dict[str, Any]:
        return self.render(template_values(job, settings, submission))


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> Path:
    """Write one manifest as ``<folder>/<job name>.yaml`` (``--emit-manifests``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{manifest['metadata']['name']}.yaml"
    text = yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
