"""The comparison report of a finished run: HTML (one self-contained file) and markdown.

Rendering only: the report reads the analysis (``harness.scoring.run_analysis.RunAnalysis``), the
baseline assessment (``harness.baselines.assess``), the run history
(``harness.history``) and optional thumbnails (``harness.report.thumbnails``), never
the jobs' own files. ``harness.run_end`` gathers those and calls
``write_reports``.
"""
from __future__ import annotations

from harness.report.render import ReportError, render_html, render_markdown, write_reports

__all__ = ["ReportError", "render_html", "render_markdown", "write_reports"]
