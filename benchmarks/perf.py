"""Measure the harness's speed figures and performance goals in one run and print a table.

    .venv/bin/python benchmarks/perf.py --profile default --dataset ../shared/datasets/cifar10-jpeg.tar.gz

Sections (``--only`` picks some; all by default), all on the local executor:

* ``isolation``: ``pytest benchmarks/ --backend all`` (jobs two at a time), then each
  Keras 3 backend's speed case run by itself (``--backend X -k test_speed``), side by
  side: the training images/s the ``--backend all`` report states, the same backend
  alone, their ratio (goal: within 10%), and what the training job itself measured
  while sharing the machine (the figure the report no longer calls the backend's speed);
  with each backend's MFU, the ceiling, its kernel and the theoretical peak;
* ``knobs``: each Keras 3 backend's speed phase alone under the switches Keras offers
  (``jit_compile``, channels_first, and every core instead of one), one speed-only run
  per switch and round (``--rounds``), to pick each backend's default configuration;
* ``shapes``: the machine's BLAS on the GEMM shapes this model's layers become;
* ``overhead``: one backend's training job through ``pytest benchmarks/`` against the
  same workload command run directly, alternated over ``--rounds`` rounds;
* ``data``: loading all of CIFAR-10 from the shared cache with five jobs starting at once;
* ``gather``: gathering, ensembling and reporting five members on 10,000 test images.

Goals are not assertions: the table says met or not. Results also go to ``<out>/perf.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import backends as registry
from harness import runtimes, tuning
from harness.scoring.record import read_analysis
from harness.workload import data, layout

PYTHON = sys.executable
NO_TEST_PLUGINS = ("-p", "no:kmock", "-p", "no:hypothesispytest")
"""The test suite's plugins cost ~2 s of pytest start-up and are no part of the harness
(``./dev bench`` leaves them out the same way)."""


# -- helpers ---------------------------------------------------------------------------
class RunQueue:
    """Samples how many threads are runnable (``procs_running``) while something runs."""

    def __init__(self, every_s: float = 0.5):
        self.every_s = every_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            with open("/proc/stat") as handle:
                for line in handle:
                    if line.startswith("procs_running"):
                        self.samples.append(int(line.split()[1]) - 1)  # less this sampler
                        break

    def __enter__(self) -> Self:
        self._thread.start()
        time.sleep(3 * self.every_s)  # what the machine does without the benchmark
        self.baseline = statistics.fmean(self.samples) if self.samples else 0.0
        self.samples.clear()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        """Runnable threads on average, less what ran before the benchmark started."""
        if not self.samples:
            return float("nan")
        return round(statistics.fmean(self.samples) - self.baseline, 2)


def bench(args, run_id: str, *extra: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    command = [PYTHON, "-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider", *NO_TEST_PLUGINS,
               "--profile", args.profile, "--dataset", args.dataset, "--shared-dir", str(args.shared),
               "--run-id", run_id, *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
        print(f"warning: {' '.join(command[3:])} exited {done.returncode}")
    return wall, done


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def run_dir(args, run_id: str) -> Path:
    return args.shared / layout.RUNS / run_id


# -- the measurements ----------------------------------------------------------------------
def speed_rows(folder: Path) -> dict:
    """The speed section of a finished run's analysis (the report's figures), by backend."""
    stored = folder / layout.ENSEMBLE_JSON
    if not stored.exists():
        return {}
    return read_analysis(stored).speed or {}


def shared_rate(folder: Path, backend: str) -> float | None:
    """What the training job itself measured, beside the run's other jobs."""
    path = folder / backend / "train.json"
    return read(path)["timing"].get("steady_images_per_s") if path.exists() else None


