"""Names of the files in a run folder, the result schema version, atomic writes.

Shared by the job (which writes) and the harness (which reads), so it lives in
the workload package and keeps to Python 3.6 and the standard library + numpy.

    <shared>/runs/<run-id>/
        run.json                   what was asked (written by the harness)
        <backend>/train.json       training metrics, timings, environment
        <backend>/weights.npz      model.get_weights() in the portable layout (model.portable), any backend loads it
        <backend>/predict.json     inference timings and test metrics
        <backend>/probs_test.npy   softmax outputs on the test set, float32 [n, classes]
        <backend>/probs_val.npy    the same on the validation split (if any)
        <backend>/labels_test.npy  the labels those rows belong to, int64
        <backend>/labels_val.npy
        <backend>/fidelity.json    which members' weights this backend's model ran, on which images
        <backend>/fidelity_probs.npz   its softmax outputs for each member's weights, by member name
        <backend>/step_grads.npz   gradients of one step from one member's weights (fidelity of training)
        <backend>/<phase>.events.jsonl   progress, one JSON object a line
        <backend>/<phase>.log      what the job printed (written by the executor)
        <backend>/<phase>.status.json    how the job ended (written by the harness)
    <shared>/cache/datasets/<key>/       decoded data sets shared by all jobs

Files appear complete or not at all: each is written under a temporary name in
the same folder and renamed into place.
"""
import json
import os
import tempfile

SCHEMA_VERSION = 1

RUNS = "runs"
CACHE = "cache"
RUN_JSON = "run.json"
WEIGHTS = "weights.npz"
FIDELITY_PROBS = "fidelity_probs.npz"
STEP_GRADS = "step_grads.npz"
PHASES = ("train", "predict", "fidelity")
MEMBER_PHASES = ("train", "predict")
"""The phases that make a backend a member of the ensemble; ``fidelity`` checks it."""


def run_dir(shared, run_id):
    return os.path.join(shared, RUNS, run_id)


def backend_dir(shared, run_id, backend):
    return os.path.join(run_dir(shared, run_id), backend)


def result_name(phase):
    return phase + ".json"


def events_name(phase):
    return phase + ".events.jsonl"


def log_name(phase):
    return phase + ".log"


def status_name(phase):
    return phase + ".status.json"


def probs_name(split):
    return "probs_" + split + ".npy"


def labels_name(split):
    return "labels_" + split + ".npy"


def _temp_beside(path):
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    return fd, tmp


def _atomic(path, write):
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place."""
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o664)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    _atomic(path, lambda handle: handle.write(data))


def atomic_write_json(path, obj):
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def atomic_save_npy(path, array):
    """``numpy.save`` through a temporary file."""
    import numpy as np

    _atomic(path, lambda handle: np.save(handle, array, allow_pickle=False))


def atomic_save_npz(path, arrays):
    """``numpy.savez`` of a list of arrays through a temporary file."""
    import numpy as np

    _atomic(path, lambda handle: np.savez(handle, *arrays))


def atomic_save_named_npz(path, arrays):
    """``numpy.savez`` of a dict of named arrays through a temporary file."""
    import numpy as np

    _atomic(path, lambda handle: np.savez(handle, **arrays))


def remove_stale_temporaries(folder):
    """Delete half-written files left by a job that was killed mid-write."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(".") and name.endswith(".tmp"):
            _remove_quietly(os.path.join(folder, name))


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
