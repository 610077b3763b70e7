"""The NVIDIA GPUs this machine shows, and which device ``--device`` means here.

Found the way a person would look: ``nvidia-smi -L`` (one ``GPU 0: NVIDIA H200
(UUID: GPU-...)`` line per GPU), else the driver's ``/proc/driver/nvidia/gpus``
folders. ``CUDA_VISIBLE_DEVICES`` in the harness's own environment narrows the
list (to indices or UUIDs; set empty, it hides every GPU), as it would for any
CUDA program started from it. Nothing here imports a framework: finding the
GPUs costs one short subprocess, before any job.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import ConfigError

DEVICES = ("cpu", "gpu", "auto")
PROC_GPUS = Path("/proc/driver/nvidia/gpus")
SMI_TIMEOUT_S = 20.0
_LISTED = re.compile(r"^GPU (\d+): (.+?)(?: \(UUID: ([^)]+)\))?\s*$")


@dataclass(frozen=True)
class Gpu:
    """One GPU a job can be given (``CUDA_VISIBLE_DEVICES=<index>``)."""

    index: str
    name: str
    uuid: str = ""


@dataclass(frozen=True)
class Found:
    """What was found, and how: said in one line when ``--device auto`` chooses."""

    gpus: tuple[Gpu, ...]
    how: str
    driver: str | None = None
    cuda: str | None = None
    """The highest CUDA version the driver supports (``nvidia-smi``'s header), not a framework's build."""

    def facts(self) -> dict:
        """For run.json: the GPUs, the driver and its CUDA version."""
        return {"gpus": [asdict(g) for g in self.gpus], "driver": self.driver, "cuda_driver": self.cuda,
                "found_by": self.how}


def _smi(*args: str) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_list(text: str) -> list[Gpu]:
    """``nvidia-smi -L``'s lines as GPUs (other lines, such as MIG devices, are left out)."""
    found = []
    for line in text.splitlines():
        match = _LISTED.match(line.strip())
        if match:
            found.append(Gpu(match.group(1), match.group(2).strip(), match.group(3) or ""))
    return found


def _from_proc(root: Path) -> list[Gpu]:
    gpus = []
    for i, folder in enumerate(sorted(p for p in root.glob("*") if p.is_dir())):
        name = "NVIDIA GPU"
        try:
            for line in (folder / "information").read_text().splitlines():
                if line.startswith("Model:"):
                    name = line.split(":", 1)[1].strip()
        except OSError:
            pass
        gpus.append(Gpu(str(i), name))
    return gpus


def visible(gpus: list[Gpu], env: Mapping[str, str]) -> list[Gpu]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` leaves (all of them when it is unset), in its order."""
    wanted = env.get("CUDA_VISIBLE_DEVICES")
    if wanted is None:
        return gpus
    chosen = []
    for item in (part.strip() for part in wanted.split(",")):
        match = next((g for g in gpus if item and item in (g.index, g.uuid)), None)
        if match is None:
            break  # CUDA stops at the first entry it cannot use
        chosen.append(match)
    return chosen


def find(env: Mapping[str, str] | None = None, proc: Path | None = None) -> Found:
    """The GPUs a job started from here could use."""
    env = os.environ if env is None else env
    proc = PROC_GPUS if proc is None else proc
    listed = _smi("-L")
    if listed is not None:
        gpus, how = parse_list(listed), "nvidia-smi -L"
    elif proc.is_dir():
        gpus, how = _from_proc(proc), str(proc)
    else:
        return Found((), "no nvidia-smi on PATH and no " + str(proc))
    header = _smi() or ""
    driver = re.search(r"Driver Version:\s*(\S+)", header)
    cuda = re.search(r"CUDA Version:\s*(\S+)", header)
    shown = visible(gpus, env)
    if len(shown) < len(gpus):
        how += f", narrowed by CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')!r}"
    return Found(tuple(shown), how, driver.group(1) if driver else None, cuda.group(1) if cuda else None)


def describe(found: Found) -> str:
    if not found.gpus:
        return f"no NVIDIA GPU visible ({found.how})"
    names = sorted({g.name for g in found.gpus})
    return f"{len(found.gpus)} x {', '.join(names)} ({found.how})"


def choose(device: str, found: Found) -> str:
    """``cpu`` or ``gpu`` for ``--device``; ``gpu`` without a visible GPU is a usage error naming the fix."""
    if device == "gpu" and not found.gpus:
        raise ConfigError(f"--device gpu: {describe(found)}; run on a machine with an NVIDIA GPU and its "
                          "driver, or pass --device cpu (or auto)")
    if device == "auto":
        return "gpu" if found.gpus else "cpu"
    return device
