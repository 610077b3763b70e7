"""Finish a run's paperwork: keep it in the history, judge it against its baseline, write the report.

``publish`` is what a session calls once the analysis exists (the pytest
plugin at the end of ``pytest benchmarks/``); it knows nothing about pytest.
``python -m harness.publish <run folder>`` re-analyses a finished run folder
and writes its report again (say, after a template change), without
training anything.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import baselines, history, thumbnails
from harness.analysis import TABLE_IMAGES, analyse
from harness.errors import HarnessError
from harness.executors.base import JobResult, JobState
from harness.gather import RunResults, gather
from harness.report import write_reports
from harness.rundir import RunFolder
from harness.workload import layout

ENSEMBLE_JSON = "ensemble.json"


def publish(analysis: dict[str, Any], run_dir: Path, reports_dir: Path | None, *,
            shared_dir: Path | None = None, history_dir: Path | None = None,
            baseline_path: Path | None = None, recording: bool = False,
            say: Callable[[str], None] | None = None) -> list[Path]:
    """Append the run to its profile's history, assess its baseline, write report.html / .md.

    ``shared_dir`` defaults to the run folder's grandparent (``<shared>/runs/<id>``);
    ``history_dir`` to ``<shared>/history``. Returns the report paths (the run
    folder's first, then the copies in ``reports_dir/<run-id>/``). Problems
    with the history or the thumbnails are shown in the report, never raised.
    """
    run_dir = Path(run_dir)
    shared_dir = Path(shared_dir) if shared_dir else run_dir.parent.parent
    history_dir = Path(history_dir) if history_dir else history.default_dir(shared_dir)
    profile = ((analysis.get("settings") or {}).get("profile") or {}).get("name") or "unknown"
    problems = []
    try:
        history.append(history_dir, analysis, profile)
    except (OSError, ValueError, HarnessError) as err:
        problems.append(f"could not add this run to the history in {history_dir} ({err})")
    past = history.load(history_dir, profile)
    assessment = baselines.assess(analysis, baseline_path, recording=recording)
    images = thumbnails.load(analysis, shared_dir)
    paths = write_reports(analysis, run_dir, reports_dir, history=past.entries,
                          history_problems=problems + past.problems, images=images,
                          baseline=assessment)
    if say is not None:
        for problem in problems + past.problems:
            say(f"history: {problem}")
    return paths


def load_run(run_dir: Path) -> RunResults:
    """Gather a finished run folder as the session would, from the files it left."""
    run_dir = Path(run_dir).resolve()
    folder = RunFolder(run_dir.parent.parent, run_dir.name)
    settings = folder.read_settings()
    if settings is None:
        raise HarnessError(f"{run_dir} has no {layout.RUN_JSON}; give the folder of a run "
                           "(<shared>/runs/<run-id>)")
    earlier = _read_json(run_dir / ENSEMBLE_JSON).get("statuses", {})
    backends = settings.get("backends", [])
    statuses: dict[tuple[str, str], JobResult] = {}
    skipped = {}
    for name in backends:
        for phase in layout.PHASES:
            status = folder.read_status(name, phase)
            if status is None and f"{name}/{phase}" in earlier:
                status = JobResult.from_json(earlier[f"{name}/{phase}"])
            if status is not None:
                statuses[(name, phase)] = status
        states = [statuses.get((name, p)) for p in layout.PHASES]
        if all(s is None for s in states):
            skipped[name] = "no job ran for it in this run"
        elif all(s is not None and s.state is JobState.SKIPPED for s in states):
            skipped[name] = states[0].reason
    return gather(folder, backends, statuses, skipped)


def reanalyse(run_dir: Path, method: str = "seed", table_images: int = TABLE_IMAGES) -> dict[str, Any]:
    """The analysis of a finished run folder, with settings and statuses as the session adds them."""
    results = load_run(run_dir)
    analysis = analyse(results, method, table_images=table_images)
    analysis["settings"] = results.settings
    analysis["statuses"] = {f"{m.backend}/{p}": s.to_json() for m in results.members.values()
                            for p, s in sorted(m.statuses.items())}
    return analysis


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
    parser.add_argument("--write-analysis", action="store_true",
                        help=f"also rewrite the run's {ENSEMBLE_JSON}")
    args = parser.parse_args(argv)
    try:
        analysis = reanalyse(args.run_dir, args.ensemble, args.images)
        if args.write_analysis:
            layout.atomic_write_json(str(args.run_dir / ENSEMBLE_JSON), analysis)
        profile = ((analysis.get("settings") or {}).get("profile") or {}).get("name") or "unknown"
        baseline = baselines.path_for(args.baselines, profile) if args.baselines else None
        paths = publish(analysis, args.run_dir, args.out, history_dir=args.history_dir,
                        baseline_path=baseline, say=print)
    except (HarnessError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
