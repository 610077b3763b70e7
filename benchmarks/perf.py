"""Measure every performance goal in one run and print a table: figure, goal, measured.

    .venv/bin/python benchmarks/perf.py --profile default --dataset ../shared/datasets/cifar10-jpeg.tar.gz

What it does, in order (all on the local executor, on this machine):

1. the float32 matrix-multiply ceiling (numpy's BLAS, all cores and one core);
2. ``pytest benchmarks/ --backend all`` one job at a time (threads = cores), and
   again with two jobs at once (one thread each), side by side: session wall
   time, CPU run-queue length while it ran, each backend's training images/s
   and model FLOP utilisation (MFU) against the ceiling;
3. the harness's own cost: one backend's training job through
   ``pytest benchmarks/`` against the same workload command run directly,
   alternated over ``--rounds`` rounds;
4. loading all of CIFAR-10 from the shared cache with five jobs starting at once;
5. gathering, ensembling and reporting five members on 10,000 test images;
6. peak resident memory of every job and of the harness.

Goals are not assertions: the table says met or not, and why numbers are what
they are belongs in the notes. Results also go to ``<out>/perf.json``.
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
from harness.scoring.run_analysis import read_analysis
from harness.workload import data, flops, layout

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


def bench(args, run_id: str, *extra: str) -> tuple[float, subprocess.CompletedProcess]:
    command = [PYTHON, "-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider", *NO_TEST_PLUGINS,
               "--profile", args.profile, "--dataset", args.dataset, "--shared-dir", str(args.shared),
               "--run-id", run_id, *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
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
def ceiling() -> dict:
    """numpy float32 matmul rate at every core and at one core (threads set in fresh processes)."""
    out = {}
    code = "from harness.workload import flops; print(flops.matmul_gflops(size=2048, seconds=3.0))"
    for threads in (os.cpu_count(), 1):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   PYTHONPATH=str(REPO))
        value = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True, check=True)
        out[threads] = float(value.stdout.strip())
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
            "job_matmul_gflops": train["flops"]["matmul_gflops"],
            "job_mfu": train["flops"]["model_flop_utilisation"],
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
    from harness.rundir import RunFolder
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
    results = gather(RunFolder(args.shared, run_id), names, statuses)
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
def table(results: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    top = results["ceiling_gflops"]
    cores = os.cpu_count()
    seq, par = results["sequential"], results["parallel"]
    default = par if "parallel" in results.get("ran", ["parallel"]) else seq
    rows.append(("float32 matmul ceiling", "measured each run",
                 f"{top[cores]:.0f} GFLOP/s on {cores} cores, {top[1]:.0f} on one", "-"))
    shapes = results["model_shapes"]
    share = 100 * shapes["effective_training_gflops"] / shapes["square_gflops"]
    measured = (f"{shapes['effective_training_gflops']:.0f} GFLOP/s vs {shapes['square_gflops']:.0f} square "
                f"= {share:.0f}%")
    rows.append(("the same BLAS on this model's GEMM shapes (batch 32, 1 thread)", "why MFU stops short",
                 measured, "-"))
    per_job_ceiling = top[1] * default["threads"] if default["threads"] < cores else top[cores]
    for name, m in default["members"].items():
        mfu = flops.utilisation(m["train_images_per_s"], m["train_flops_per_image"], per_job_ceiling) or 0.0
        keras3 = registry.get(name).keras_line == "3"
        measured = (f"{m['train_images_per_s']:.0f} img/s on {default['threads']} thread(s) = {100 * mfu:.0f}% "
                    f"of {per_job_ceiling:.0f} GFLOP/s (job's own matmul: {m['job_matmul_gflops']:.0f})")
        rows.append((f"{name} training", ">= 50% of ceiling" if keras3 else "(no target)", measured,
                     ("yes" if mfu >= 0.5 else "no") if keras3 else "-"))
    if "overhead" in results:
        o = results["overhead"]
        measured = (f"wall {o['overhead_pct']:+.1f}% (medians {o['median_through_s']:.1f} s vs "
                    f"{o['median_direct_s']:.1f} s); added by the harness {o['attributable_s']:.1f} s = "
                    f"{o['attributable_pct']:.1f}% ({statistics.median(o['outside_job_s']):.1f} s outside the job, "
                    f"start-up {o['job_startup_s']['through']:.1f} vs {o['job_startup_s']['direct']:.1f} s); "
                    f"steady epochs through/direct: {o['steady_epoch_s']['through']} / {o['steady_epoch_s']['direct']} s")
        verdict = f"wall {'yes' if o['overhead_pct'] <= 3 else 'no'}, added {'yes' if o['attributable_pct'] <= 3 else 'no'}"
        rows.append((f"harness cost ({o['backend']} training, {o['rounds']} rounds alternated)", "<= 3%", measured,
                     verdict))
    measured = (f"{par['wall_s']:.0f} s ({par['parallel']} jobs x {par['threads']} thread) vs {seq['wall_s']:.0f} s "
                f"({seq['parallel']} job x {seq['threads']} threads)")
    rows.append(("--backend all, jobs at once vs one at a time", "parallel <= sequential", measured,
                 "yes" if par["wall_s"] <= seq["wall_s"] else "no"))
    busiest = max((m["busy_cores_train"] or 0) for m in default["members"].values())
    measured = (f"busiest job {busiest:.2f} cores for {default['threads']} thread(s); runnable threads "
                f"{default['run_queue_mean']} in parallel, {seq['run_queue_mean']} one at a time")
    rows.append(("no oversubscription", f"<= {cores} cores in all", measured,
                 "yes" if busiest * default["parallel"] <= cores + 0.1 else "no"))
    d = results["data_load"]
    rows.append((f"data load, all CIFAR-10 ({d['images']} images), 5 jobs at once", "< 1 s each, one decode",
                 f"max {d['max_s']:.2f} s (first decode {d['first_use_s']:.1f} s)", "yes" if d["max_s"] < 1 else "no"))
    g = results["gather"]
    rows.append((f"gather + ensemble + report, {g['members']} members x {g['test_images']} images", "< 2 s",
                 f"{g['seconds']:.2f} s" + ("" if g["report_written"] else " (no report renderer)"),
                 "yes" if g["seconds"] < 2 else "no"))
    rss = {name: (m["peak_rss_mb_train"], m["peak_rss_mb_predict"]) for name, m in default["members"].items()}
    measured = (", ".join(f"{n} {t:.0f}/{p or 0:.0f}" for n, (t, p) in rss.items())
                + f"; harness {default['harness'].get('peak_rss_mb', 0):.0f}")
    rows.append(("peak memory per job (train / predict, MiB)", "recorded", measured, "yes"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--dataset", default=os.environ.get("KBENCH_DATASET", "keras"))
    parser.add_argument("--backends", default="all")
    parser.add_argument("--overhead-backend", default="tensorflow")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "out" / "perf")
    parser.add_argument("--skip", default="", help="comma list of: overhead, parallel")
    args = parser.parse_args()
    args.tag = "perf-" + time.strftime("%Y%m%d-%H%M%S").lower()
    args.out.mkdir(parents=True, exist_ok=True)
    args.shared = args.out / "shared"
    skip = set(filter(None, args.skip.split(",")))
    cores = os.cpu_count()

    results: dict = {"profile": args.profile, "cores": cores, "ceiling_gflops": ceiling(),
                     "model_shapes": model_shape_ceiling()}
    print(f"ceiling: {results['ceiling_gflops']}; at the model's GEMM shapes: {results['model_shapes']}", flush=True)
    results["data_load"] = data_load(args)
    print(f"data load: {results['data_load']}", flush=True)
    results["sequential"] = session(args, f"{args.tag}-seq", parallel=1, threads=cores)
    print(f"sequential: {results['sequential']['wall_s']} s", flush=True)
    if "parallel" not in skip:
        results["parallel"] = session(args, f"{args.tag}-par", parallel=cores, threads=1)
        print(f"parallel: {results['parallel']['wall_s']} s", flush=True)
    else:
        results["parallel"] = results["sequential"]
    if "overhead" not in skip:
        results["overhead"] = overhead(args, args.overhead_backend)
        print(f"overhead: {results['overhead']}", flush=True)
    results["gather"] = gather_cost(args, run_dir(args, f"{args.tag}-seq"))
    (args.out / "perf.json").write_text(json.dumps(results, indent=2))

    rows = table(results)
    widths = [max(len(r[i]) for r in rows + [("figure", "goal", "measured", "met")]) for i in range(4)]
    for row in [("figure", "goal", "measured", "met"), tuple("-" * w for w in widths)] + rows:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    print(f"\nfull results: {args.out / 'perf.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
