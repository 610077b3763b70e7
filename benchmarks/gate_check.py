"""Measure the speed gate itself: how often it cries wolf, and how often it catches a slowdown.

    .venv/bin/python benchmarks/gate_check.py --dataset ../shared/datasets/cifar10-jpeg.tar.gz

1. one smoke run of every backend (``pytest benchmarks/ --profile smoke``), its
   benchmark JSON saved;
2. ``--tries`` more runs of the same code, each compared in turn with the one
   before it by the gate CI uses (``harness.speed_gate.judge``, threshold
   ``--threshold``): every "slower" verdict here is a false alarm;
3. ``--tries`` runs with every training step of ``--slow`` stretched by
   ``--factor`` (the ``slow-F`` fault, ``KBENCH_FAULT``), each compared with the
   last unchanged run: every backend flagged here is a catch (or, for the
   others, a false alarm).

Runs 2 and 3 reuse the first run's training, prediction and fidelity jobs and
run the speed phase again (``--rerun all/speed``): the gate reads only the
speed phase, each run's speed jobs start fresh processes, and so a run costs
about a minute instead of four. Results also go to ``<out>/gate_check.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import speed_gate

PYTHON = sys.executable


def smoke(args, run_id: str, out: Path, *extra: str, fault: str | None = None) -> dict:
    command = [PYTHON, "-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider", "-p", "no:kmock",
               "-p", "no:hypothesispytest", "--backend", args.backends, "--profile", "smoke",
               "--dataset", args.dataset, "--shared-dir", str(args.shared), "--run-id", run_id,
               "--reports-dir", str(args.out / "reports"), "--benchmark-json", str(out), *extra]
    env = dict(os.environ)
    env.pop("KBENCH_FAULT", None)
    if fault:
        env["KBENCH_FAULT"] = fault
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # an accuracy case may fail; the gate needs only the speed cases
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        print(f"  (pytest exited {done.returncode}: {'; '.join(failed)[:300] or done.stderr[-300:]})")
        if not out.exists():
            raise SystemExit(f"{' '.join(command[3:])} exited {done.returncode} without {out}")
    print(f"  {out.name}: {time.perf_counter() - started:.0f} s", flush=True)
    return speed_gate.read_samples(out)


def verdicts(report: speed_gate.GateReport) -> dict:
    return {v.backend: {"state": v.state, "ratio": v.ratio, "low": v.low, "high": v.high} for v in report.verdicts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=os.environ.get("KBENCH_DATASET", "keras"))
    parser.add_argument("--backends", default="all")
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--slow", default="jax", help="the backend to slow down")
    parser.add_argument("--factor", type=float, default=1.25)
    parser.add_argument("--threshold", type=float, default=0.10)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "out" / "gate-check")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.shared = args.out / "shared"
    run_id = "gate-" + time.strftime("%Y%m%d-%H%M%S")
    again = ("--rerun", "all/speed", "-k", "test_speed")

    print(f"base: a full smoke run ({run_id})", flush=True)
    previous = smoke(args, run_id, args.out / f"{run_id}-0.json")
    unchanged, slowed = [], []
    for i in range(1, args.tries + 1):
        current = smoke(args, run_id, args.out / f"{run_id}-same{i}.json", *again)
        report = speed_gate.judge(previous, current, threshold=args.threshold)
        unchanged.append(verdicts(report))
        print(f"unchanged {i}: " + "; ".join(report.lines()), flush=True)
        previous = current
    fault = f"{args.slow}/speed:slow-{args.factor:g}"
    for i in range(1, args.tries + 1):
        current = smoke(args, run_id, args.out / f"{run_id}-slow{i}.json", *again, fault=fault)
        report = speed_gate.judge(previous, current, threshold=args.threshold)
        slowed.append(verdicts(report))
        print(f"slowed {i}: " + "; ".join(report.lines()), flush=True)

    false_alarms = sum(1 for run in unchanged for v in run.values() if v["state"] == "slower")
    caught = sum(1 for run in slowed if run.get(args.slow, {}).get("state") == "slower")
    others = sum(1 for run in slowed for name, v in run.items() if name != args.slow and v["state"] == "slower")
    summary = {"threshold": args.threshold, "tries": args.tries, "slowed": args.slow, "factor": args.factor,
               "unchanged_comparisons_flagged": false_alarms, "slowdowns_caught": caught,
               "other_backends_flagged_in_slowed_runs": others, "unchanged": unchanged, "slowed_runs": slowed}
    (args.out / "gate_check.json").write_text(json.dumps(summary, indent=2))
    print(f"\nunchanged runs compared in turn: {false_alarms} regression(s) raised over {args.tries} comparisons")
    print(f"{args.slow} slowed {args.factor:g}x: flagged in {caught} of {args.tries} tries "
          f"(other backends flagged: {others})")
    print(f"full results: {args.out / 'gate_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
