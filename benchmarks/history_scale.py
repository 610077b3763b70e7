"""Re-render a report over a huge run history: time, peak memory and report size.

    .venv/bin/python benchmarks/history_scale.py [--runs 100000] [--unreadable 100000]

Writes a synthetic finished run and a history of ``--runs`` readable earlier
runs plus ``--unreadable`` lines of another schema, then runs
``kbench report`` on it in a child process and prints its wall
time, peak resident memory and the size of report.html / report.md. This is
how the figures for issue 18 (hostile input: history) were measured.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import history
from harness.run_end import reanalyse
from tests.run_fixtures import RunSpec, write_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="readable earlier runs in the history")
    parser.add_argument("--unreadable", type=int, default=0, help="lines of another schema in the history")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp)
        run_dir = write_run(shared, RunSpec())
        line = history.entry(reanalyse(run_dir))
        store = history.path_for(history.default_dir(shared), "smoke")
        store.parent.mkdir(parents=True)
        with open(store, "w") as handle:
            old = json.dumps(dict(line, schema=0)) + "\n"
            handle.writelines(old for _ in range(args.unreadable))
            handle.writelines(json.dumps(dict(line, run_id=f"earlier-{i}")) + "\n" for i in range(args.runs))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run_dir)], check=False, cwd=ROOT,
                              capture_output=True, text=True)
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        sizes = {name: (run_dir / name).stat().st_size for name in ("report.html", "report.md")
                 if (run_dir / name).exists()}
        print(f"history: {args.runs} readable runs + {args.unreadable} unreadable lines "
              f"({store.stat().st_size / 1e6:.1f} MB)")
        print(f"publish: exit {done.returncode}, {took:.2f} s, peak RSS {peak:.0f} MiB, "
              + ", ".join(f"{k} {v / 1e3:.0f} KB" for k, v in sizes.items())
              + f", {len(done.stdout.splitlines()) + len(done.stderr.splitlines())} lines printed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
