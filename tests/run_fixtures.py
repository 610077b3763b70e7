"""Synthetic finished runs, written in the real run-folder layout, for analysis and report tests.

``write_run`` lays out ``<shared>/runs/<run-id>/`` the way jobs and the
harness do (run.json, per-backend train.json / predict.json / probs / labels /
status files), with made-up but plausible numbers, so ``gather`` ->
``analyse`` -> the report run on it exactly as on a real run, in milliseconds.
``write_cache`` adds a decoded data-set cache whose fingerprint matches, for
the report's thumbnails.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import profiles
from harness.jobs import JobResult, JobState
from harness.phases import SERVE_FIELDS
from harness.run_store import RunStore
from harness.scoring.gather import RunResults, gather_finished
from harness.scoring.record import RunAnalysis
from harness.workload import layout
from harness.workload.data import fingerprint as data_fingerprint
from harness.workload.data import subset_indices

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BACKENDS = ("tensorflow", "jax", "torch", "theano", "cntk")
CACHE_KEY = "synthetic-cifar-0123456789abcdef"
CONTENT_SHA = "c0ffee" * 10 + "c0ff"
SMOKE = profiles.get("smoke")


@dataclass
class RunSpec:
    """What ``write_run`` should produce; the defaults give a healthy five-backend smoke run."""

    run_id: str = "synthetic1"
    backends: tuple[str, ...] = BACKENDS
    n_train: int = 300
    n_val: int = 120
    n_test: int = 150
    pool_train: int = 600
    """Training images in the (synthetic) source data set the subsets are cut from."""
    pool_test: int = 300
    seed: int = 7
    profile: str = "smoke"
    failed: dict[str, str] = field(default_factory=dict)
    """backend -> log tail of a train job that failed."""
    skipped: dict[str, str] = field(default_factory=dict)
    """backend -> reason it was skipped."""
    scale: dict[str, float] = field(default_factory=dict)
    """backend -> logit scale (> 1 over-confident, < 1 under-confident); default varies."""
    noise: dict[str, float] = field(default_factory=dict)
    """backend -> noise added to the shared logits (more noise, less accurate)."""
    test_labels: np.ndarray | None = None
    """Override the test labels written for every backend (the true ones are drawn)."""
    executor: str = "local"
    extra_train: dict[str, dict] = field(default_factory=dict)
    """backend -> keys merged into train.json (replacing the defaults' keys)."""
    fidelity_images: int = 50
    """Test images in each backend's fidelity outputs; 0 writes no fidelity job at all."""
    fidelity_broken: tuple[str, ...] = ()
    """Backends whose model computes another function of the same weights."""
    speed_steps: int = 60
    """Timed training steps in each backend's speed job; 0 writes no speed job at all."""
    step_ms: dict[str, float] = field(default_factory=dict)
    """backend -> median step time of its speed job in ms (default: 40 + 15 per backend's place)."""
    ceiling_gflops: float = 150.0
    ceiling_contended: bool = False
    """Whether the speed jobs measured their ceiling kernels while other processes used the machine."""
    outside_load: dict[str, float] = field(default_factory=dict)
    """backend -> cores other processes used while its speed job timed (its speed.json's load readings)."""
    slow_segments: dict[str, int] = field(default_factory=dict)
    """backend -> how many of its 6 timed segments ran at half speed (a second mode)."""
    serve_queries: int = 200
    """SingleStream queries in each backend's serve job; 0 writes no serve job at all."""
    serve_ms: dict[str, float] = field(default_factory=dict)
    """backend -> median SingleStream latency in ms (default: 2 + 0.5 per backend's place)."""
    serve_outside_load: dict[str, float] = field(default_factory=dict)
    """backend -> cores other processes used while its SingleStream run was timed (its serve.json's reading)."""
    serve_wrong: tuple[str, ...] = ()
    """Backends whose served answers are the previous query's (the audit must catch them)."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def source_labels(spec: RunSpec) -> dict[str, np.ndarray]:
    """Labels of the synthetic source data set: balanced, in a seeded order."""
    rng = np.random.RandomState(spec.seed)
    return {"train": rng.permutation(np.arange(spec.pool_train) % len(CLASSES)),
            "test": rng.permutation(np.arange(spec.pool_test) % len(CLASSES))}


def fingerprint(spec: RunSpec) -> str:
    """The data fingerprint the workload would compute for these subsets (see data.prepare)."""
    indices = subset_indices(source_labels(spec), spec.n_train, spec.n_val, spec.n_test, spec.seed)
    return data_fingerprint(CONTENT_SHA, indices)


def write_cache(shared: Path, spec: RunSpec) -> Path:
    """A decoded data-set cache like the workload's: uint8 images, labels, meta.json."""
    folder = Path(layout.dataset_cache_dir(layout.cache_dir(str(shared)), CACHE_KEY))
    folder.mkdir(parents=True, exist_ok=True)
    labels = source_labels(spec)
    for split, y in labels.items():
        x = np.zeros((len(y), 32, 32, 3), dtype=np.uint8)
        for i, c in enumerate(y):  # a colour per class, a stripe per image
            x[i, ..., c % 3] = 80 + 17 * c
            x[i, i % 32, :, :] = 255
        np.save(folder / f"x_{split}.npy", x)
        np.save(folder / f"y_{split}.npy", y.astype(np.int64))
    meta = {"format": 1, "classes": CLASSES, "content_sha256": CONTENT_SHA,
            "shapes": {s: [len(y), 32, 32, 3] for s, y in labels.items()}}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def write_run(shared: Path, spec: RunSpec | None = None) -> Path:
    """Write a finished run under ``<shared>/runs/<run-id>``; returns the run folder."""
    spec = spec or RunSpec()
    folder = RunStore(Path(shared), spec.run_id)
    folder.path.mkdir(parents=True, exist_ok=True)
    profile = {"name": spec.profile, "description": "synthetic", "n_train": spec.n_train,
               "n_val": spec.n_val, "n_test": spec.n_test, "epochs": 3, "batch_size": 32,
               "learning_rate": 1e-3, "predict_batch_size": 100, "job_timeout_s": 900,
               "seed": spec.seed, "speed_steps": spec.speed_steps,
               **({f.name: getattr(SMOKE, f.name) for f in dataclasses.fields(SMOKE) if f.name in SERVE_FIELDS}
                  if spec.serve_queries else {"serve_seconds": 0.0})}
    folder.write_settings({
        "schema": layout.SCHEMA_VERSION, "run_id": spec.run_id, "created_at": "2026-01-02T03:04:05",
        "harness_version": "0.1.0", "profile": profile,
        "dataset": {"kind": "path", "path": "/data/cifar10-jpeg.tar.gz"},
        "backends": list(spec.backends), "executor": spec.executor,
        "host": {"python": "3.11.7", "platform": "Linux-test", "cpus": 2, "argv": []},
    })
    indices = subset_indices(source_labels(spec), spec.n_train, spec.n_val, spec.n_test, spec.seed)
    labels = {"test": source_labels(spec)["test"][indices["test"]],
              "val": source_labels(spec)["train"][indices["val"]]}
    rng = np.random.default_rng(spec.seed)
    shared_logits = {}
    for split, y in labels.items():
        logits = rng.normal(0.0, 1.0, size=(len(y), len(CLASSES)))
        logits[np.arange(len(y)), y] += 1.6
        shared_logits[split] = logits
    data = {"cache_key": CACHE_KEY, "classes": CLASSES, "fingerprint": fingerprint(spec),
            "sizes": {"train": spec.n_train, "val": spec.n_val, "test": spec.n_test},
            "source": {"kind": "path", "path": "/data/cifar10-jpeg.tar.gz"}}
    for i, backend in enumerate(spec.backends):
        _write_backend(folder, spec, backend, i, rng, shared_logits, labels, data)
    if spec.fidelity_images:
        _write_fidelity(folder, spec, shared_logits["test"][:spec.fidelity_images], data)
    if spec.speed_steps:
        for i, backend in enumerate(spec.backends):
            _write_speed(folder, spec, backend, i)
    if spec.serve_queries:
        for i, backend in enumerate(spec.backends):
            _write_serve(folder, spec, backend, i, data)
    return folder.path


def _write_serve(folder: RunStore, spec: RunSpec, backend: str, i: int, data: dict) -> None:
    """A serve job's result and kept answers, as the job writes them (smoke's settings): lognormal
    latencies, an Offline sweep, a Server search, and a sample of answers equal to its predict job's
    probabilities (the previous query's for a backend in ``serve_wrong``)."""
    if backend in spec.skipped:
        return
    if backend in spec.failed:
        _status(folder, backend, "serve", JobState.SKIPPED, "not run because predict skipped")
        return
    rng = np.random.default_rng(spec.seed + 20 + i)
    median = spec.serve_ms.get(backend, 2.0 + 0.5 * i) / 1000.0
    latency = np.round(median * rng.lognormal(0.0, 0.1, size=spec.serve_queries), 7)
    duration = float(latency.sum())
    batches = []
    for b, batch in enumerate((1, 8, 32, 128)):
        per_batch = np.round(median * (0.3 + 0.7 * batch) * rng.lognormal(0.0, 0.05, size=30), 7)
        batches.append({"batch": batch, "batch_s": [float(t) for t in per_batch], "images": 30 * batch,
                        "wall_s": float(per_batch.sum()) * 1.01, "first_query_s": median * 50})
    peak = 0.7 / median
    trials, tried = [], []
    for rate in (0.5 / median, 1.0 / median, 0.75 / median, 0.875 / median):
        passed = rate <= peak
        queries = 100
        served = np.round(median * rng.lognormal(0.0, 0.1, size=queries) * (1.0 if passed else 6.0), 7)
        trials.append({"rate": rate, "latency_s": [float(t) for t in served], "queries": queries,
                       "answered": queries, "scheduled_s": queries / rate, "stopped_early": False,
                       "passed": passed, "over_bound": 0 if passed else queries, "first_query_s": median,
                       "wall_s": queries / rate})
        tried.append({"rate": rate, "passed": passed})
    probs = np.load(folder.file(backend, layout.probs_name("test")))
    audit = {}
    for name, n in (("single_stream", spec.serve_queries), *((f"offline_b{b['batch']}", b["images"]) for b in batches),
                    *((f"server_t{k}", t["queries"]) for k, t in enumerate(trials))):
        rows = np.sort(rng.choice(len(probs), size=min(32, len(probs)), replace=True))
        answers = probs[np.roll(rows, 1) if backend in spec.serve_wrong else rows]
        audit[f"{name}__rows"], audit[f"{name}__probs"] = rows.astype(np.int64), answers.astype(np.float32)
    layout.atomic_save_named_npz(str(folder.file(backend, layout.SERVE_AUDIT)), audit)
    settings = {name[len("serve_"):]: getattr(SMOKE, name) for name in SERVE_FIELDS}
    result = {"schema": layout.SCHEMA_VERSION, "kind": "serve", "backend": backend, "run_id": spec.run_id,
              "data": data, "environment": dict(_environment(backend), image_data_format="channels_last"),
              "settings": dict(settings, threads=1, seed=spec.seed, offline_batches=[1, 8, 32, 128],
                               server_percentile=0.99),
              "single_stream": {"latency_s": [float(t) for t in latency], "duration_s": duration,
                                "wall_s": duration, "first_query_s": median * 80,
                                "load": _reading(spec.serve_outside_load.get(backend, 0.01))},
              "offline": {"batches": batches, "stopped": None},
              "server": {"bound_s": SMOKE.serve_p99_bound_ms / 1000.0, "first_rate": 0.5 / median,
                         "trials": trials, "search": {"peak_rate": 0.5 / median, "failed_rate": 0.75 / median,
                                                      "finished": False, "tried": tried, "max_trials": 4,
                                                      "decimals": 1, "step": 1.0}},
              "first_answer_s": 6.5 + i, "audit": {"file": layout.SERVE_AUDIT, "runs": {}},
              "fault": "previous-answer" if backend in spec.serve_wrong else None,
              "peak_rss_mb": 500.0 + 10 * i, "timing": {"total_s": 12.0}}
    result["files"] = layout.file_records(str(folder.backend_dir(backend)), layout.promised_files("serve", result))
    layout.atomic_write_json(str(folder.file(backend, layout.result_name("serve"))), result)
    _status(folder, backend, "serve", JobState.SUCCEEDED)


def _reading(others: float) -> dict:
    """A machine-load reading (``harness.workload.machine_load``) of a section others used ``others`` cores of."""
    contended = others > 0.10
    return {"seconds": 2.0, "cpus": [0], "own_cores": 0.98, "machine_busy_cores": 0.98 + others,
            "others_cores": others, "others_on_own_cpus_cores": others, "steal_share": 0.0,
            "contended": contended,
            "reasons": [f"other processes used {others:.2f} of a core (limit 0.10)"] if contended else []}


def _write_speed(folder: RunStore, spec: RunSpec, backend: str, i: int) -> None:
    """A speed job's result: lognormal step times around the backend's median, its kernel's ceiling."""
    if backend in spec.skipped:
        return
    rng = np.random.default_rng(spec.seed + 10 + i)
    median = spec.step_ms.get(backend, 40.0 + 15.0 * i) / 1000.0
    steps = median * rng.lognormal(0.0, 0.05, size=spec.speed_steps)
    size = spec.speed_steps // 6
    for k in range(spec.slow_segments.get(backend, 0)):  # the last segments at half speed
        steps[(5 - k) * size:(6 - k) * size] *= 2.0
    others = spec.outside_load.get(backend, 0.01)
    segments = [{"first_step": k * size, "steps": size, "load": _reading(others)} for k in range(6)]
    batches = 0.02 * (1 + i) * rng.lognormal(0.0, 0.05, size=10)
    machine = {"id": "machine0", "cpu_model": "AMD EPYC", "vector_flags": ["avx2", "fma"], "cpus": 2,
               "usable_cpus": 1, "reported_mhz": 2000.0}
    result = {"schema": layout.SCHEMA_VERSION, "kind": "speed", "backend": backend, "run_id": spec.run_id,
              "environment": dict(_environment(backend), image_data_format="channels_last"),
              "settings": {"batch_size": 32, "predict_batch_size": 100, "steps": spec.speed_steps,
                           "warmup_steps": 5, "predict_batches": 10, "threads": 1, "slowdown": None},
              "train": {"step_s": [float(s) for s in steps], "warmup_s": 1.5, "images_per_step": 32,
                        "segments": segments},
              "load": {"train": _reading(others), "predict": _reading(others),
                       "quiet_wait": {"train": {"waited_s": 3.0, "quiet": others <= 0.10}}},
              "predict": {"batch_s": [float(b) for b in batches], "images_per_batch": 100},
              "flops": {"forward": 40_000_000, "train": 118_000_000},
              "ceiling": {"machine": machine, "threads": 1,
                          "kernels": {"numpy": {"gflops": spec.ceiling_gflops * 0.8, "what": "numpy",
                                                "contended": spec.ceiling_contended},
                                      backend: {"gflops": spec.ceiling_gflops - i, "what": backend,
                                                "contended": spec.ceiling_contended}},
                          "theoretical_peak": {"gflops": 64.0, "how": "1 core x 2.00 GHz x 32"}}}
    result["files"] = {}
    layout.atomic_write_json(str(folder.file(backend, layout.result_name("speed"))), result)
    _status(folder, backend, "speed", JobState.SUCCEEDED)


def _write_fidelity(folder: RunStore, spec: RunSpec, logits: np.ndarray, data: dict) -> None:
    """Every trained member's weights through every backend's model: float32 rounding apart, unless broken."""
    trained = [b for b in spec.backends if b not in spec.skipped and b not in spec.failed]
    rng = np.random.default_rng(spec.seed + 1)
    for backend in spec.backends:
        if backend in spec.skipped:
            continue
        if backend in spec.failed:
            _status(folder, backend, "fidelity", JobState.SKIPPED, "not run because train failed")
            continue
        outputs = {}
        for k, source in enumerate(trained):
            own = logits * (1.0 + 0.1 * k) + rng.normal(0.0, 1e-7, size=logits.shape)
            outputs[source] = _softmax(own[:, ::-1] if backend in spec.fidelity_broken else own).astype(np.float32)
        layout.atomic_save_named_npz(str(folder.file(backend, layout.FIDELITY_PROBS)), outputs)
        grads = [g * (1 + rng.normal(0.0, 1e-6, size=g.shape)) for g in _step_gradients(spec.seed)]
        layout.atomic_save_npz(str(folder.file(backend, layout.STEP_GRADS)), [g.astype(np.float32) for g in grads])
        result = {"schema": layout.SCHEMA_VERSION, "kind": "fidelity", "backend": backend, "run_id": spec.run_id,
                  "data": data, "images": len(logits), "outputs": layout.FIDELITY_PROBS,
                  "sources": {s: {"rows": len(logits), "weights_sha256": _weights_sha256(folder, s)}
                              for s in trained},
                  "step": {"reference_weights": trained[0], "images": 32, "learning_rate": 1.0,
                           "loss_keras": 2.1 + 1e-8 * len(backend), "loss_numpy": 2.1,
                           "gradients": layout.STEP_GRADS}}
        result["files"] = layout.file_records(str(folder.backend_dir(backend)),
                                              layout.promised_files("fidelity", result))  # as the job does
        layout.atomic_write_json(str(folder.file(backend, layout.result_name("fidelity"))), result)
        _status(folder, backend, "fidelity", JobState.SUCCEEDED)


def _weights_sha256(folder: RunStore, backend: str) -> str | None:
    path = folder.file(backend, layout.WEIGHTS)
    return layout.sha256_file(str(path)) if path.is_file() else None


def _step_gradients(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 1e-2, size=(3, 3, 3, 8)), rng.normal(0.0, 1e-3, size=(8,))]