def isolation(args) -> dict:
    """The --backend all report's training img/s beside each Keras 3 backend timed by itself."""
    all_id = f"{args.tag}-all"
    with RunQueue() as queue:
        wall, _ = bench(args, all_id, "--backend", args.backends)
    together = speed_rows(run_dir(args, all_id))
    out = {"all_run": all_id, "all_wall_s": round(wall, 1), "all_run_queue_mean": queue.mean,
           "ceilings": together.get("ceilings", []), "backends": {}}
    for backend in registry.parse_backends(args.backends):
        if backend.keras_line != "3":
            continue
        alone_id = f"{args.tag}-alone-{backend.name}"
        bench(args, alone_id, "--backend", backend.name, "--parallel", "1", "-k", "test_speed")
        alone = speed_rows(run_dir(args, alone_id)).get("backends", {}).get(backend.name)
        in_all = together.get("backends", {}).get(backend.name)
        if not alone or not in_all:
            out["backends"][backend.name] = {"problem": "no speed figures in one of the runs"}
            continue
        a, b = in_all["train"]["images_per_s"], alone["train"]["images_per_s"]
        out["backends"][backend.name] = {
            "report_all": a, "alone": b, "ratio": round(a["median"] / b["median"], 4),
            "training_job_shared": shared_rate(run_dir(args, all_id), backend.name),
            "train_mfu": in_all.get("train_mfu"), "inference_mfu": in_all.get("inference_mfu"),
            "configuration": in_all.get("configuration"),
        }
        print(f"{backend.name}: --backend all report {a['median']:.0f} img/s, alone {b['median']:.0f} img/s",
              flush=True)
    return out


KNOBS = {
    "tensorflow": {"default": {}, "jit_compile=True": {"KBENCH_JIT_COMPILE": "true"},
                   "jit_compile=False": {"KBENCH_JIT_COMPILE": "false"},
                   "channels_first": {"KBENCH_DATA_FORMAT": "channels_first"}},
    "jax": {"default": {}, "channels_first": {"KBENCH_DATA_FORMAT": "channels_first"}},
    "torch": {"default": {}, "channels_first": {"KBENCH_DATA_FORMAT": "channels_first"}},
}
"""The switches Keras 3 itself offers, per backend, beside the default (jit_compile="auto", channels_last).
JAX is left compiled: with jit_compile=False Keras runs it op by op, which is not a configuration anyone
would benchmark it in. PyTorch's jit_compile=True (torch.compile) is left out: measured here, side by side
on one core, its first step took 38-146 s to compile and later steps 277 ms against 173-190 ms without it
(README), so it would only lengthen this section."""


def knobs(args) -> dict:
    """Each Keras 3 backend's speed phase alone under each switch, at 1 thread and at every core.

    One speed-only run (``-k test_speed``, nothing trained) per backend, switch and
    round; the rounds go through every configuration in turn, so a drift of the
    machine falls on all of them alike. Figures: the speed phase's median train and
    inference img/s with their 95% intervals, and the configuration the job recorded.
    """
    out: dict = {}
    cores = os.cpu_count() or 1
    for round_no in range(args.rounds):
        for backend in registry.parse_backends(args.backends):
            if backend.name not in KNOBS:
                continue
            configs = dict(KNOBS[backend.name])
            if cores > 1:
                configs[f"default, {cores} threads"] = {"threads": str(cores)}
            for label, env in configs.items():
                run_id = f"{args.tag}-k{round_no}-{backend.name}-{len(out.get(backend.name, {}))}"[:40]
                threads = env.get("threads", "1")
                variables = {k: v for k, v in env.items() if k != "threads"}
                command_env = dict(os.environ, **variables)
                for key in ("KBENCH_JIT_COMPILE", "KBENCH_DATA_FORMAT"):
                    if key not in variables:
                        command_env.pop(key, None)
                bench(args, run_id, "--backend", backend.name, "--speed-threads", threads, "-k", "test_speed",
                      env=command_env)
                row = speed_rows(run_dir(args, run_id)).get("backends", {}).get(backend.name)
                entry = out.setdefault(backend.name, {}).setdefault(label, {"rounds": []})
                if not row:
                    entry["rounds"].append({"problem": f"no speed figures in run {run_id}"})
                    continue
                entry["rounds"].append({"run_id": run_id, "train": row["train"]["images_per_s"],
                                        "predict": row["predict"]["images_per_s"],
                                        "configuration": row.get("configuration")})
                print(f"{backend.name} {label} (round {round_no + 1}): train "
                      f"{row['train']['images_per_s']['median']:.0f} img/s, inference "
                      f"{row['predict']['images_per_s']['median']:.0f} img/s", flush=True)
    return out


