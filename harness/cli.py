"""``kbench``: the harness's command line, for what happens around a benchmark run.

The benchmark itself is ``pytest benchmarks/`` (``./dev bench``); these
subcommands work on runs it left behind:

* ``kbench report RUN``: analyse a finished run folder again and rewrite its report;
* ``kbench history``: the runs kept in the history store, newest last;
* ``kbench compare RUN_A RUN_B``: two runs side by side, with each change's direction and size;
* ``kbench gate BASE CANDIDATE``: fail (exit 1) when a backend's training steps got slower beyond noise;
* ``kbench cleanup --run-id ID``: delete a run's Jobs and pods from a Kubernetes cluster.

A run is named by its folder (``<shared>/runs/<run-id>``) or by its id, looked
up under ``--shared-dir``; ``gate`` reads pytest-benchmark JSON files instead.
Every problem is one line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import compare_runs, executors, history, options, speed_gate
from harness.errors import ConfigError, HarnessError, RunInUseError
from harness.run_store import RunStore
from harness.workload import layout


class CliError(HarnessError):
    """A problem with what was asked on the command line."""


def shared_dir(args: argparse.Namespace) -> Path:
    return options.folder(vars(args), "shared_dir", Path.cwd(), Path.cwd())


# -- subcommands --------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from harness import run_end  # the report's imports (matplotlib) only when used

    values, cwd = vars(args), Path.cwd()
    store = RunStore.find(args.run, shared_dir(args))
    chosen = {"reports_dir": options.folder(values, "reports_dir", cwd, cwd),
              "baselines_dir": options.baselines_folder(values, cwd, cwd),
              "history_dir": options.history_dir(values, store.shared, cwd),
              "method": options.parse_ensemble(args.ensemble),
              "table_images": options.parse_report_images(args.report_images)}
    try:
        store.acquire()  # a run a benchmark is still running has no report to write yet
    except RunInUseError as err:
        raise CliError(f"{str(err).split(';')[0]}; wait for it to finish (its session writes the report), then "
                       f"run kbench report again if needed") from None
    try:
        end = run_end.rerender(store, **chosen, stored=args.stored, write_analysis=args.write_analysis, say=print)
    finally:
        store.release()
    for line in end.lines:
        print(line)
    for path in end.report_paths:
        print(f"report: {path}")
    return 0 if end.report_paths else 1


def cmd_history(args: argparse.Namespace) -> int:
    directory = options.history_dir({"history_dir": args.history_dir}, shared_dir(args), Path.cwd())
    if args.profile or args.model:  # a name that could reach outside the folder is refused, not looked up
        history.path_for(directory, args.profile or "smoke", args.model or layout.DEFAULT_MODEL)
    stored = sorted(history.stored_keys(Path(directory)))
    if args.profile and args.model:
        stored = [(args.profile, args.model)]
    stored = [(p, m) for p, m in stored if args.profile in (None, p) and args.model in (None, m)]
    if not stored and args.profile:
        stored = [(args.profile, args.model or layout.DEFAULT_MODEL)]
    if not stored:
        raise CliError(f"no run history in {directory}; runs are added when `pytest benchmarks/` "
                       "finishes (pass --shared-dir or --history-dir to look elsewhere)")
    for profile, model in stored:
        past = history.load(Path(directory), profile, limit=args.limit, model=model)
        print(f"profile {profile}, model {model}: {len(past)} run(s) in {past.path}")
        for problem in past.problems[:3]:
            print(f"  (skipped: {problem})")
        if len(past.problems) > 3:
            print(f"  (and {len(past.problems) - 3} more unreadable lines)")
        for entry in past.entries:
            print("  " + history_line(entry))
    return 0


def history_line(entry: dict) -> str:
    """One run of the history as a line: when, id, executor, each member's and the ensemble's test accuracy."""
    members = entry.get("members") or {}
    parts = []
    for name in sorted(members):
        accuracy = (members[name] or {}).get("test_accuracy")
        parts.append(f"{name} {_percent(accuracy)}")
    ensemble = (entry.get("ensemble") or {}).get("accuracy")
    return (f"{entry.get('recorded_at') or '?'}  {entry.get('run_id')}  [{entry.get('executor') or '?'}]  "
            + ", ".join(parts) + f"; ensemble ({entry.get('method') or '?'}) {_percent(ensemble)}")


def cmd_compare(args: argparse.Namespace) -> int:
    stores = [RunStore.find(text, shared_dir(args)) for text in (args.first, args.second)]
    first, second = (store.read_analysis() for store in stores)
    print(f"comparing run {first.run_id} (A) with run {second.run_id} (B)")
    for note in compare_runs.differences_in_setup(first, second) + compare_runs.shared_notes(first, second):
        print(f"note: {note}")
    print("each figure with its 95% interval; a change is called only where the intervals separate "
          "(speed: bootstrap over steps, timed alone; serving: distribution-free for the p90, bootstrap for "
          "Offline, the search's bracket for the Server's peak; accuracy: Wilson over the test images)\n")
    rows = compare_runs.compare(first, second)
    header = ("", "figure", "A", "B", "change B vs A")
    table = [header] + [(r.subject, r.figure, _figure(r.before, r.figure), _figure(r.after, r.figure), r.change)
                        for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    candidates = [args.candidate, *args.also_candidate]
    watch = args.watch
    candidate = speed_gate.fastest_process([speed_gate.read_samples(path, watch) for path in candidates])
    base_path = args.base
    if base_path.is_dir():
        if args.also_base:
            raise ConfigError("--also-base needs BASE to be a JSON file, not a --benchmark-storage folder")
        base_path = speed_gate.latest_in_store(args.base, exclude=args.candidate)
        if base_path is None:
            print(f"nothing to compare against: {args.base} holds no pytest-benchmark JSON besides the candidate; "
                  "the gate passes (save a base with pytest --benchmark-autosave)")
            return 0
    bases = [base_path, *args.also_base]
    base = speed_gate.fastest_process([speed_gate.read_samples(path, watch) for path in bases])
    report = speed_gate.judge(base, candidate, threshold=args.threshold)
    if len(bases) > 1 or len(candidates) > 1:
        print(f"gate: the fastest of {len(candidates)} candidate process(es) ({', '.join(map(str, candidates))}) "
              f"against the fastest of {len(bases)} base process(es) ({', '.join(map(str, bases))}), per backend "
              f"(threshold {args.threshold * 100:g}%)")
    else:
        print(f"gate: {args.candidate} against {base_path} (threshold {args.threshold * 100:g}%)")
    for line in report.lines():
        print(line)
    print(report.summary())
    return 1 if report.failed else 0


def limit(text: str) -> int:
    """``--limit``: how many recent runs to list, at least 1."""
    try:
        number = options.parse_positive_int("--limit", text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if number is None:
        raise argparse.ArgumentTypeError("--limit takes a whole number of at least 1")
    return number


def watches(text: str) -> tuple[str, ...]:
    """``steps``, ``p90`` or ``steps,p90``: what the gate compares."""
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [w for w in chosen if w not in speed_gate.WATCHES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"--watch {text!r}: choose from {', '.join(speed_gate.WATCHES)}, "
                                         "comma-separated")
    return chosen


def threshold(text: str) -> float:
    """``10%`` or ``0.1``: the slowdown beyond which a backend regresses."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a threshold; give a percentage (10%) or a "
                                         "fraction (0.1)") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the threshold must be above 0, e.g. 10% or 0.1")
    if value >= 1 and not text.endswith("%"):
        raise argparse.ArgumentTypeError(f"{text!r} would be {value * 100:g}%; write {text}% for "
                                         f"{text} percent, or a fraction such as 0.1")
    return value


