"""The local executor's options, declared apart from it so that listing them imports nothing heavy."""
from __future__ import annotations

from harness.option_spec import Option


def pin_mode(text: str) -> str:
    if text not in ("auto", "yes", "no"):
        raise ValueError("choose auto, yes or no")
    return text


def device_kind(text: str) -> str:
    if text not in ("cpu", "gpu", "auto"):
        raise ValueError("choose cpu, gpu or auto")
    return text


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


OPTIONS: tuple[Option, ...] = (
    Option("--job-memory-mb", "kill a local job whose processes use more than this many MiB of "
           "resident memory (default: no limit)", None, positive_int, "MIB"),
    Option("--pin-cpus", "give each running job its own cores (auto: when the jobs' threads fit the "
           "cores, so no framework's extra threads can slow another job; yes; no)", "auto",
           pin_mode, "auto|yes|no"),
    Option("--device", "where TensorFlow, JAX and PyTorch compute: cpu; gpu (each job on an NVIDIA GPU of its "
           "own, one job per GPU at a time; Theano and CNTK stay on the CPU); auto: gpu when one is visible "
           "(nvidia-smi -L), else cpu", "cpu", device_kind, "cpu|gpu|auto"),
)
