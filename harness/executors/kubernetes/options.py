"""The Kubernetes executor's command-line options and their parsers: light, so declaring them costs nothing.

The pytest plugin and ``kbench`` register these options at start-up, whichever
executor runs; this module therefore imports only the standard library and
the harness's ``Option`` and errors, never the ``kubernetes`` client, jinja2 or
yaml (``tests/test_k8s_manifests.py`` checks it in a fresh interpreter). Each
parser raises ``argparse.ArgumentTypeError`` saying what it accepts, so it
serves argparse and pytest alike; ``settings.K8sSettings`` turns the parsed
values into one typed object.
"""
from __future__ import annotations

import argparse
import math
import platform
import re
from dataclasses import dataclass

from harness.executors.base import Option

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
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
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


def _items(text: str) -> list[str]:
    return [item.strip() for item in str(text).split(",") if item.strip()]


def node_selector(text: str) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE[,KEY=VALUE...]``: node labels every job's pod requires (its ``nodeSelector``)."""
    pairs = []
    for item in _items(text):
        key, equals, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a node label; use KEY=VALUE, e.g. cloud.google.com/gke-accelerator=nvidia-l4 "
                "or pool=gpu (several separated by commas)")
        pairs.append((key, value))
    return tuple(pairs)


TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class Toleration:
    """A taint the jobs' pods tolerate: ``key`` (with ``value``, or any value when None) and ``effect`` (any when None)."""

    key: str
    value: str | None = None
    effect: str | None = None

    def manifest(self) -> dict[str, str]:
        entry = {"key": self.key, "operator": "Exists" if self.value is None else "Equal"}
        if self.value is not None:
            entry["value"] = self.value
        if self.effect:
            entry["effect"] = self.effect
        return entry

    def __str__(self) -> str:
        return self.key + (f"={self.value}" if self.value is not None else "") + (f":{self.effect}" if self.effect else "")


def tolerations(text: str) -> tuple[Toleration, ...]:
    """``KEY[=VALUE][:EFFECT][,...]``, as ``kubectl taint`` writes taints: the taints every job's pod tolerates."""
    found = []
    for item in _items(text):
        rest, colon, effect = item.rpartition(":") if ":" in item else (item, "", "")
        key, equals, value = rest.partition("=")
        effect_ok = not colon or effect in TAINT_EFFECTS
        if not _LABEL_KEY.match(key.strip()) or not effect_ok or (equals and not _LABEL_VALUE.match(value.strip())):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a toleration; use KEY[=VALUE][:EFFECT] as kubectl taint writes it, e.g. "
                f"nvidia.com/gpu:NoSchedule or dedicated=ml:NoSchedule (effect: {', '.join(TAINT_EFFECTS)})")
        found.append(Toleration(key.strip(), value.strip() if equals else None, effect or None))
    return tuple(found)


def secret_names(text: str) -> tuple[str, ...]:
    """``NAME[,NAME]``: Secrets of type kubernetes.io/dockerconfigjson in the namespace (imagePullSecrets)."""
    names = tuple(_items(text))
    for name in names:
        if not _DNS_SUBDOMAIN.match(name):
            raise argparse.ArgumentTypeError(f"{name!r} is not a Secret name; use lowercase letters, digits, '-' "
                                             "and '.' (kubectl -n NAMESPACE get secrets lists them)")
    return names


ARCHITECTURES = ("amd64", "arm64", "ppc64le", "s390x", "arm")
"""Values of the kubernetes.io/arch node label (Go's GOARCH names)."""
_MACHINE_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le",
                 "s390x": "s390x", "armv7l": "arm", "armv6l": "arm"}
ONLY_ON = {"cntk": ("amd64",)}
"""Backends that exist for some architectures only: CNTK 2.7 publishes x86_64 wheels and nothing else, so the
legacy image built for arm64 holds Theano alone."""


def this_machine_architecture() -> str | None:
    """This machine's CPU as a kubernetes.io/arch value: what ``docker build`` builds for by default."""
    return _MACHINE_ARCH.get(platform.machine().lower())


def architectures(text: str) -> tuple[str, ...]:
    """``ARCH[,ARCH]`` (amd64, arm64...) or ``any``: the CPU architectures the Keras 3 image was built for."""
    names = tuple(item.lower() for item in _items(text))
    if names == ("any",):
        return ()
    wrong = [name for name in names if name not in ARCHITECTURES]
    if wrong or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of architectures; use kubernetes.io/arch values ({', '.join(ARCHITECTURES)}), "
            "several separated by commas for a multi-arch image, or any")
    return names


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
    Option("--k8s-node-selector", "node labels the jobs' pods require, KEY=VALUE[,KEY=VALUE], e.g. a GPU node "
           "pool's label (default: none)", None, node_selector, "KEY=VALUE"),
    Option("--k8s-toleration", "taints the jobs' pods tolerate, KEY[=VALUE][:EFFECT][,...] as kubectl taint writes "
           "them, e.g. a GPU node pool's taint; with --k8s-gpus, <gpu resource>:NoSchedule is tolerated anyway "
           "(default: none)", None, tolerations, "TAINT"),
    Option("--k8s-arch", "CPU architectures the images were built for, as the nodes' kubernetes.io/arch label "
           "says them (amd64, arm64; several for multi-arch images; any: no constraint); the jobs run only on such "
           "nodes, and cntk only on amd64 (CNTK 2.7 exists for x86_64 only) (default: this machine's, which docker "
           "build builds for)", None, architectures, "ARCH"),
    Option("--k8s-image-pull-secret", "Secrets (kubernetes.io/dockerconfigjson) in the namespace that hold the "
           "registry's credentials, NAME[,NAME], for a private registry (default: none)", None, secret_names,
           "NAME"),
    Option("--k8s-uid", "user id the job runs as, never 0 (root); the NFS export must let it write "
           "(default: 1000)", 1000, non_root_uid, "UID"),
    Option("--k8s-gid", "group id the job runs as (default: 1000)", 1000, non_negative_int, "GID"),
    Option("--k8s-schedule-timeout", "fail a job whose pod no node can take (its selector, arch or taints match "
           "none) after this many seconds; also the time allowed for pulling images (default: 300)", 300.0,
           positive_seconds, "SECONDS"),
    Option("--k8s-capacity-wait", "how long a job may wait for room: a pod unschedulable for lack of CPU, memory "
           "or GPUs, or refused by a used-up quota, while other work (or a scaling node pool) frees it (default: "
           "1800)", 1800.0, positive_seconds, "SECONDS"),
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
