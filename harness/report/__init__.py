"""The comparison report of a finished run: HTML (one self-contained file) and markdown.

Rendering only: the report reads the analysis (``harness.scoring.record.RunAnalysis``), the
baseline assessment (``harness.baselines.assess``), the run history
(``harness.history``) and optional thumbnails (``harness.report.thumbnails``), never
the jobs' own files. ``harness.run_end`` gathers those and calls
``render_reports``, and the run store writes what it returns.
"""
from __future__ import annotations

from harness.report.render import ReportError, render_html, render_markdown, render_reports

__all__ = ["ReportError", "render_html", "render_markdown", "render_reports"]
