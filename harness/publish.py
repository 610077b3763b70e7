"""``python -m harness.publish <run folder>``: write a finished run's report again, without training.

The work is ``harness.run_end.rerender``; this module only parses the command
line (until the ``kbench`` command line takes it over). ``load_run`` and
``reanalyse`` are re-exported for callers written before ``harness.run_end``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.run_end import load_run, reanalyse, rerender
from harness.scoring.analysis import TABLE_IMAGES
from harness.workload import layout

__all__ = ["load_run", "main", "reanalyse"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.publish", description=(
        "Analyse a finished run folder again and write its report (report.html, report.md)."))
    parser.add_argument("run_dir", type=Path, help="the run's folder, <shared>/runs/<run-id>")
    parser.add_argument("--ensemble", default="seed", help="the ensemble variant to check (default seed)")
    parser.add_argument("--out", type=Path, default=None, help="also copy the reports to OUT/<run-id>/")
    parser.add_argument("--baselines", type=Path, default=None,
                        help="folder of <profile>.json baselines to judge the run against")
    parser.add_argument("--history-dir", type=Path, default=None,
                        help="history store (default <shared>/history); the run is appended to it")
    parser.add_argument("--images", type=int, default=TABLE_IMAGES,
                        help=f"test images in the per-image table (default {TABLE_IMAGES})")
    parser.add_argument("--stored", action="store_true",
                        help=f"render the run's {layout.ENSEMBLE_JSON} as it is instead of analysing "
                             "its job files again (an older run, or one whose job files are gone)")
    parser.add_argument("--write-analysis", action="store_true",
                        help=f"also rewrite the run's {layout.ENSEMBLE_JSON}")
    args = parser.parse_args(argv)
    try:
        end = rerender(args.run_dir, reports_dir=args.out, baselines_dir=args.baselines,
                       history_dir=args.history_dir, method=args.ensemble, table_images=args.images,
                       stored=args.stored, write_analysis=args.write_analysis, say=print)
    except (HarnessError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in end.lines:
        print(line)
    for path in end.report_paths:
        print(f"report: {path}")
    return 0 if end.report_paths else 1


if __name__ == "__main__":
    sys.exit(main())