def gemm_rate(m: int, k: int, n: int, repeats: int = 15) -> float:
    a = np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(k, n).astype(np.float32)
    a @ b
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = max(best, 2.0 * m * k * n / (time.perf_counter() - started) / 1e9)
    return best


def model_shape_ceiling(batch: int = 32) -> dict:
    """The same BLAS on the GEMMs this model's layers become at this batch size.

    Each convolution is an (batch*out_h*out_w x kh*kw*c_in) by (kh*kw*c_in x filters)
    product (im2col); training adds the two gradient products of the same sizes.
    Few channels make these products thin, and thin products run well below the
    square-matrix rate: this is the best a framework could do with this model.
    Measured on one thread, as each job runs.
    """
    layers = {  # name: (M, K, N) of the forward product, from the seed CNN on 32x32x3 images
        "conv2d 3->32": (batch * 32 * 32, 27, 32), "conv2d 32->32": (batch * 30 * 30, 288, 32),
        "conv2d 32->64": (batch * 15 * 15, 288, 64), "conv2d 64->64": (batch * 13 * 13, 576, 64),
        "dense 2304->512": (batch, 2304, 512), "dense 512->10": (batch, 512, 10),
    }
    code = (f"import json, sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.perf import gemm_rate; "
            f"layers = {layers!r}; out = {{}}\n"
            "for name, (m, k, n) in layers.items():\n"
            "    out[name] = [gemm_rate(m, k, n), gemm_rate(m, n, k), gemm_rate(k, m, n)]\n"
            "out['square 1024'] = [gemm_rate(1024, 1024, 1024)] * 3\n"
            "print(json.dumps(out))")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    rates = json.loads(subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True,
                                      check=True, cwd=REPO).stdout)
    flops_fwd = {name: 2 * m * k * n for name, (m, k, n) in layers.items()}
    seconds = sum(flops_fwd[name] * (1 / r[0] + 1 / r[1] + 1 / r[2]) for name, r in rates.items() if name in layers)
    effective = 3 * sum(flops_fwd.values()) / seconds
    return {"per_layer_gflops": {k: [round(x, 1) for x in v] for k, v in rates.items()},
            "effective_training_gflops": round(effective, 1), "square_gflops": round(rates["square 1024"][0], 1)}


def session(args, run_id: str, parallel: int, threads: int) -> dict:
    with RunQueue() as queue:
        wall, _ = bench(args, run_id, "--backend", args.backends, "--parallel", str(parallel),
                        "--threads", str(threads))
    folder = run_dir(args, run_id)
    members = {}
    stored = folder / layout.ENSEMBLE_JSON
    harness_cost = read_analysis(stored).harness if stored.exists() else None
    for backend in registry.parse_backends(args.backends):
        train_path = folder / backend.name / "train.json"
        if not train_path.exists():
            continue
        train = read(train_path)
        predict = read(folder / backend.name / "predict.json") if (folder / backend.name / "predict.json").exists() else {}
        status = read(folder / backend.name / "train.status.json")
        members[backend.name] = {
            "busy_cores_train": train.get("cpu", {}).get("busy_cores"),
            "cpus": status.get("details", {}).get("cpus"),
            "train_images_per_s": train["timing"]["steady_images_per_s"],
            "train_flops_per_image": train["flops"]["train"],
            "test_accuracy": train["final"]["test_accuracy"],
            "train_wall_s": status.get("wall_s"),
            "peak_rss_mb_train": max(train.get("peak_rss_mb") or 0, status.get("details", {}).get("peak_rss_mb") or 0),
            "peak_rss_mb_predict": predict.get("peak_rss_mb"),
            "inference_images_per_s": predict.get("timing", {}).get("images_per_s"),
        }
    return {"wall_s": round(wall, 1), "parallel": parallel, "threads": threads, "run_queue_mean": queue.mean,
            "members": members, "harness": harness_cost or {}}


