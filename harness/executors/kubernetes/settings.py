"""The Kubernetes executor's settings: every option's value, typed and checked, in one object.

Built once from the plugin's (or ``kbench``'s) parsed options; values that
arrive as raw strings (a caller that skipped argparse) are parsed here with
the same parsers (``options``). A bad value is a ``ConfigError`` that names the
option and what it accepts.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.executors.base import Option
from harness.executors.kubernetes.options import (
    DEFAULT_NAMESPACE,
    ONLY_ON,
    OPTIONS,
    TTL_MARGIN_S,
    Toleration,
    cpu_cores,
    cpu_quantity,
    memory_quantity,
    non_root_uid,
    this_machine_architecture,
)

ARCH_LABEL = "kubernetes.io/arch"

DEFAULT_TEMPLATE = Path(__file__).parent / "job.yaml.j2"
"""Packaged with the harness; in the repository a link to k8s/job.yaml.j2, where it is edited."""


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
    node_selector: tuple[tuple[str, str], ...]
    """Node labels every pod requires (``--k8s-node-selector``)."""
    tolerations: tuple[Toleration, ...]
    """Taints every pod tolerates, as given (``--k8s-toleration``); see ``pod_tolerations``."""
    architectures: tuple[str, ...] | None
    """The images' architectures (``--k8s-arch``); None: this machine's; (): any."""
    image_pull_secrets: tuple[str, ...]
    uid: int
    gid: int
    schedule_timeout_s: float
    capacity_wait_s: float
    """How long a pod may wait for room (unschedulable for lack of resources, or a used-up quota)."""
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

    @property
    def image_architectures(self) -> tuple[str, ...]:
        """What ``--k8s-arch`` says the images were built for; by default this machine's (none when unknown: any)."""
        if self.architectures is not None:
            return self.architectures
        machine = this_machine_architecture()
        return (machine,) if machine else ()

    def architectures_for(self, backend: str) -> tuple[str, ...]:
        """The kubernetes.io/arch values a backend's node must have (none: any node).

        The images' architectures (``docker build`` builds for the machine it
        runs on), narrowed to where the backend exists at all (cntk: amd64). A
        ``--k8s-node-selector`` that names the architecture itself replaces both.
        """
        if any(key == ARCH_LABEL for key, _ in self.node_selector):
            return ()
        only = ONLY_ON.get(backend)
        if only is None:
            return self.image_architectures
        if not self.image_architectures:
            return only
        return tuple(a for a in self.image_architectures if a in only)

    def architecture_problem(self, backend: str) -> str | None:
        """Why a backend cannot run on the images' architectures, or None."""
        if backend in ONLY_ON and self.image_architectures and not self.architectures_for(backend):
            return (f"{backend} exists for {', '.join(ONLY_ON[backend])} only (CNTK 2.7 publishes x86_64 wheels and "
                    f"nothing else) and the images are built for {', '.join(self.image_architectures)} (--k8s-arch); "
                    "build the legacy image for amd64 and pass --k8s-arch with amd64 to run it")
        return None

    @property
    def pod_tolerations(self) -> tuple[Toleration, ...]:
        """The given tolerations, and with GPUs the GPU resource's own taint (GPU node pools carry it)."""
        found = list(self.tolerations)
        if self.gpus > 0 and not any(t.key == self.gpu_resource for t in found):
            found.append(Toleration(self.gpu_resource, None, "NoSchedule"))
        return tuple(found)

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
            node_selector=tuple(values["k8s_node_selector"] or ()),
            tolerations=tuple(values["k8s_toleration"] or ()),
            architectures=values["k8s_arch"],
            image_pull_secrets=tuple(values["k8s_image_pull_secret"] or ()),
            uid=int(values["k8s_uid"]),
            gid=int(values["k8s_gid"]),
            schedule_timeout_s=float(values["k8s_schedule_timeout"]),
            capacity_wait_s=float(values["k8s_capacity_wait"]),
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
