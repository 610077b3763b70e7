"""The GPU check: the Keras 3 backends on one NVIDIA GPU, through the unchanged workload program.

    python benchmarks/gpu.py --dataset PATH [--backends jax,torch] [--budget-s 480] [--out DIR]

For a machine with one GPU and a Python whose Keras 3 backends are CUDA builds
(the local executor is for CPUs: it pins jobs to cores and keeps JAX off
accelerators). The script writes the run settings the harness would write,
runs each backend's ``train`` and ``predict`` jobs one after another (so no
job shares the GPU), and prints per backend: training and inference images/s,
their share of the GPU's float32 matrix-multiply rate measured at the start
(with and without TF32), and the accuracies; then the seed-weighted ensemble.

The ``full`` profile is 50 epochs on all 50,000 training images. When that
cannot finish within ``--budget-s``, a probe (2 epochs on 10,000 images per
backend) measures each backend's epoch time first, and every backend then
trains the same, smaller number of epochs on all 50,000 images: same data,
batch size and steps for all, and the table says how many epochs ran.
Results go to ``<out>/gpu.json`` and ``<out>/gpu.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import profiles
from harness.run_store import RunStore
from harness.scoring import metrics
from harness.workload import flops, layout

MATMUL_PROBE = r"""
import json, time, torch
torch.backends.cuda.matmul.allow_tf32 = False
n = 8192
a = torch.randn(n, n, device="cuda"); b = torch.randn(n, n, device="cuda")
def rate(reps=10):
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(reps): a @ b
    torch.cuda.synchronize(); return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12
fp32 = rate()
torch.backends.cuda.matmul.allow_tf32 = True
tf32 = rate()
p = torch.cuda.get_device_properties(0)
print(json.dumps({"gpu": torch.cuda.get_device_name(0), "memory_gib": round(p.total_memory / 2**30, 1),
                  "multiprocessors": p.multi_processor_count, "torch": torch.__version__,
                  "cuda": torch.version.cuda, "fp32_tflops": round(fp32, 1), "tf32_tflops": round(tf32, 1)}))
"""
PROBE_IMAGES = 10_000
PROBE_EPOCHS = 2
JOB_ALLOWANCE_S = 40.0
"""A guess at the start-up, compilation and evaluation of one job, before the probe measures them."""
JOB_MARGIN_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="an image-folder data set (folder or .tar.gz)")
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall time for everything")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "out" / "gpu")
    parser.add_argument("--shared", type=Path, default=None, help="default: <out>/shared")
    parser.add_argument("--profile", default="full", help="a profile name or .json file (default: full)")
    parser.add_argument("--probe-images", type=int, default=PROBE_IMAGES)
    args = parser.parse_args()
    started = time.monotonic()
    shared = args.shared or args.out / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    summary: dict = {"started_at": dt.datetime.now().isoformat(timespec="seconds"), "backends": {}}

    def save() -> None:
        (args.out / "gpu.json").write_text(json.dumps(summary, indent=2))
        (args.out / "gpu.md").write_text(table(summary))

    summary["device"] = _matmul_rates()
    print("device:", json.dumps(summary["device"]), flush=True)
    save()

    full = profiles.get(args.profile)
    n_train = full.n_train or 50_000
    dataset = {"kind": "path", "path": str(Path(args.dataset).resolve())}
    epochs = full.epochs
    remaining = args.budget_s - (time.monotonic() - started)
    if remaining < len(backends) * (2 * JOB_ALLOWANCE_S + 3 * full.epochs):  # cannot be sure it fits
        probe = dataclasses.replace(full, name="gpu-probe", n_train=min(args.probe_images, n_train), n_test=1000,
                                    epochs=PROBE_EPOCHS)
        summary["probe"] = _run("gpu-probe", probe, backends, dataset, shared, phases=("train",))
        rows = [r["train"] for r in summary["probe"].values() if "train" in r]
        scale = n_train / min(args.probe_images, n_train)
        per_epoch = sum(r["epoch_s"] for r in rows) * scale
        # start-up, data, compilation and evaluation, as the probe measured them, for train and predict
        overhead = sum(2 * (r["total_s"] - r["epochs"] * r["epoch_s"]) + JOB_MARGIN_S for r in rows)
        remaining = args.budget_s - (time.monotonic() - started) - overhead
        epochs = max(1, min(full.epochs, math.floor(0.9 * remaining / max(per_epoch, 1e-9))))
        print(f"probe: {per_epoch:.1f} s per epoch of {n_train} images for all backends together; "
              f"{epochs} of the full profile's {full.epochs} epochs fit the budget", flush=True)
    profile = full if epochs == full.epochs else dataclasses.replace(full, name=f"{full.name}-{epochs}ep", epochs=epochs)
    summary["profile"] = profile.to_json()
    summary["full_epochs"] = full.epochs
    save()
    summary["backends"] = _run("gpu-" + profile.name, profile, backends, dataset, shared,
                               deadline=started + args.budget_s, on_done=save, into=summary["backends"])
    summary["ensemble"] = _ensemble(shared, "gpu-" + profile.name, summary["backends"])
    summary["wall_s"] = round(time.monotonic() - started, 1)
    save()
    print(table(summary), flush=True)
    return 0 if all("predict" in r for r in summary["backends"].values()) else 1


def _matmul_rates() -> dict:
    done = subprocess.run([sys.executable, "-c", MATMUL_PROBE], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or "matmul probe failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(run_id, profile, backends, dataset, shared, phases=("train", "predict"), deadline=None,
         on_done=None, into=None) -> dict:
    folder = RunStore(shared, run_id)
    folder.write_settings({
        "schema": layout.SCHEMA_VERSION, "run_id": run_id,
        "created_at": dt.datetime.now().isoformat(timespec="seconds"),
        "profile": profile.to_json(), "dataset": dataset, "backends": backends, "executor": "gpu.py",
    })
    results = {} if into is None else into
    for backend in backends:
        row = results.setdefault(backend, {})
        for phase in phases:
            timeout = None if deadline is None else max(30.0, deadline - time.monotonic())
            env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1", PYTHONHASHSEED="0",
                       XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
            log = folder.backend_dir(backend) / f"{phase}.gpu.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, "-m", "harness.workload", phase, "--shared", str(shared),
                       "--run-id", run_id, "--backend", backend]
            print(f"{run_id}: {backend} {phase} ...", flush=True)
            try:
                with open(log, "w") as out:
                    code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                          timeout=timeout, check=False).returncode
            except subprocess.TimeoutExpired:
                code = "timed out"
            if code != 0:
                said = [line for line in log.read_text().splitlines() if not line.startswith(":::KBENCH")]
                row["error"] = f"{phase}: exit {code}: " + " | ".join(said[-2:])
                print(f"  failed: {row['error']}", flush=True)
                break
            row[phase] = _read(folder, backend, phase)
            print(f"  {json.dumps(row[phase])}", flush=True)
            if on_done:
                on_done()
    return results


def _read(folder: RunStore, backend: str, phase: str) -> dict:
    data = json.loads(folder.file(backend, layout.result_name(phase)).read_text())
    timing = data["timing"]
    if phase == "train":
        return {"images_per_s": timing["steady_images_per_s"], "epoch_s": float(np.median(timing["epoch_seconds"][1:]
                or timing["epoch_seconds"])), "first_epoch_s": timing["first_epoch_s"],
                "startup_s": timing["startup_s"], "train_s": timing["train_seconds"], "total_s": timing["total_s"],
                "epochs": len(timing["epoch_seconds"]), "flops_per_image": data["flops"]["train"],
                "train_accuracy": data["final"]["train_accuracy"], "test_accuracy": data["final"]["test_accuracy"],
                "versions": {k: data["environment"].get(k) for k in ("python", "keras", "backend_version")}}
    return {"images_per_s": timing["images_per_s"], "p50_ms": timing["p50_ms"], "p99_ms": timing["p99_ms"],
            "batch": timing["batch_size"], "flops_per_image": data["flops"]["forward"]}


def _ensemble(shared: Path, run_id: str, rows: dict) -> dict:
    """The seed's rule (weights = final training accuracy) over the members that finished."""
    folder = RunStore(shared, run_id)
    members = [b for b, r in rows.items() if "predict" in r]
    if not members:
        return {}
    probs = [np.load(folder.file(b, "probs_test.npy")) for b in members]
    labels = np.load(folder.file(members[0], "labels_test.npy"))
    weights = np.array([rows[b]["train"]["train_accuracy"] for b in members])
    p = np.tensordot(weights / weights.sum(), np.stack(probs), axes=1)
    return {"members": members, "test_accuracy": metrics.accuracy(p, labels), "nll": metrics.nll(p, labels),
            "ece": metrics.expected_calibration_error(p, labels),
            "best_member_accuracy": max(metrics.accuracy(q, labels) for q in probs)}


