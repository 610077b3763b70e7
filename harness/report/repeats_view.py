"""The repeats report: a table of means with 95% intervals over ``--repeats`` runs, as markdown and HTML.

Pure: takes ``harness.scoring.repeats.summarise_repeats``'s JSON; writing the
files is ``harness.run_end.finish_repeats``'s.
"""
from __future__ import annotations

from typing import Any

from harness.scoring.repeats import ENSEMBLE

HOW = ("Each figure is the mean over {n} runs of the same model on the same images, each trained with its "
       "own seed (train_seed {seeds}: other initial weights and shuffles), with a Student's t 95% interval "
       "of that mean. Test accuracy is the member's on the whole test split; train img/s is the median of "
       "its speed phase (timed alone). A backend is called the most accurate or the fastest only where its "
       "interval is clear of the next one's.")


def _interval(row: dict[str, Any] | None, fmt) -> tuple[str, str, str]:
    if row is None:
        return "–", "–", "–"
    low, high = row["ci_low"], row["ci_high"]
    interval = f"{fmt(low)}–{fmt(high)}" if low is not None and high is not None else "–"
    return fmt(row["mean"]), interval, " / ".join(fmt(v) for v in row["values"])


def rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """One row per backend, then the ensemble: mean, interval and the repeats' values of each figure."""
    percent = "{:.1%}".format
    rate = "{:,.0f}".format
    names = [n for n in summary["accuracy"] if n != ENSEMBLE] + [
        n for n in summary["speed"] if n not in summary["accuracy"]]
    table = []
    for name in names + ([ENSEMBLE] if ENSEMBLE in summary["accuracy"] else []):
        acc, acc_ci, acc_values = _interval(summary["accuracy"].get(name), percent)
        speed, speed_ci, speed_values = _interval(summary["speed"].get(name), rate)
        label = f"ensemble ({summary.get('method')})" if name == ENSEMBLE else name
        runs = summary["accuracy"].get(name, summary["speed"].get(name, {})).get("n", 0)
        table.append({"name": label, "runs": str(runs), "accuracy": acc, "accuracy_ci": acc_ci,
                      "accuracy_values": acc_values, "speed": speed, "speed_ci": speed_ci,
                      "speed_values": speed_values})
    return table


def sentences(summary: dict[str, Any]) -> list[str]:
    found = [summary["ranking"]["accuracy"], summary["ranking"]["speed"]]
    if summary.get("ensemble_vs_best"):
        found.append(summary["ensemble_vs_best"])
    for name, runs in summary.get("missing", {}).items():
        found.append(f"{name} has no test accuracy from {', '.join(runs)} (it did not finish there), so its "
                     "mean is over fewer runs")
    return found


def how(summary: dict[str, Any]) -> str:
    seeds = [str(r["train_seed"]) for r in summary["runs"]]
    return HOW.format(n=summary["repeats"], seeds=", ".join(seeds))


def markdown(summary: dict[str, Any], title: str) -> str:
    lines = [f"## {title}", ""]
    lines += [f"- {s}." for s in sentences(summary)]
    lines += ["", how(summary), "",
              "| | runs | Test acc. (mean) | 95% interval | each run | Train img/s (mean) | 95% interval | each run |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows(summary):
        lines.append(f"| {row['name']} | {row['runs']} | {row['accuracy']} | {row['accuracy_ci']} | "
                     f"{row['accuracy_values']} | {row['speed']} | {row['speed_ci']} | {row['speed_values']} |")
    lines += ["", "Runs: " + ", ".join(f"{r['run_id']} (train_seed {r['train_seed']})" for r in summary["runs"]), ""]
    return "\n".join(lines)


def html(summary: dict[str, Any], title: str) -> str:
    import jinja2

    from harness.report.render import TEMPLATES

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("repeats.html.j2").render(
        title=title, sentences=sentences(summary), how=how(summary), rows=rows(summary), runs=summary["runs"])
