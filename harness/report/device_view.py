"""The report's lines on where the jobs ran: the runtime (managed, or the current Python and what it
imported), the device (the GPUs, their driver and CUDA, which backends stayed on the CPU) and, on a
GPU, each job's peak GPU memory.

Reads the run's settings (run.json: ``runtime`` and ``device``, written by the
executor), the members' environments (the CUDA each backend was built with,
as its jobs saw it) and the job statuses (``gpu_memory``, from each job's
result). A run from before these existed shows none of them.
"""
from __future__ import annotations

from typing import Any

from harness.report.formats import DASH
from harness.scoring.record import RunAnalysis


def runtime_fact(settings: dict[str, Any]) -> list[tuple[str, str]]:
    runtime = settings.get("runtime")
    if not isinstance(runtime, dict):
        return []
    if runtime.get("mode") != "current":
        return [("Runtime", ("managed: each Keras line in the environment the harness builds from its pinned "
                            "requirements (harness/requirements)"))]
    versions = runtime.get("versions") or {}
    first = next(iter(versions.values()), {})
    libraries = ", ".join(f"{name} {v.get('library', DASH)}" for name, v in versions.items()) or "none imported"
    return [("Runtime", (f"current: the Python that ran pytest, {runtime.get('python', DASH)} (Python "
                         f"{first.get('python', DASH)}): keras {first.get('keras', DASH)}; {libraries}; "
                         "Theano and CNTK, where run, in their managed runtimes"))]


def _cuda_builds(analysis: RunAnalysis) -> str:
    """``jax cuda 12080, torch CUDA 12.8``: the CUDA each backend's build uses, as its job read it."""
    found = []
    for name, member in analysis.members.items():
        gpu = (member.environment or {}).get("gpu") or {}
        if gpu.get("cuda"):
            found.append(f"{name} {gpu['cuda']}")
    return ", ".join(found)


def device_fact(analysis: RunAnalysis) -> list[tuple[str, str]]:
    device = analysis.settings.get("device")
    if not isinstance(device, dict):
        return []
    by_backend = device.get("backends") or {}
    on_cpu = [name for name, kind in by_backend.items() if kind != "gpu"]
    if device.get("kind") != "gpu":
        return [("Device", "CPU" + (" (jobs were shown no GPU)" if device.get("gpus") else ""))]
    gpus = device.get("gpus") or []
    names = ", ".join(sorted({g.get("name", DASH) for g in gpus})) or DASH
    text = (f"GPU: {len(gpus)} x {names}, driver {device.get('driver') or DASH} (CUDA "
            f"{device.get('cuda_driver') or DASH} at most); each job on a GPU of its own")
    builds = _cuda_builds(analysis)
    if builds:
        text += f"; backends built for CUDA: {builds}"
    if on_cpu:
        text += f". On the CPU: {', '.join(on_cpu)} (Keras 2.3.1's builds here have no GPU path)"
    return [("Device", text)]


def gpu_memory_fact(analysis: RunAnalysis) -> list[tuple[str, str]]:
    """Each backend's peak GPU memory per phase, from its allocator's statistics."""
    by_backend: dict[str, list[str]] = {}
    sources = set()
    for key, status in sorted(analysis.statuses.items()):
        memory = ((status or {}).get("details") or {}).get("gpu_memory") or {}
        if not memory:
            continue
        backend, _, phase = key.partition("/")
        peak = memory.get("peak_mib")
        by_backend.setdefault(backend, []).append(f"{phase} {peak:,.0f} MiB" if peak is not None
                                                  else f"{phase} not read ({memory.get('error', DASH)})")
        if memory.get("source"):
            sources.add(memory["source"])
    if not by_backend:
        return []
    text = "; ".join(f"{backend}: {', '.join(parts)}" for backend, parts in by_backend.items())
    return [("Peak GPU memory", f"{text} (each backend's own allocator: {', '.join(sorted(sources))})")]


def device_facts(analysis: RunAnalysis) -> list[tuple[str, str]]:
    """Lines for the report's "what ran" list."""
    return runtime_fact(analysis.settings) + device_fact(analysis) + gpu_memory_fact(analysis)
