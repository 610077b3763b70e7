"""The run-folder protocol: every name a job and the harness share, the schema version, atomic writes.

Shared by the job (which writes) and the harness (which reads), so it lives in
the workload package and keeps to Python 3.6 and the standard library + numpy.
Each name is defined here once; neither side spells a file name, a line
prefix or a folder of the shared storage itself.

    <shared>/runs/<run-id>/
        run.json                   what was asked (written by the harness), the model's name and sha256 among it
        model.py                   the model file every job of the run builds (copied by the harness)
        .lock                      held by the harness process using the run
        ensemble.json              the run's analysis (written by the harness)
        report.html, report.md     the report (written by the harness)
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
        <backend>/speed.json       steady training-step and inference-batch times, measured alone; the ceiling
        <backend>/serve.json       inference as served (SingleStream, Offline, Server), measured alone
        <backend>/serve_audit.npz  a seeded sample of the answers of every timed serving run, with their rows
        <backend>/<phase>.events.jsonl   progress, one JSON object a line
        <backend>/<phase>.log      what the job printed (written by the executor)
        <backend>/<phase>.status.json    how the job ended (written by the harness)
    <shared>/cache/datasets/<key>/       decoded data sets shared by all jobs
    <shared>/inputs/<key>/<file>         data sets copied in for jobs that cannot see the harness's files
    <shared>/cache/ceilings/<machine>-t<threads>.json   float32 matmul rates per kernel, once per machine
    <shared>/history/<profile>.jsonl     the run history (by default)

A job's output lines: progress events behind ``EVENT_PREFIX`` (one JSON object
each), and on failure a last line on standard error behind ``ERROR_PREFIX``
that says what went wrong.

Files appear complete or not at all: each is written under a temporary name in
the same folder and renamed into place. A result file, written last, lists
under ``files`` every other file its job promised, with its size and SHA-256:
the harness reuses a finished job on resume only when each still matches, and
when the result file itself still matches the size and SHA-256 that the
harness recorded in the job's status as it ended.
"""
import hashlib
import json
import os
import tempfile

SCHEMA_VERSION = 1

RUNS = "runs"
CACHE = "cache"
DATASETS = "datasets"
"""Folder under the cache that holds one decoded data set per key."""
INPUTS = "inputs"
HISTORY = "history"
RUN_JSON = "run.json"
RUN_LOCK = ".lock"
ENSEMBLE_JSON = "ensemble.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
WEIGHTS = "weights.npz"
FIDELITY_PROBS = "fidelity_probs.npz"
STEP_GRADS = "step_grads.npz"
SERVE_AUDIT = "serve_audit.npz"
MODEL_FILE = "model.py"
"""The run folder's copy of the model file: jobs build it from there on any executor."""
MODELS = "models"
"""The folder of shipped model files, inside the workload package."""
DEFAULT_MODEL = "seed"
"""The model a run builds unless asked for another: the seed's CIFAR-10 CNN."""
CEILINGS = "ceilings"
"""Folder under the cache that holds each machine's measured matmul ceilings."""
PHASES = ("train", "predict", "fidelity", "speed", "serve")
"""The phases a job can run (``python -m harness.workload PHASE``); their lifecycle (order, waiting,
running alone, reuse) is the harness's phase table, ``harness.phases``."""

ERROR_PREFIX = "kbench-error: "
"""Starts the job's last line on standard error when it fails: the one-line reason."""
EVENT_PREFIX = ":::KBENCH "
"""Starts each progress event a job prints (a JSON object follows)."""


def run_dir(shared, run_id):
    return os.path.join(shared, RUNS, run_id)


def shared_of(run_folder):
    """The shared folder a run folder (``<shared>/runs/<run-id>``) lives in.

    Raises ValueError for a folder that is not inside a ``runs/`` folder.
    """
    run_folder = os.path.abspath(run_folder)
    parent = os.path.dirname(run_folder)
    if os.path.basename(parent) != RUNS:
        raise ValueError("%s is not a run folder (<shared>/%s/<run-id>)" % (run_folder, RUNS))
    return os.path.dirname(parent)


def cache_dir(shared):
    return os.path.join(shared, CACHE)


def dataset_cache_dir(cache_root, key):
    """Where the decoded data set ``key`` lives under a cache folder (``<shared>/cache``)."""
    return os.path.join(cache_root, DATASETS, key)


def input_path(key, file_name):
    """A copied-in data set's place, relative to the shared folder (a POSIX path)."""
    return "/".join((INPUTS, key, file_name))


def ceiling_cache_path(cache_root, machine, threads):
    """Where one machine's matmul ceilings at ``threads`` threads are kept."""
    return os.path.join(cache_root, CEILINGS, "%s-t%d.json" % (machine, int(threads)))


def history_dir(shared):
    return os.path.join(shared, HISTORY)


def backend_dir(shared, run_id, backend):
    return os.path.join(run_dir(shared, run_id), backend)


def model_file_name(name):
    """The shipped file of a model name: ``resnet-small`` -> ``resnet_small.py`` (names use '-', modules '_')."""
    return name.replace("-", "_") + ".py"


def model_name_of(file_name):
    """The model name a file gives: ``my_net.py`` -> ``my-net``; the inverse of ``model_file_name``."""
    stem = os.path.basename(file_name)
    if stem.endswith(".py"):
        stem = stem[:-3]
    return stem.lower().replace("_", "-")


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


def promised_files(phase, result):
    """The files besides the result file that a finished job of ``phase`` leaves behind."""
    if phase == "train":
        return [WEIGHTS]
    if phase == "speed":
        return []
    if phase == "serve":
        return [SERVE_AUDIT]
    if phase == "fidelity":
        return [FIDELITY_PROBS] + ([STEP_GRADS] if (result.get("step") or {}).get("gradients") else [])
    names = []
    for split in sorted(result.get("outputs", {})):
        names += [probs_name(split), labels_name(split)]
    return names


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(folder, names):
    """``{name: {"bytes": size, "sha256": hex}}`` of files in ``folder``, for a result's ``files``."""
    return dict((name, {"bytes": os.path.getsize(os.path.join(folder, name)),
                        "sha256": sha256_file(os.path.join(folder, name))}) for name in names)


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
