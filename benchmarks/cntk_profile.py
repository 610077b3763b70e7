"""Where a Keras 2 backend's training step spends its time (CNTK by default): a profile, not a guess.

    .venv/bin/python benchmarks/cntk_profile.py [--backend cntk] [--steps 60] [--threads 1]

Runs, in the backend's own runtime (built by the harness under ``.kbench``), the
seed's CNN on random CIFAR-shaped batches of 32: warm-up steps, then ``--steps``
``train_on_batch`` calls under ``cProfile``, once per image layout. Prints each
layout's img/s and how the step's time splits between the backend's own
compute (its C/C++ calls), Keras 2's glue for that backend, Keras itself and
the rest, with the top functions by own time. Run it on a quiet machine: it is
a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import backends as registry
from harness import runtimes, tuning
from harness.executors.local import stage_workload

PROFILED = r"""
import cProfile, json, os, pstats, sys, time
import numpy as np
from harness.workload.__main__ import _import_keras
from harness.workload import model

backend, steps, layout = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keras = _import_keras(backend)
keras.backend.set_image_data_format(layout)
shape = (3, 32, 32) if layout == "channels_first" else (32, 32, 3)
net = model.build(keras, shape, 10, 1e-4)
rng = np.random.RandomState(0)
x = rng.rand(32, *shape).astype("float32")
y = np.eye(10, dtype="float32")[rng.randint(0, 10, 32)]
for _ in range(5):
    net.train_on_batch(x, y)
profiler = cProfile.Profile()
started = time.perf_counter()
profiler.enable()
for _ in range(steps):
    net.train_on_batch(x, y)
profiler.disable()
wall = time.perf_counter() - started
stats = pstats.Stats(profiler)
rows = []
for (path, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():
    rows.append({"where": "%s:%s(%s)" % (path, line, name), "own_s": tt, "calls": nc})
rows.sort(key=lambda r: -r["own_s"])
print(json.dumps({"wall_s": wall, "steps": steps, "rows": rows[:400]}))
"""

GROUPS = (
    ("the backend's own compute (C/C++ calls)", ("cntk_py", "cntk/", "theano/", "method '", "built-in method")),
    ("Keras 2's glue for the backend", ("keras/backend/",)),
    ("Keras itself (engine, layers, optimizers)", ("keras/",)),
)


def group_of(where: str) -> str:
    for name, needles in GROUPS:
        if any(needle in where for needle in needles):
            return name
    return "the rest (numpy, Python)"


def profile(backend_name: str, steps: int, threads: int, layout: str) -> dict:
    backend = registry.get(backend_name)
    runtime = runtimes.resolve(backend.runtime, REPO / ".kbench")
    env = dict(os.environ, **tuning.job_env(backend, threads), **runtime.env,
               PYTHONPATH=str(stage_workload(REPO / ".kbench")))
    done = subprocess.run([str(runtime.python), "-c", PROFILED, backend_name, str(steps), layout], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{backend_name} ({layout}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    total = sum(row["own_s"] for row in result["rows"])
    shares: dict[str, float] = {}
    for row in result["rows"]:
        shares[group_of(row["where"])] = shares.get(group_of(row["where"]), 0.0) + row["own_s"]
    return {"layout": layout, "images_per_s": round(32 * steps / result["wall_s"], 1),
            "step_ms": round(1000 * result["wall_s"] / steps, 2),
            "shares": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
            "top": [{**row, "own_s": round(row["own_s"], 3)} for row in result["rows"][:8]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="cntk")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "out" / "perf" / "cntk_profile.json")
    args = parser.parse_args()
    results = [profile(args.backend, args.steps, args.threads, layout)
               for layout in ("channels_first", "channels_last")]
    for entry in results:
        print(f"\n{args.backend}, {entry['layout']}, {args.threads} thread(s): {entry['images_per_s']} img/s "
              f"({entry['step_ms']} ms per step of 32, under cProfile)")
        for group, share in entry["shares"].items():
            print(f"  {share * 100:5.1f}%  {group}")
        print("  top functions by own time:")
        for row in entry["top"]:
            print(f"    {row['own_s']:7.3f} s  {row['calls']:6d} calls  {row['where'][-110:]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nfull results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
