"""Render a run's report to HTML and markdown with jinja2.

``render_reports`` is the entry point: analysis in (the ``RunAnalysis`` written to
``ensemble.json``, with the run's ``settings`` and ``statuses``), plus the
optional baseline assessment, run history and thumbnails; the bytes of
report.html and report.md out, which the run store writes (``harness.run_end``).

Both templates are autoescaped: the HTML one by jinja2's HTML autoescaping,
the markdown one by a ``finalize`` hook that escapes markdown and HTML
markup in every value it prints. A backend name, reason, path or log line can
therefore never add markup to either report. The HTML is one file with inline
CSS and images (no scripts, no network), so it opens from a CI artifact.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup, escape

from harness.errors import HarnessError
from harness.report import charts, serving_view, tables
from harness.scoring.record import READABLE_SCHEMAS, RunAnalysis

if TYPE_CHECKING:
    from harness.report.thumbnails import Thumbnails

TEMPLATES = Path(__file__).parent / "templates"
"""Packaged with the harness; in the repository a link to reports/templates, where they are edited."""
HTML_TEMPLATE, MARKDOWN_TEMPLATE = "report.html.j2", "report.md.j2"
MARKDOWN_LIMIT = 60_000
"""Bytes a markdown report may take: GitHub job summaries accept up to 1 MiB, PR comments 64 KiB."""
SUPPORTED_SCHEMAS = READABLE_SCHEMAS


class ReportError(HarnessError):
    """The analysis cannot be rendered (another schema, or the templates are missing)."""


_MD_ESCAPES = str.maketrans({
    "\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|",
    "#": "\\#", "~": "\\~", "!": "\\!", "<": "&lt;", ">": "&gt;", "&": "&amp;",
})


def md_escape(value: Any) -> str:
    """Text as it should read in markdown (tables included): no markup, one line."""
    if isinstance(value, Markup):
        return str(value)
    if value is None:
        return ""
    return re.sub(r"\s+", " ", str(value)).translate(_MD_ESCAPES)


def md_pre(text: Any) -> Markup:
    """A block of preformatted text (a log tail) for markdown: HTML-escaped inside ``<pre>``.

    ``<pre>`` starts a raw HTML block in CommonMark that runs to ``</pre>``,
    blank lines included, and markdown is not parsed inside it; escaping the
    text keeps any ``<`` or ``</pre>`` in a log from ending it early.
    """
    return Markup("<pre>") + escape(str(text)) + Markup("</pre>")


@functools.lru_cache(maxsize=4)
def environment(templates: Path = TEMPLATES, markdown: bool = False) -> jinja2.Environment:
    """The jinja2 environment for one output kind (kept: compiling the templates takes a while)."""
    loader = jinja2.FileSystemLoader(str(templates))
    if markdown:
        env = jinja2.Environment(loader=loader, autoescape=False, finalize=md_escape,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True,
                                 lstrip_blocks=True, keep_trailing_newline=True)
        env.filters["pre"] = md_pre
        return env
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def add_charts(view: dict[str, Any], analysis: RunAnalysis) -> None:
    """Draw the handful of charts the HTML report shows into ``view["charts"]``."""
    members = analysis.members
    colour = charts.colours(list(members))
    ok = analysis.usable_members
    soft = {n: v.test.accuracy for n, v in analysis.variants.items() if n != "majority"}
    drawn = {
        "accuracy": charts.accuracy({n: m.test.accuracy for n, m in ok.items()}, soft, colour,
                                    highlight=analysis.method),
        "learning": charts.learning_curves({n: m.history or [] for n, m in members.items()},
                                           colour),
        "speed": charts.speed({n: m.epoch_seconds or [] for n, m in members.items()},
                              {n: m.train_images_per_s for n, m in members.items()},
                              {n: m.inference_images_per_s for n, m in members.items()}, colour),
        "reliability": charts.reliability(view["reliability_panels"]),
    }
    ens = analysis.ensemble
    drawn["confusion"] = drawn["history"] = None
    if ens is not None and ens.confusion:
        drawn["confusion"] = charts.confusion(ens.confusion, analysis.classes or [],
                                              f"ensemble ({ens.method}) on the test set")
    served = serving_view.chart_data(analysis)
    drawn["serving_latency"] = charts.serving_latency(served.get("latency") or {}, colour)
    drawn["serving_offline"] = charts.offline_throughput(served.get("offline") or {}, colour)
    drawn["serving_server"] = charts.server_p99(served.get("server") or {}, served.get("bound_ms"), colour)
    entries = view["history_entries"]
    if len(entries) >= 2:
        names = view["history"]["members"]
        drawn["history"] = charts.history(
            [str(e.get("run_id")) for e in entries],
            {**{n: [((e.get("members") or {}).get(n) or {}).get("test_accuracy") for e in entries]
                for n in names},
             "ensemble": [(e.get("ensemble") or {}).get("accuracy") for e in entries]},
            {n: [((e.get("members") or {}).get(n) or {}).get("train_images_per_s") for e in entries]
             for n in names}, colour)
    view["charts"] = drawn


def render_html(view: dict[str, Any], templates: Path = TEMPLATES) -> str:
    return environment(templates).get_template(HTML_TEMPLATE).render(view=view)


def render_markdown(view: dict[str, Any], templates: Path = TEMPLATES,
                    limit: int = MARKDOWN_LIMIT) -> str:
    """The markdown report; the per-image table is cut down until the whole fits in ``limit``."""
    template = environment(templates, markdown=True).get_template(MARKDOWN_TEMPLATE)
    text = template.render(view=view)
    table = view.get("table")
    while len(text.encode("utf-8")) > limit and table and table["images"]:
        table = dict(table, images=table["images"][: len(table["images"]) // 2])
        table["shown"] = len(table["images"])
        text = template.render(view=dict(view, table=table))
    return text


def _check(analysis: RunAnalysis) -> None:
    if analysis.schema not in SUPPORTED_SCHEMAS:
        raise ReportError(f"the analysis has schema {analysis.schema!r}, but this report renders schema "
                          f"{', '.join(map(str, SUPPORTED_SCHEMAS))}; re-run the analysis of the run "
                          "with this harness (kbench report <run folder> --write-analysis)")
    if not (TEMPLATES / HTML_TEMPLATE).is_file():
        raise ReportError(f"the report templates are missing from {TEMPLATES}; reinstall the harness "
                          "(pip install .) from a checkout of the repository")


def render_reports(analysis: RunAnalysis, *, history: Sequence[dict[str, Any]] = (),
                   history_problems: Sequence[str] = (), images: Thumbnails | None = None,
                   baseline: dict[str, Any] | None = None) -> dict[str, bytes]:
    """The report of a run in each format: ``{"html": ..., "md": ...}``, ready to write.

    ``images`` is a ``harness.report.thumbnails.Thumbnails`` (or None: no pictures);
    ``baseline`` is ``harness.baselines.assess(...)``'s result; ``history`` the
    profile's earlier runs (``harness.history.load(...).entries``) including
    this one. The run store writes them into the run folder.
    """
    _check(analysis)
    view = tables.build_view(
        analysis, history=history, history_problems=history_problems,
        thumbnails=images.images if images else None,
        thumbnails_unavailable=images.unavailable if images else None, baseline=baseline)
    add_charts(view, analysis)
    return {"html": render_html(view).encode("utf-8"), "md": render_markdown(view).encode("utf-8")}