def overhead(args, backend_name: str) -> dict:
    """One backend's training through pytest benchmarks/ against the workload command run directly."""
    backend = registry.get(backend_name)
    runtime = runtimes.resolve(backend.runtime, REPO / ".kbench")
    from harness.executors.local import stage_workload

    code_dir = stage_workload(REPO / ".kbench")
    threads = os.cpu_count()
    through, direct, fixed = [], [], []
    job_timing: dict[str, list[dict]] = {"through": [], "direct": []}
    template = None
    for i in range(args.rounds):
        run_id = f"{args.tag}-ovh-h{i}"
        wall, _ = bench(args, run_id, "--backend", backend_name, "-k", "test_train", "--parallel", "1",
                        "--threads", str(threads))
        through.append(wall)
        status = read(run_dir(args, run_id) / backend_name / "train.status.json")
        fixed.append(wall - status["wall_s"])
        job_timing["through"].append(read(run_dir(args, run_id) / backend_name / "train.json")["timing"])
        template = template or read(run_dir(args, run_id) / layout.RUN_JSON)

        direct_id = f"{args.tag}-ovh-d{i}"
        folder = run_dir(args, direct_id)
        folder.mkdir(parents=True, exist_ok=True)
        layout.atomic_write_json(str(folder / layout.RUN_JSON), dict(template, run_id=direct_id))
        env = dict(os.environ, **tuning.job_env(backend, threads), **runtime.env, PYTHONPATH=str(code_dir))
        command = [str(runtime.python), "-m", "harness.workload", "train", "--shared", str(args.shared),
                   "--run-id", direct_id, "--backend", backend_name]
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        direct.append(time.perf_counter() - started)
        job_timing["direct"].append(read(folder / backend_name / "train.json")["timing"])
    a, b = statistics.median(through), statistics.median(direct)
    startup = {arm: statistics.median(t["startup_s"] for t in runs) for arm, runs in job_timing.items()}
    epochs = {arm: sorted(round(e, 1) for t in runs for e in t["epoch_seconds"][1:])
              for arm, runs in job_timing.items()}
    # what the harness adds: time outside the job, and the job's slower start while pytest runs beside it;
    # the epochs themselves are compared apart, since this machine's epoch time varies on its own
    attributable = statistics.median(fixed) + startup["through"] - startup["direct"]
    return {"backend": backend_name, "rounds": args.rounds, "through_pytest_s": [round(x, 2) for x in through],
            "direct_s": [round(x, 2) for x in direct], "median_through_s": round(a, 2),
            "median_direct_s": round(b, 2), "overhead_pct": round(100 * (a - b) / b, 2),
            "fixed_cost_s": round(a - b, 2), "outside_job_s": [round(x, 2) for x in fixed],
            "job_startup_s": {k: round(v, 2) for k, v in startup.items()}, "steady_epoch_s": epochs,
            "attributable_s": round(attributable, 2), "attributable_pct": round(100 * attributable / b, 2)}


