"""The Kubernetes executor's settings: its command-line options, typed and checked.

Imported by the pytest plugin at start-up (to read the options), so it must not
import the ``kubernetes`` client. Every value is parsed once, here; a bad value
is a ``ConfigError`` that names the option and what it accepts.
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.executors.base import Option

DEFAULT_TEMPLATE = Path(__file__).parent / "job.yaml.j2"
"""Packaged with the harness; in the repository a link to k8s/job.yaml.j2, where it is edited."""

DEFAULT_NAMESPACE = "kbench"
DEFAULT_IMAGE = "kbench-keras3:0.1.0"
DEFAULT_LEGACY_IMAGE = "kbench-keras2:0.1.0"
DEFAULT_PVC = "kbench-shared"
DEFAULT_MOUNT_PATH = "/shared"
PULL_POLICIES = ("IfNotPresent", "Always", "Never")

_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_RESOURCE_NAME = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


# -- parsers for Option.parse: each raises ArgumentTypeError with what is accepted ------------
def cpu_quantity(text: str) -> str:
    text = str(text).strip()
    if not _CPU.match(text) or cpu_cores(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPU quantity; use cores (2, 1.5) or millicores (500m)")
    return text


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_quantity(text: str) -> str:
    text = str(text).strip()
    if not _MEMORY.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory quantity; use e.g. 4Gi, 512Mi or 4G")
    return text


def dns_label(text: str) -> str:
    text = str(text).strip()
    if not _DNS_LABEL.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Kubernetes name; use up to 63 lowercase letters, digits and '-'")
    return text


def dns_subdomain(text: str) -> str:
    text = str(text).strip()
    if not _DNS_SUBDOMAIN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Kubernetes object name; use lowercase letters, digits, '-' and '.'")
    return text


def resource_name(text: str) -> str:
    text = str(text).strip()
    if not _RESOURCE_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an extended resource name such as nvidia.com/gpu")
    return text


def pull_policy(text: str) -> str:
    for policy in PULL_POLICIES:
        if str(text).strip().lower() == policy.lower():
            return policy
    raise argparse.ArgumentTypeError(f"{text!r} is not a pull policy; choose from {', '.join(PULL_POLICIES)}")


def absolute_path(text: str) -> str:
    text = str(text).strip()
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an absolute path inside the container")
    return text.rstrip("/") or "/"


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use 0 or more")
    return value


def non_root_uid(text: str) -> int:
    """A user id for ``runAsUser``: never 0, which ``runAsNonRoot: true`` and Pod Security "restricted" refuse."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(
            "0 is root, and the pods must run as non-root (runAsNonRoot: true, Pod Security \"restricted\"): the "
            "kubelet would refuse to start them; pass the non-root uid that owns the shared folder (as root, "
            "`$(id -u)` is 0: use `$(stat -c %u /tmp/kbench-shared)` or 1000)")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def image_reference(text: str) -> str:
    text = str(text).strip()
    if not text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an image reference such as registry/kbench-keras3:0.1.0")
    return text


TTL_MARGIN_S = 60.0
"""Beyond --k8s-result-wait, the time the harness may need after a Job ends to list its pods and read their logs."""

OPTIONS: tuple[Option, ...] = (
    Option("--k8s-kubeconfig", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config; inside a pod, "
           "the in-cluster service account)", None, str, "FILE"),
    Option("--k8s-context", "kubeconfig context to use (default: the current context)", None, str, "NAME"),
    Option("--k8s-namespace", f"namespace the Jobs run in (default: {DEFAULT_NAMESPACE})",
           DEFAULT_NAMESPACE, dns_label, "NAME"),
    Option("--k8s-image", f"image for the Keras 3 backends: tensorflow, jax, torch (default: {DEFAULT_IMAGE})",
           DEFAULT_IMAGE, image_reference, "IMAGE"),
    Option("--k8s-legacy-image", "image for the Keras 2.3.1 backends: theano, cntk "
           f"(default: {DEFAULT_LEGACY_IMAGE})", DEFAULT_LEGACY_IMAGE, image_reference, "IMAGE"),
    Option("--k8s-pull-policy", "imagePullPolicy of the job containers: IfNotPresent, Always or Never "
           "(default: IfNotPresent)", "IfNotPresent", pull_policy, "POLICY"),
    Option("--k8s-pvc", f"ReadWriteMany PersistentVolumeClaim holding the shared folder that --shared-dir "
           f"shows on this machine (default: {DEFAULT_PVC})", DEFAULT_PVC, dns_subdomain, "NAME"),
    Option("--k8s-mount-path", f"where the shared volume is mounted in the container (default: "
           f"{DEFAULT_MOUNT_PATH})", DEFAULT_MOUNT_PATH, absolute_path, "PATH"),
    Option("--k8s-cpu", "CPU request and limit per job; also sets the threads per job (default: 2)",
           "2", cpu_quantity, "CPUS"),
    Option("--k8s-memory", "memory request and limit per job (default: 4Gi)", "4Gi", memory_quantity, "QTY"),
    Option("--k8s-gpus", "GPUs per job (default: 0)", 0, non_negative_int, "N"),
    Option("--k8s-gpu-resource", "extended resource that counts GPUs (default: nvidia.com/gpu)",
           "nvidia.com/gpu", resource_name, "NAME"),
    Option("--k8s-uid", "user id the job runs as, never 0 (root); the NFS export must let it write "
           "(default: 1000)", 1000, non_root_uid, "UID"),
    Option("--k8s-gid", "group id the job runs as (default: 1000)", 1000, non_negative_int, "GID"),
    Option("--k8s-schedule-timeout", "fail a job whose pod is still unschedulable after this many seconds; "
           "also the time allowed for pulling images (default: 300)", 300.0, positive_seconds, "SECONDS"),
    Option("--k8s-start-grace", "fail a job whose pod stays in ImagePullBackOff, or whose warning event "
           "(FailedMount, FailedCreate) persists, this many seconds; an image that does not exist fails at once "
           "(default: 120)", 120.0, positive_seconds, "SECONDS"),
    Option("--k8s-backoff-limit", "retries of a failed pod before the Job fails (default: 1)",
           1, non_negative_int, "N"),
    Option("--k8s-ttl", "seconds a finished Job is kept before Kubernetes deletes it with its pods; a "
           "backstop for Jobs a killed harness left behind, at least --k8s-result-wait + "
           f"{TTL_MARGIN_S:.0f} (default: 86400)", 86400, non_negative_int, "SECONDS"),
    Option("--k8s-template", "jinja2 template of the Job manifest (default: k8s/job.yaml.j2)",
           None, str, "FILE"),
    Option("--k8s-poll-interval", "seconds between checks of a running job's pods and progress "
           "(default: 3)", 3.0, positive_seconds, "SECONDS"),
    Option("--k8s-result-wait", "seconds to wait for a finished job's result file to show up in "
           "--shared-dir (NFS attribute caching; default: 60)", 60.0, positive_seconds, "SECONDS"),
    Option("--emit-manifests", "write the Job manifests that would be submitted to this folder and "
           "submit nothing (no cluster needed)", None, str, "DIR"),
)