def table(summary: dict) -> str:
    device = summary.get("device", {})
    profile = summary.get("profile", {})
    fp32, tf32 = device.get("fp32_tflops"), device.get("tf32_tflops")
    lines = [f"GPU: {device.get('gpu', '?')}; measured matmul: float32 {fp32} TFLOP/s, TF32 {tf32} TFLOP/s",
             (f"profile: {profile.get('name', '?')} ({profile.get('epochs', '?')} of {summary.get('full_epochs', '?')}"
             f" epochs, {profile.get('n_train') or 50000} training images, batch {profile.get('batch_size', '?')})"),
             "", "| backend | train img/s | share fp32 | share TF32 | infer img/s | p50 ms | train acc | test acc |",
             "|---|---|---|---|---|---|---|---|"]

    def share(rate, flops_per_image, peak_tflops):
        mfu = flops.utilisation(rate, flops_per_image, peak_tflops * 1000 if peak_tflops else None)
        return "-" if mfu is None else f"{mfu:.2%}"

    for backend, row in summary.get("backends", {}).items():
        train, pred = row.get("train", {}), row.get("predict", {})
        lines.append(" | ".join([
            f"| {backend}", str(train.get("images_per_s", "-")),
            share(train.get("images_per_s"), train.get("flops_per_image"), fp32),
            share(train.get("images_per_s"), train.get("flops_per_image"), tf32),
            str(pred.get("images_per_s", "-")), str(pred.get("p50_ms", "-")),
            f"{train['train_accuracy']:.3f}" if train else "-", f"{train['test_accuracy']:.3f}" if train else "-",
        ]) + " |" + (f" {row['error']}" if "error" in row else ""))
    ensemble = summary.get("ensemble")
    if ensemble:
        lines.append(f"\nseed-weighted ensemble of {', '.join(ensemble['members'])}: test accuracy "
                     f"{ensemble['test_accuracy']:.4f} (best member {ensemble['best_member_accuracy']:.4f}), "
                     f"NLL {ensemble['nll']:.3f}, ECE {ensemble['ece']:.3f}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
