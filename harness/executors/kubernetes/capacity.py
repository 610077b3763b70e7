"""How many of the run's Jobs fit in the cluster at once: its namespace's ResourceQuotas and its nodes.

Submitting every Job at once into a cluster that has room for two makes the
rest wait as unschedulable pods, or be refused by a quota, which looks like
failure. So before the first Job the executor reads the namespace's
ResourceQuotas (what is left: ``hard`` minus ``used``) and, where it may, the
nodes' allocatable resources, and submits no more Jobs at once than fit.

The node count is an upper bound: it counts each schedulable node's
allocatable room as if it were empty (other pods' requests are not read, which
would need every pod in the cluster), and leaves out nodes whose taints the
pods do not tolerate or whose labels their selector and architecture do not
match. Pure arithmetic over the plain JSON the API returns.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.executors.kubernetes.options import Toleration

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(text: object) -> float | None:
    """A Kubernetes quantity (``2``, ``500m``, ``4Gi``, ``1e3``) as a number, or None when it is not one."""
    found = _QUANTITY.match(str(text).strip())
    if not found or found.group(2) not in _SUFFIX:
        return None
    try:
        return float(found.group(1)) * _SUFFIX[found.group(2)]
    except ValueError:
        return None


@dataclass(frozen=True)
class JobNeeds:
    """What one Job's pod asks for (requests equal limits) and where it may run."""

    cpu: float
    memory: float
    gpus: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: tuple[tuple[str, str], ...] = ()
    architectures: tuple[str, ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    def quota_amounts(self) -> dict[str, float]:
        """What one Job counts against each quota key (pods and Jobs count one each)."""
        amounts = {"pods": 1.0, "count/pods": 1.0, "count/jobs.batch": 1.0,
                   "cpu": self.cpu, "requests.cpu": self.cpu, "limits.cpu": self.cpu,
                   "memory": self.memory, "requests.memory": self.memory, "limits.memory": self.memory}
        if self.gpus:
            amounts[f"requests.{self.gpu_resource}"] = float(self.gpus)
            amounts[f"limits.{self.gpu_resource}"] = float(self.gpus)
            amounts[self.gpu_resource] = float(self.gpus)
        return amounts

    def node_amounts(self) -> dict[str, float]:
        amounts = {"cpu": self.cpu, "memory": self.memory, "pods": 1.0}
        if self.gpus:
            amounts[self.gpu_resource] = float(self.gpus)
        return amounts


@dataclass(frozen=True)
class Room:
    """How many Jobs fit now, and the tightest limit, in words (None: nothing limits them that could be read)."""

    jobs: int | None
    limit: str = ""


def quota_room(quotas: Sequence[Mapping], needs: JobNeeds) -> Room:
    """Jobs that fit in what the namespace's ResourceQuotas have left (``status.hard`` minus ``status.used``).

    Only quotas without a scope selector are read: a scoped quota (by priority
    class, terminating pods...) may not apply to these pods.
    """
    best: Room = Room(None)
    amounts = needs.quota_amounts()
    for quota in quotas:
        spec = quota.get("spec") or {}
        if spec.get("scopes") or spec.get("scopeSelector"):
            continue
        status = quota.get("status") or {}
        hard, used = status.get("hard") or spec.get("hard") or {}, status.get("used") or {}
        name = (quota.get("metadata") or {}).get("name") or "?"
        for key, limit in hard.items():
            need = amounts.get(key)
            total = quantity(limit)
            if not need or total is None:
                continue
            left = total - (quantity(used.get(key, 0)) or 0.0)
            fits = max(0, math.floor(left / need + 1e-9))
            if best.jobs is None or fits < best.jobs:
                best = Room(fits, f"ResourceQuota {name}: {key} {_amount(left, key)} of {limit} left, "
                                  f"{_amount(need, key)} per job")
    return best


def node_room(nodes: Sequence[Mapping], needs: JobNeeds) -> Room:
    """Jobs that fit on the nodes the pods may use, each node counted as empty (an upper bound)."""
    total = 0
    usable = 0
    amounts = needs.node_amounts()
    for node in nodes:
        if not _may_use(node, needs):
            continue
        usable += 1
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        per_node = []
        for key, need in amounts.items():
            have = quantity(allocatable.get(key, 0)) or 0.0
            per_node.append(math.floor(have / need + 1e-9))
        total += max(0, min(per_node))
    where = f"{usable} node(s) the pods may use" if usable else "no node the pods may use (selector, arch, taints)"
    return Room(total, f"{where}, room for {total} job(s) of {_amount(needs.cpu, 'cpu')} CPU, "
                       f"{_amount(needs.memory, 'memory')}" + (f", {needs.gpus} {needs.gpu_resource}"
                                                                if needs.gpus else "") + " when empty")


def tightest(*rooms: Room) -> Room:
    known = [room for room in rooms if room.jobs is not None]
    return min(known, key=lambda room: room.jobs) if known else Room(None)


def _may_use(node: Mapping, needs: JobNeeds) -> bool:
    spec = node.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if spec.get("unschedulable"):
        return False
    if any(labels.get(key) != value for key, value in needs.node_selector):
        return False
    if needs.architectures and labels.get("kubernetes.io/arch") not in needs.architectures:
        return False
    for taint in spec.get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in needs.tolerations):
            return False
    return True


def _tolerates(toleration: Toleration, taint: Mapping) -> bool:
    if toleration.key != taint.get("key"):
        return False
    if toleration.effect and toleration.effect != taint.get("effect"):
        return False
    return toleration.value is None or toleration.value == (taint.get("value") or "")


def _amount(value: float, key: str) -> str:
    if "memory" in key:
        return f"{value / 2**30:.3g}Gi"
    return f"{value:g}"
