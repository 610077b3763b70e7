"""The end of a run, in one place: history, baseline (recorded or judged), thumbnails, report.

Every way a run ends comes through here: the session at the end of a run
(``finish``), and the re-render of a finished run (``rerender``, behind
``kbench report``), which analyses the run's store again
(``harness.scoring.analysis.analyse_run``, as a live run does) or renders
the stored ``ensemble.json`` as it is. Nothing here knows pytest: the baseline
verdicts come back as a ``harness.baselines.Assessment``.

Problems with the history, the thumbnails, recording a baseline or writing
the report never raise: they come back as lines to show, and the report says
what it could not show. Finished results are never lost to them.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import baselines, history
from harness.baselines import Assessment
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.report import thumbnails
from harness.run_store import RunStore
from harness.scoring.analysis import TABLE_IMAGES, analyse_run
from harness.scoring.gather import finished_run
from harness.scoring.record import RunAnalysis
from harness.workload import layout


@dataclass(frozen=True)
class EndSettings:
    """Where the end of a run reads and writes, and whether it records the baseline."""

    shared_dir: Path
    history_dir: Path
    reports_dir: Path | None = None
    """Also copy the reports to ``<reports_dir>/<run-id>/``."""
    baseline_path: Path | None = None
    """The profile's baseline file; None: no baseline folder was given."""
    record_baseline: bool = False

    @classmethod
    def of(cls, config: RunConfig) -> EndSettings:
        return cls(shared_dir=config.shared_dir, history_dir=config.history_dir,
                   reports_dir=config.reports_dir, baseline_path=config.baseline_path,
                   record_baseline=config.record_baseline)


@dataclass
class RunEnd:
    """What the end of a run produced."""

    analysis: RunAnalysis
    assessment: Assessment
    report_paths: list[Path] = field(default_factory=list)
    """The run folder's report.html and report.md first, then their copies."""
    lines: list[str] = field(default_factory=list)
    """What to tell the user: a recorded baseline, a report that could not be written, history problems."""
    missing: str | None = None
    """Why the run has no report (one line naming the cause and ``kbench report <run>``), or None: a
    benchmark session whose run ends with one set fails."""


def judge(analysis: RunAnalysis, settings: EndSettings) -> Assessment:
    """The run's baseline verdicts (none checked when this run records the baseline)."""
    return baselines.assess(analysis, settings.baseline_path, recording=settings.record_baseline)


def finish(analysis: RunAnalysis, store: RunStore | Path, settings: EndSettings,
           say: Callable[[str], None] | None = None) -> RunEnd:
    """Record the baseline if asked, add the run to its profile's history, judge it, write the report
    into the run's store (given as its store or its folder)."""
    store = store if isinstance(store, RunStore) else RunStore.at(Path(store))
    profile = analysis.profile_name or "unknown"
    end = RunEnd(analysis, judge(analysis, settings))
    if settings.record_baseline:
        _record(end, settings, profile)
    problems = []
    try:
        history.append(settings.history_dir, analysis, profile)
    except (OSError, ValueError, HarnessError) as err:
        problems.append(f"could not add this run to the history in {settings.history_dir} ({err})")
    past = history.load(settings.history_dir, profile, model=analysis.model_name)
    problems += past.problems
    images = thumbnails.load(analysis, settings.shared_dir)
    from harness.report import render_reports  # imports matplotlib: only once a report is written

    try:
        rendered = render_reports(analysis, history=past.entries, history_problems=problems, images=images,
                                  baseline=end.assessment.to_json())
        end.report_paths = store.write_reports(rendered)
        if settings.reports_dir is not None:
            end.report_paths += copy_reports(end.report_paths, Path(settings.reports_dir) / str(analysis.run_id))
    except (HarnessError, OSError) as err:
        end.missing = f"could not write the report: {err}; render it again with kbench report {store.path}"
    except Exception as err:  # noqa: BLE001 (a plotting library's failure must not lose the run)
        end.missing = (
            f"could not write the report ({type(err).__name__}: {' '.join(str(err).split())[:200]}); the "
            f"results are in {store.path}: render it again with kbench report {store.path}")
    if end.missing:
        end.lines.append(end.missing)
    if say is not None:
        for problem in problems:
            say(f"history: {problem}")
    return end


def _record(end: RunEnd, settings: EndSettings, profile: str) -> None:
    if settings.baseline_path is None:
        end.lines.append("could not record the baseline: no baseline folder was given (--baselines)")
        return
    try:  # the earlier runs give each entry its spread
        earlier = history.load(settings.history_dir, profile, model=end.analysis.model_name).entries
        baselines.record(settings.baseline_path, profile, end.analysis, history=earlier)
        end.lines.append(f"recorded the baseline {settings.baseline_path}")
    except (HarnessError, OSError) as err:
        end.lines.append(f"could not record the baseline: {err}")


def copy_reports(paths: list[Path], folder: Path) -> list[Path]:
    """Copies of the written reports in ``folder`` (``<reports-dir>/<run-id>/``); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in paths:
        target = folder / path.name
        shutil.copyfile(path, target)
        copies.append(target)
    return copies


# -- a finished run, again ---------------------------------------------------------------------
def reanalyse(store: RunStore | Path, method: str = "seed", table_images: int = TABLE_IMAGES) -> RunAnalysis:
    """The analysis of a finished run (its store, or its folder), as a live run builds it, from the jobs'
    files and statuses."""
    store = store if isinstance(store, RunStore) else RunStore.at(Path(store))
    backends, statuses, skipped = finished_run(store)
    return analyse_run(store, backends, statuses, skipped, method, table_images)


def rerender(store: RunStore | Path, *, reports_dir: Path | None = None, baselines_dir: Path | None = None,
             history_dir: Path | None = None, method: str = "seed", table_images: int = TABLE_IMAGES,
             stored: bool = False, write_analysis: bool = False,
             say: Callable[[str], None] | None = None) -> RunEnd:
    """Write a finished run's report again, without training (after a template change, say).

    By default the run folder's job files are analysed again (``method`` and
    ``table_images`` as a session would); with ``stored`` the run's
    ``ensemble.json`` is rendered as it is, older files included. The run is
    added to its profile's history and judged against ``baselines_dir``.
    """
    store = store if isinstance(store, RunStore) else RunStore.at(Path(store))
    if stored:
        analysis = store.read_analysis()
    else:
        analysis = reanalyse(store, method, table_images)
    if write_analysis:
        store.write_analysis(analysis.to_json())
    profile = analysis.profile_name or "unknown"
    settings = EndSettings(
        shared_dir=store.shared,
        history_dir=Path(history_dir) if history_dir else history.default_dir(store.shared),
        reports_dir=reports_dir,
        baseline_path=baselines.path_for(baselines_dir, profile, analysis.model_name) if baselines_dir else None)
    return finish(analysis, store, settings, say)


def finish_repeats(analyses: list[RunAnalysis], folder: Path, title: str) -> tuple[list[Path], list[str]]:
    """Write ``repeats.json``, ``repeats.md`` and ``repeats.html`` into ``folder``; the paths and the
    summary's sentences for the terminal."""
    from harness.report import repeats_view
    from harness.scoring.repeats import summarise_repeats

    summary = summarise_repeats(analyses)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("repeats.json", json.dumps(summary, indent=2, sort_keys=True) + "\n"),
                       ("repeats.md", repeats_view.markdown(summary, title)),
                       ("repeats.html", repeats_view.html(summary, title))):
        path = folder / name
        layout.atomic_write_bytes(str(path), text.encode("utf-8"))
        written.append(path)
    return written, repeats_view.sentences(summary)