def _environment(backend: str) -> dict:
    keras2 = backend in ("theano", "cntk")
    return {"python": "3.6.15" if backend == "cntk" else "3.11.7",
            "keras": "2.3.1" if keras2 else "3.15.1", "backend_library": backend,
            "backend_version": {"tensorflow": "2.21.0", "jax": "0.7.1", "torch": "2.9.0",
                                "theano": "1.0.5", "cntk": "2.7"}.get(backend, "1.0"),
            "cpu_model": "AMD EPYC", "cpu_count": 2, "platform": "Linux-test",
            "threads": {"requested": 2}, "variables": {"KERAS_BACKEND": backend}}


def _status(folder: RunStore, backend: str, phase: str, state: JobState, reason: str = "",
            log_tail: str = "") -> None:
    folder.write_status(JobResult(backend, phase, state, reason=reason, log_tail=log_tail,
                                  exit_code=0 if state is JobState.SUCCEEDED else 1,
                                  wall_s=12.5, executor="local"))


def _write_backend(folder: RunStore, spec: RunSpec, backend: str, i: int, rng, shared_logits,
                   labels, data) -> None:
    if backend in spec.skipped:
        for phase in layout.PHASES:
            _status(folder, backend, phase, JobState.SKIPPED, spec.skipped[backend])
        return
    folder.backend_dir(backend).mkdir(parents=True, exist_ok=True)
    epochs = [{"epoch": e + 1, "accuracy": 0.2 + 0.1 * e + 0.01 * i, "loss": 2.2 - 0.2 * e,
               "val_accuracy": 0.18 + 0.09 * e, "val_loss": 2.25 - 0.18 * e,
               "seconds": 3.0 - 0.3 * e + i, "images": spec.n_train,
               "images_per_s": 300.0 + 40 * e - 20 * i} for e in range(3)]
    train = {"schema": layout.SCHEMA_VERSION, "kind": "train", "backend": backend,
             "run_id": spec.run_id, "data": data, "environment": _environment(backend),
             "final": {"train_accuracy": 0.4 + 0.02 * i, "train_loss": 1.8 - 0.03 * i,
                       "val_accuracy": 0.36, "val_loss": 1.9},
             "history": epochs, "model": {"parameters": 1250858},
             "timing": {"steady_images_per_s": 400.0 - 30 * i,
                        "epoch_seconds": [e["seconds"] for e in epochs], "train_seconds": 8.0 + i},
             "flops": {"forward": 40_000_000, "train": 118_000_000},
             "peak_rss_mb": 1000.0 + 10 * i, **spec.extra_train.get(backend, {})}
    np.savez(folder.file(backend, layout.WEIGHTS), np.full((3, 3), float(i), dtype=np.float32))
    train.setdefault("files", layout.file_records(str(folder.backend_dir(backend)), [layout.WEIGHTS]))
    layout.atomic_write_json(str(folder.file(backend, layout.result_name("train"))), train)
    if backend in spec.failed:
        _status(folder, backend, "train", JobState.FAILED, "the job exited with status 1",
                spec.failed[backend])
        _status(folder, backend, "predict", JobState.SKIPPED, "its train job failed")
        return
    _status(folder, backend, "train", JobState.SUCCEEDED)
    scale = spec.scale.get(backend, (0.7, 1.0, 1.4, 0.9, 1.2)[i % 5])
    noise = spec.noise.get(backend, 0.8 + 0.15 * i)
    outputs = {}
    for split, y in labels.items():
        if split == "val" and spec.n_val == 0:
            continue
        logits = shared_logits[split] + rng.normal(0.0, noise, size=shared_logits[split].shape)
        probs = _softmax(scale * logits).astype(np.float32)
        written = y if split != "test" or spec.test_labels is None else spec.test_labels
        np.save(folder.file(backend, layout.probs_name(split)), probs)
        np.save(folder.file(backend, layout.labels_name(split)), np.asarray(written, dtype=np.int64))
        outputs[split] = {"probs": layout.probs_name(split), "labels": layout.labels_name(split),
                          "rows": len(y), "columns": len(CLASSES)}
    predict = {"schema": layout.SCHEMA_VERSION, "kind": "predict", "backend": backend,
               "run_id": spec.run_id, "data": data, "environment": _environment(backend),
               "outputs": outputs, "test": {"accuracy": 0.3, "loss": 2.0},
               "timing": {"images_per_s": 2000.0 - 300 * i, "p50_ms": 40.0 + 10 * i,
                          "p90_ms": 50.0 + 10 * i, "p99_ms": 60.0 + 10 * i},
               "flops": {"forward": 40_000_000, "train": 118_000_000},
               "peak_rss_mb": 800.0 + 5 * i}
    predict["files"] = layout.file_records(str(folder.backend_dir(backend)),
                                           layout.promised_files("predict", predict))  # as the job does
    layout.atomic_write_json(str(folder.file(backend, layout.result_name("predict"))), predict)
    _status(folder, backend, "predict", JobState.SUCCEEDED)


def end_run(analysis: RunAnalysis, folder: Path, reports_dir: Path | None = None, *,
            baseline: Path | None = None, history_dir: Path | None = None) -> list[Path]:
    """The end of a run (``harness.run_end.finish``) for a run folder written here; returns the report paths."""
    from harness import history
    from harness.run_end import EndSettings, finish

    store = RunStore.at(folder)
    settings = EndSettings(shared_dir=store.shared, history_dir=history_dir or history.default_dir(store.shared),
                           reports_dir=reports_dir, baseline_path=baseline)
    return finish(analysis, store, settings).report_paths


def load_run(folder: Path) -> RunResults:
    """A run folder written here, gathered as its session would (``harness.scoring.gather``)."""
    return gather_finished(RunStore.at(folder))


def rewrite_output(run_dir: Path, backend: str, name: str, array: np.ndarray) -> None:
    """Replace one of a predict job's outputs as if the job itself had written it (checksums included)."""
    folder = Path(run_dir) / backend
    np.save(folder / name, array)
    result_path = folder / layout.result_name("predict")
    predict = json.loads(result_path.read_text())
    predict["files"] = layout.file_records(str(folder), layout.promised_files("predict", predict))
    layout.atomic_write_json(str(result_path), predict)