def data_load(args) -> dict:
    """All of CIFAR-10 from the shared cache, five jobs at once; the first decode is timed apart."""
    spec = {"kind": "path", "path": str(Path(args.dataset).resolve())}
    cache = args.shared / layout.CACHE
    started = time.perf_counter()
    data.load(spec, str(args.shared), str(cache))
    first = time.perf_counter() - started
    code = (
        "import json, sys, time; t=time.perf_counter();"
        "from harness.workload import data;"
        f"a=data.load({spec!r}, {str(args.shared)!r}, {str(cache)!r});"
        "p=data.prepare(a, {'n_train': None, 'n_val': 0, 'n_test': None, 'seed': 1});"
        "print(json.dumps({'seconds': time.perf_counter()-t, 'train': len(p.y['train'])}))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([PYTHON, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(5)]
    results = [json.loads(p.communicate()[0]) for p in procs]
    return {"first_use_s": round(first, 2), "concurrent_s": [round(r["seconds"], 3) for r in results],
            "max_s": round(max(r["seconds"] for r in results), 3), "images": results[0]["train"] + 10000}


def gather_cost(args, source_run: Path) -> dict:
    """Gather + ensemble + report for five members on 10,000 test images (synthetic outputs)."""
    from harness.jobs import JobResult, JobState
    from harness.run_store import RunStore
    from harness.scoring.analysis import analyse
    from harness.scoring.gather import gather

    run_id = f"{args.tag}-gather"
    folder = run_dir(args, run_id)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source_run, folder, ignore=shutil.ignore_patterns("*.log*", "*.jsonl", "weights.npz", ".lock"))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 10_000).astype(np.int64)
    names = [p.name for p in folder.iterdir() if (p / "predict.json").exists()]
    for name in names:
        probs = rng.dirichlet(np.ones(10), size=10_000).astype(np.float32)
        np.save(folder / name / "probs_test.npy", probs)
        np.save(folder / name / "labels_test.npy", labels)
        predict = read(folder / name / "predict.json")
        predict["outputs"]["test"]["rows"] = 10_000
        (folder / name / "predict.json").write_text(json.dumps(predict))
    statuses = {(n, p): JobResult(n, p, JobState.SUCCEEDED) for n in names for p in ("train", "predict")}
    started = time.perf_counter()
    results = gather(RunStore(args.shared, run_id), names, statuses)
    analysis = analyse(results)
    rendered = []
    try:
        from harness import report
    except ImportError:
        report = None
    if report is not None and hasattr(report, "write_reports"):
        rendered = report.write_reports(analysis, folder, folder / "out", history=[])
    took = time.perf_counter() - started
    return {"members": len(names), "test_images": 10_000, "seconds": round(took, 3),
            "report_written": bool(rendered)}


# -- the table ---------------------------------------------------------------------------------
def _interval(figures: dict) -> str:
    return f"{figures['median']:.0f} ({figures['ci_low']:.0f}-{figures['ci_high']:.0f})"


