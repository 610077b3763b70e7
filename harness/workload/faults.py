"""Deliberate failures, for proving that the harness survives them.

``KBENCH_FAULT`` holds ``<backend>/<phase>:<kind>[@<point>]`` rules separated
by ``;``. Kinds: ``exit-N`` (exit with status N), ``crash`` (raise),
``kill`` (SIGKILL itself), ``hang`` (sleep until killed), ``memory-N`` (hold N
MiB more memory, then continue), ``corrupt`` (after writing its result,
truncate it), ``slow-F`` (every timed training step takes F times as long: the
step's own time, then a sleep; acts at any point, for the speed gate's tests),
``transpose-kernel`` (a broken weight conversion: the first
convolution kernel's rows and columns swapped as the fidelity phase loads any
member's weights; acts at point ``load`` only). Points: ``start`` (default),
``epoch-N`` (after epoch N of training), ``end`` (after writing results),
``load`` (as weights are loaded). Unset in normal runs: then this
module does nothing.
"""
import os
import signal
import time

VARIABLE = "KBENCH_FAULT"
_held = []


def _rules():
    text = os.environ.get(VARIABLE, "").strip()
    rules = []
    for part in text.split(";"):
        part = part.strip()
        if not part or ":" not in part:
            continue
        target, action = part.split(":", 1)
        kind, _, point = action.partition("@")
        rules.append((target.strip(), kind.strip(), point.strip() or "start"))
    return rules


def maybe_fail(backend, phase, point, result_path=None):
    """Act out any fault planned for this job at this point."""
    for kind in _matches(backend, phase, point):
        _act(kind, result_path)


def _matches(backend, phase, point):
    return [kind for target, kind, at in _rules()
            if target in (backend + "/" + phase, backend + "/*", "*/" + phase, "*/*") and at == point]


def slowdown(backend, phase):
    """The factor a planned ``slow-F`` fault stretches this job's training steps by (1.0: none)."""
    for target, kind, _ in _rules():
        if kind.startswith("slow-") and target in (backend + "/" + phase, backend + "/*", "*/" + phase, "*/*"):
            try:
                factor = float(kind[5:])
            except ValueError:
                continue
            if factor >= 1.0:
                return factor
    return 1.0


def alter_weights(backend, phase, weights):
    """The weights as a broken conversion planned for this job would leave them."""
    for kind in _matches(backend, phase, "load"):
        if kind == "transpose-kernel":
            weights = list(weights)
            first = next(i for i, w in enumerate(weights) if w.ndim == 4)
            weights[first] = weights[first].swapaxes(0, 1).copy()
    return weights


def _act(kind, result_path):
    if kind.startswith("exit-"):
        os._exit(int(kind[5:]))
    if kind == "crash":
        raise RuntimeError("injected crash (%s)" % VARIABLE)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        while True:
            time.sleep(3600)
    if kind.startswith("memory-"):
        import numpy as np

        block = np.ones(int(kind[7:]) * 1024 * 1024 // 8, dtype=np.float64)
        _held.append(block)
        time.sleep(2.0)  # long enough for a memory watchdog to see it
    if kind == "corrupt" and result_path and os.path.exists(result_path):
        with open(result_path, "r+b") as handle:
            handle.truncate(max(1, os.path.getsize(result_path) // 2))