@dataclass(frozen=True)
class K8sSettings:
    """Everything the Kubernetes executor was told, one typed field per option."""

    kubeconfig: str | None
    context: str | None
    namespace: str
    image: str
    """Image for Keras 3 backends."""
    legacy_image: str
    """Image for Keras 2.3.1 backends (Python 3.6, Theano, CNTK)."""
    pull_policy: str
    pvc: str
    mount_path: str
    """Where the PVC is mounted inside the container: the workload's ``--shared``."""
    cpu: str
    memory: str
    gpus: int
    gpu_resource: str
    uid: int
    gid: int
    schedule_timeout_s: float
    start_grace_s: float
    """How long a pod may back off pulling its image, or a mount or pod-creation warning last."""
    backoff_limit: int
    ttl_s: int
    template: Path
    poll_s: float
    result_wait_s: float
    emit_dir: Path | None
    """Set: write manifests there instead of submitting."""

    @property
    def cpu_cores(self) -> float:
        return cpu_cores(self.cpu)

    @property
    def threads(self) -> int:
        """Whole CPU threads a job may use: its CPU limit, at least 1."""
        return max(1, math.floor(self.cpu_cores))

    def image_for(self, keras_line: str) -> str:
        return self.image if keras_line == "3" else self.legacy_image

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> K8sSettings:
        """Build from the plugin's ``settings`` dict (keys = ``Option.dest``).

        Values the plugin already parsed pass through; raw strings (a caller
        that skipped argparse) are parsed here the same way.
        """
        values: dict[str, Any] = {}
        for option in OPTIONS:
            value = settings.get(option.dest, option.default)
            if isinstance(value, str) and value != "" and option.parse is not str:
                value = _parse(option, value)
            elif value is not None and not isinstance(value, str) and option.parse in (cpu_quantity, memory_quantity,
                                                                                      non_root_uid):
                value = _parse(option, str(value))
            values[option.dest] = None if value == "" else value
        template = values["k8s_template"]
        emit = values["emit_manifests"]
        needed = math.ceil(float(values["k8s_result_wait"]) + TTL_MARGIN_S)
        if int(values["k8s_ttl"]) < needed:
            raise ConfigError(
                f"--k8s-ttl: {values['k8s_ttl']} s is too short: Kubernetes would delete a finished Job and its "
                f"pods before the harness has read their logs and result ({needed} s: --k8s-result-wait "
                f"{float(values['k8s_result_wait']):.0f} + {TTL_MARGIN_S:.0f}); use {needed} or more")
        return cls(
            kubeconfig=values["k8s_kubeconfig"],
            context=values["k8s_context"],
            namespace=values["k8s_namespace"] or DEFAULT_NAMESPACE,
            image=values["k8s_image"],
            legacy_image=values["k8s_legacy_image"],
            pull_policy=values["k8s_pull_policy"],
            pvc=values["k8s_pvc"],
            mount_path=values["k8s_mount_path"],
            cpu=values["k8s_cpu"],
            memory=values["k8s_memory"],
            gpus=int(values["k8s_gpus"]),
            gpu_resource=values["k8s_gpu_resource"],
            uid=int(values["k8s_uid"]),
            gid=int(values["k8s_gid"]),
            schedule_timeout_s=float(values["k8s_schedule_timeout"]),
            start_grace_s=float(values["k8s_start_grace"]),
            backoff_limit=int(values["k8s_backoff_limit"]),
            ttl_s=int(values["k8s_ttl"]),
            template=Path(template).expanduser().resolve() if template else DEFAULT_TEMPLATE,
            poll_s=float(values["k8s_poll_interval"]),
            result_wait_s=float(values["k8s_result_wait"]),
            emit_dir=Path(emit).expanduser().resolve() if emit else None,
        )


def _parse(option: Option, text: str) -> Any:
    parse: Callable[[str], Any] = option.parse
    try:
        return parse(text)
    except (argparse.ArgumentTypeError, ValueError) as err:
        raise ConfigError(f"{option.flag}: {err}") from None