def table(results: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    if "isolation" in results:
        iso = results["isolation"]
        for name, row in iso["backends"].items():
            if "problem" in row:
                rows.append((f"{name} training img/s, --backend all vs alone", "within 10%", row["problem"], "no"))
                continue
            shared = row["training_job_shared"]
            shared_text = f"{shared:.0f}" if shared else "-"
            measured = (f"report {_interval(row['report_all'])} vs alone {_interval(row['alone'])}: ratio "
                        f"{row['ratio']:.3f}; the training job itself, sharing the machine: {shared_text}")
            rows.append((f"{name} training img/s, --backend all report vs alone", "within 10%", measured,
                         "yes" if abs(row["ratio"] - 1) <= 0.10 else "no"))
            mfus = [row.get("train_mfu"), row.get("inference_mfu")]
            rows.append((f"{name} MFU (train / inference)", "<= 100%",
                         " / ".join("-" if m is None else f"{100 * m:.1f}%" for m in mfus),
                         "yes" if all(m is None or m <= 1 for m in mfus) else "no"))
        for entry in iso["ceilings"]:
            kernels = ", ".join(f"{k} {v.get('gflops')}" for k, v in sorted(entry["kernels"].items()))
            peak = (entry.get("theoretical_peak") or {}).get("gflops")
            rows.append((f"ceiling at {entry['threads']} thread(s)", "the best kernel here",
                         f"{entry['gflops']} GFLOP/s ({entry['kernel']}); {kernels}; theoretical peak {peak}", "-"))
    for name, configs in results.get("knobs", {}).items():
        base = _median_of(configs.get("default", {}), "train")
        for label, entry in configs.items():
            trains = [r for r in entry["rounds"] if "train" in r]
            if not trains:
                rows.append((f"{name} {label}", "fastest is the default", entry["rounds"][0]["problem"], "-"))
                continue
            measured = "; ".join(f"train {_interval(r['train'])}, infer {_interval(r['predict'])}" for r in trains)
            ratio = _median_of(entry, "train") / base if base else None
            rows.append((f"{name} {label} (img/s, 95% interval)", "fastest is the default",
                         measured + (f"; train vs default {ratio:.2f}x" if ratio else ""), "-"))
    if "model_shapes" in results:
        shapes = results["model_shapes"]
        share = 100 * shapes["effective_training_gflops"] / shapes["square_gflops"]
        rows.append(("the same BLAS on this model's GEMM shapes (batch 32, 1 thread)", "why MFU stops short",
                     (f"{shapes['effective_training_gflops']:.0f} GFLOP/s vs {shapes['square_gflops']:.0f} square "
                     f"= {share:.0f}%"), "-"))
    if "overhead" in results:
        o = results["overhead"]
        measured = (f"wall {o['overhead_pct']:+.1f}% (medians {o['median_through_s']:.1f} s vs "
                    f"{o['median_direct_s']:.1f} s); added by the harness {o['attributable_s']:.1f} s = "
                    f"{o['attributable_pct']:.1f}% ({statistics.median(o['outside_job_s']):.1f} s outside the job, "
                    f"start-up {o['job_startup_s']['through']:.1f} vs {o['job_startup_s']['direct']:.1f} s)")
        verdict = f"wall {'yes' if o['overhead_pct'] <= 3 else 'no'}, added {'yes' if o['attributable_pct'] <= 3 else 'no'}"
        rows.append((f"harness cost ({o['backend']} training, {o['rounds']} rounds alternated)", "<= 3%", measured,
                     verdict))
    if "data_load" in results:
        d = results["data_load"]
        rows.append((f"data load, all CIFAR-10 ({d['images']} images), 5 jobs at once", "< 1 s each, one decode",
                     f"max {d['max_s']:.2f} s (first decode {d['first_use_s']:.1f} s)",
                     "yes" if d["max_s"] < 1 else "no"))
    if "gather" in results:
        g = results["gather"]
        rows.append((f"gather + ensemble + report, {g['members']} members x {g['test_images']} images", "< 2 s",
                     f"{g['seconds']:.2f} s" + ("" if g["report_written"] else " (no report renderer)"),
                     "yes" if g["seconds"] < 2 else "no"))
    return rows


def _median_of(entry: dict, figure: str) -> float | None:
    values = [r[figure]["median"] for r in entry.get("rounds", []) if figure in r]
    return statistics.median(values) if values else None


SECTIONS = ("isolation", "knobs", "shapes", "overhead", "data", "gather")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--dataset", default=os.environ.get("KBENCH_DATASET", "keras"))
    parser.add_argument("--backends", default="all")
    parser.add_argument("--overhead-backend", default="tensorflow")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "out" / "perf")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of: {', '.join(SECTIONS)}")
    args = parser.parse_args()
    args.tag = "perf-" + time.strftime("%Y%m%d-%H%M%S").lower()
    args.out.mkdir(parents=True, exist_ok=True)
    args.shared = args.out / "shared"
    only = set(filter(None, args.only.split(",")))
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")

    results: dict = {"profile": args.profile, "cores": os.cpu_count()}
    if "isolation" in only:
        results["isolation"] = isolation(args)
    if "knobs" in only:
        results["knobs"] = knobs(args)
    if "shapes" in only:
        results["model_shapes"] = model_shape_ceiling()
    if "data" in only:
        results["data_load"] = data_load(args)
    if "overhead" in only:
        results["overhead"] = overhead(args, args.overhead_backend)
    if "gather" in only:
        source = run_dir(args, f"{args.tag}-all")
        if not source.exists():
            source = run_dir(args, f"{args.tag}-gsrc")
            bench(args, f"{args.tag}-gsrc", "--backend", "tensorflow")
        results["gather"] = gather_cost(args, source)
    (args.out / "perf.json").write_text(json.dumps(results, indent=2))

    rows = table(results)
    widths = [max(len(r[i]) for r in rows + [("figure", "goal", "measured", "met")]) for i in range(4)]
    for row in [("figure", "goal", "measured", "met"), tuple("-" * w for w in widths)] + rows:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    print(f"\nfull results: {args.out / 'perf.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
