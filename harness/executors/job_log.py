"""What every executor reads from a running or ended job: its events, its log tail, its error line.

A job prints progress events behind ``layout.EVENT_PREFIX`` (also appended to
``<phase>.events.jsonl``) and, when it fails, a last line behind
``layout.ERROR_PREFIX`` that says why. The local executor reads them from
files in the run folder, the Kubernetes executor from the events file and the
pod log; both read them through these functions, so a change to the job's
output format is one change here and in the workload's ``layout``.
"""
from __future__ import annotations

import os
from pathlib import Path

from harness.workload import events as workload_events
from harness.workload.layout import ERROR_PREFIX, EVENT_PREFIX

LOG_TAIL_LINES = 20
"""Lines of a failed job's log kept in its result (and shown in the report)."""
TAIL_READ_BYTES = 256 * 1024
"""How much of the end of a log file is read for its tail and its error line."""


def error_line(log_text: str) -> str:
    """The workload's own one-line explanation (its last ``kbench-error:`` line), if any."""
    for line in reversed(log_text.splitlines()):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):].strip()
    return ""


def log_tail(log_text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, without progress-event lines."""
    kept = [line for line in log_text.splitlines() if not line.startswith(EVENT_PREFIX)]
    return "\n".join(kept[-lines:])


def read_log_end(path: Path) -> str:
    """The end of a log file (its last ``TAIL_READ_BYTES``), or "" when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_READ_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class EventFollower:
    """Reads the progress events a job appends to its events file, as they come."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = ""

    def new_events(self) -> list[dict]:
        try:
            with open(self.path) as handle:
                handle.seek(self.offset)
                chunk = handle.read()
                self.offset = handle.tell()
        except OSError:
            return []
        text = self.partial + chunk
        lines = text.split("\n")
        self.partial = lines.pop()
        found = []
        for line in lines:
            event = workload_events.parse_line(line)
            if event is not None:
                found.append(event)
        return found