def cmd_cleanup(args: argparse.Namespace) -> int:
    from harness.executors.kubernetes import executor as kubernetes  # only when asked for

    settings = {key: value for key, value in vars(args).items() if key.startswith("k8s_")}
    kubernetes.cleanup(args.run_id, settings)
    return 0


def _percent(value: object) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _figure(side: compare_runs.Side, label: str) -> str:
    """A figure with its interval (``29.60% (25.8-33.7)``, ``612.3 (601.0-618.9)``) and a contended mark."""
    if side.value is None:
        return f"- ({side.missing})" if side.missing else "-"
    if "accuracy" in label or "ECE" in label:
        text, span = f"{side.value * 100:.2f}%", side.interval and f"{side.interval[0] * 100:.1f}-{side.interval[1] * 100:.1f}"
    elif "NLL" in label:
        text, span = f"{side.value:.4f}", None
    elif " ms" in label:
        text, span = f"{side.value:.3f}", side.interval and f"{side.interval[0]:.3f}-{side.interval[1]:.3f}"
    else:
        text, span = f"{side.value:,.1f}", side.interval and f"{side.interval[0]:,.1f}-{side.interval[1]:,.1f}"
    marks = (" [contended]" if side.contended else "") + (" [audit failed]" if side.audit_failed else "")
    return text + (f" ({span})" if span else "") + marks


