"""Deliberate failures, for proving that the harness survives them.

``KBENCH_FAULT`` holds ``<backend>/<phase>:<kind>[@<point>]`` rules separated
by ``;``. Kinds: ``exit-N`` (exit with status N), ``crash`` (raise),
``kill`` (SIGKILL itself), ``hang`` (sleep until killed), ``memory-N`` (hold N
MiB more memory, then continue), ``corrupt`` (after writing its result,
truncate it), ``slow-F`` (every timed training step takes F times as long: the
step's own time, then a sleep; acts at any point, for the speed gate's tests),
``transpose-kernel`` (a broken weight conversion: the first
convolution kernel's rows and columns swapped as the fidelity phase loads any
member's weights; acts at point ``load`` only), ``cached-answer`` (a server
that answers every query with the first answer it gave for a batch of that
size) and ``previous-answer`` (a server whose answers lag one query behind:
each query gets the answer of the one before it); the last two act at any
point, in the serve phase, for its audit's tests. Points: ``start`` (default),
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


SERVING_FAULTS = ("cached-answer", "previous-answer")


def serving_fault(backend, phase):
    """The wrong answers a faulty server planned for this job gives (a ``SERVING_FAULTS`` kind), or None."""
    for target, kind, _ in _rules():
        if kind in SERVING_FAULTS and target in (backend + "/" + phase, backend + "/*", "*/" + phase, "*/*"):
            return kind
    return None


def serving_answers(backend, phase, answer):
    """``answer`` as a faulty server planned for this job would give it (unchanged when none is).

    ``cached-answer``: the first answer for each batch size is kept and given
    for every later batch of that size (a cache keyed on the wrong thing);
    ``previous-answer``: each batch gets the answer computed for the batch of
    that size before it (a pipeline off by one), the first its own.
    """
    kind = serving_fault(backend, phase)
    if kind is None:
        return answer
    kept = {}

    def wrong(images):
        out = answer(images) if kind == "previous-answer" or len(images) not in kept else None
        if kind == "cached-answer":
            kept.setdefault(len(images), out)
            return kept[len(images)]
        given = kept.get(len(images), out)
        kept[len(images)] = out
        return given
    return wrong


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
