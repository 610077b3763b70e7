"""A model file built once in a Keras runtime before any job starts, so a bad one is one line.

``harness.models.spec`` checks what Python alone can (the file, its syntax, a
``build`` function); whether ``build`` returns a Keras model with one output
per class needs Keras. This runs ``harness.workload.build_check`` in the
Keras 3 runtime (a few seconds, most of it importing Keras) for each
non-default model of the run. The seed's CNN is known to build and is not
checked. A runtime that is not built yet is not built for this: the jobs then
find the same problem, each with the same one line.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness import runtimes
from harness.errors import ConfigError
from harness.executors.job_log import error_line
from harness.executors.local import stage_workload
from harness.models.spec import ModelSpec

CHECK_BACKEND = "jax"
"""The Keras 3 backend the check builds with: the quickest of the three to import (measured: jax
4.7 s, tensorflow 5.1 s, torch 5.6 s on a 2-core CPU)."""
CHECK_TIMEOUT_S = 300.0
_checked: dict[tuple, dict] = {}
"""Files already built in this process, by (hash, shape, classes): a second session does not pay again."""


def check(spec: ModelSpec, input_shape: tuple[int, ...], n_classes: int, work_dir: Path,
          say: Callable[[str], None] = print, runtime: str = "managed") -> dict | None:
    """Build the model in the Keras 3 runtime; its weights and FLOPs, or None when not checked.

    With ``--runtime current`` (``runtime``) it is not built first: which
    backend that Python can import is found only as the run starts, and the
    jobs build it there anyway. Raises ConfigError with the file and the
    problem in one line.
    """
    if spec.is_default:
        return None
    if runtime == "current":
        say(f"model {spec.name}: not built before the jobs (--runtime current); the jobs check it")
        return None
    found = (spec.sha256, tuple(input_shape), n_classes)
    if found in _checked:
        return _checked[found]
    runtime = runtimes.resolve("keras3", work_dir)
    if runtime.unavailable_reason or not runtime.ready:
        say(f"model {spec.name}: not built before the jobs (the Keras 3 runtime is not ready yet); "
            "the jobs check it")
        return None
    env = dict(os.environ, **runtime.env, KERAS_BACKEND=CHECK_BACKEND, PYTHONPATH=str(stage_workload(work_dir)),
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    say(f"model {spec.name}: building it once in the Keras 3 runtime before any job (at most "
        f"{CHECK_TIMEOUT_S:.0f} s)...")
    command = [str(runtime.python), "-m", "harness.workload.build_check", str(spec.path),
               "--shape", ",".join(str(d) for d in input_shape), "--classes", str(n_classes)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S,
                              check=False, cwd=str(work_dir))
    except subprocess.TimeoutExpired:
        raise ConfigError(f"model file {spec.path}: building it took over {CHECK_TIMEOUT_S:.0f} s; make the "
                          "model smaller or check its build function") from None
    if done.returncode != 0:
        said = error_line(done.stdout + done.stderr)
        raise ConfigError(said or f"model file {spec.path} could not be built (exit {done.returncode}): "
                          + " ".join((done.stderr.strip().splitlines() or ["no output"])[-1:]))
    described = _described(done.stdout)
    if described is None:
        raise ConfigError(f"model file {spec.path}: building it ended the check (exit {done.returncode}) before a "
                          "model came back; does its build() call sys.exit() or os._exit()? It must return the "
                          "model")
    say(f"model {spec.name}: builds ({described['parameters']:,} weights, "
        f"{described['flops']['forward'] / 1e6:,.1f} MFLOP per image)")
    _checked[found] = described
    return described


def _described(stdout: str) -> dict | None:
    """The check's last line (weights, FLOPs), or None when it printed none (the process ended early)."""
    lines = stdout.strip().splitlines()
    try:
        described = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    ok = isinstance(described, dict) and isinstance(described.get("parameters"), int) \
        and isinstance(described.get("flops"), dict) and isinstance(described["flops"].get("forward"), (int, float))
    return described if ok else None