# -- the parser ---------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="kbench", description=(
        "Work with the runs that `pytest benchmarks/` (./dev bench) leaves in the shared folder."))
    options.add_options(main, [o for o in options.RESULTS if o.dest == "shared_dir"])
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report = commands.add_parser("report", help="analyse a finished run again and rewrite its report",
                                 description="Analyse a finished run folder again (no training) and write "
                                             "report.html and report.md, e.g. after a template change.")
    report.add_argument("run", help="the run's folder (<shared>/runs/<run-id>) or its id")
    options.add_results_options(report, suppress_defaults=True)  # --shared-dir may also come before it
    report.set_defaults(**{o.dest: o.default for o in options.RESULTS if o.dest != "shared_dir"})
    report.add_argument("--stored", action="store_true",
                        help="render the run's stored analysis (ensemble.json) as it is instead of analysing its job "
                             "files again (an older run, or one whose job files are gone)")
    report.add_argument("--write-analysis", action="store_true", help="also rewrite the run's stored analysis "
                        "(ensemble.json)")
    report.set_defaults(handler=cmd_report)

    past = commands.add_parser("history", help="list the runs kept in the history store",
                               description="List earlier runs per profile, oldest first, with each "
                                           "backend's and the ensemble's test accuracy.")
    past.add_argument("--profile", default=None, help="only this profile (default: every profile)")
    past.add_argument("--model", default=None, help="only this model (default: every model)")
    past.add_argument("--history-dir", type=Path, default=None, help="history store (default: <shared>/history)")
    past.add_argument("--limit", type=limit, default=history.DEFAULT_LIMIT,
                      help=f"most recent runs per profile (default: {history.DEFAULT_LIMIT})")
    past.set_defaults(handler=cmd_history)

    diff = commands.add_parser("compare", help="two runs side by side: speed and accuracy, and each change",
                               description="Show each backend's and the ensemble's figures in two runs, "
                                           "with the direction and size of every change (B against A).")
    diff.add_argument("first", metavar="RUN_A", help="the earlier run: folder or id")
    diff.add_argument("second", metavar="RUN_B", help="the later run: folder or id")
    diff.set_defaults(handler=cmd_compare)

    gate = commands.add_parser(
        "gate", help="fail when a backend's training steps are slower than before, beyond noise",
        description="Compare each backend's timed training steps (the test_speed cases of a pytest-benchmark "
                    "JSON) with a base run's, as distributions: a backend regresses when the 95% interval of "
                    "its median step-time ratio lies wholly above 1 + threshold. Runs from different machines "
                    "are compared in units of each machine's float32 matmul ceiling. With --watch p90, each "
                    "backend's SingleStream p90 latency (the test_serve cases) is gated the same way. Exit status "
                    "1 on a regression.")
    gate.add_argument("base", metavar="BASE", type=Path,
                      help="the base: a pytest-benchmark JSON file, or a --benchmark-storage folder (its latest "
                           "file other than CANDIDATE)")
    gate.add_argument("candidate", metavar="CANDIDATE", type=Path,
                      help="the run to judge: a pytest-benchmark JSON file (--benchmark-json)")
    gate.add_argument("--also-base", type=Path, action="append", default=[], metavar="FILE",
                      help="another process's JSON of the base (repeatable): each backend is judged by the fastest "
                           "process on each side, as one process of the same code can draw a slow start")
    gate.add_argument("--also-candidate", type=Path, action="append", default=[], metavar="FILE",
                      help="another process's JSON of the candidate (repeatable)")
    gate.add_argument("--threshold", type=threshold, default=speed_gate.DEFAULT_THRESHOLD,
                      help="slowdown that counts, as 10%% or 0.1 (default: 10%%)")
    gate.add_argument("--watch", type=watches, default=("steps",), metavar="WHAT",
                      help="what to gate, comma-separated: steps (each backend's training step times, test_speed; "
                           "the default) and p90 (each backend's SingleStream p90 latency, test_serve)")
    gate.set_defaults(handler=cmd_gate)

    cleanup = commands.add_parser("cleanup", help="delete a run's Jobs and pods from a Kubernetes cluster",
                                  description="Delete every Job (and its pods) of a benchmark run.")
    cleanup.add_argument("--run-id", required=True, help="the run whose Jobs to delete")
    options.add_options(cleanup, [o for o in executors.options("kubernetes")
                                  if o.flag in ("--k8s-kubeconfig", "--k8s-context", "--k8s-namespace")])
    cleanup.set_defaults(handler=cmd_cleanup)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (HarnessError, OSError) as err:
        print(f"kbench: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"kbench {args.command}: interrupted (its files are written whole or not at all)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
