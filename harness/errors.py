"""The harness's own error types: each one carries a message that names the fix.

Everything the user can cause (bad options, missing data, a busy run id, an
unreachable cluster) raises a ``HarnessError``; the pytest plugin and the CLI
print its one-line message instead of a traceback.
"""
from __future__ import annotations

from harness.workload.errors import DataError, UserError

HarnessError = UserError
"""A problem the user can fix; ``str(err)`` says what was wrong and what to do.

The workload's ``UserError`` under the harness's name, so that the one
``DataError`` (raised by the data code the job and the harness share) is a
``HarnessError`` wherever it is caught."""

__all__ = ["BaselineError", "ConfigError", "DataError", "ExecutorError", "HarnessError", "ResultError",
           "RunInUseError", "RuntimeSetupError", "UserError"]


class ConfigError(HarnessError):
    """An option or setting is invalid (unknown backend, unsafe run id, ...)."""


class RuntimeSetupError(HarnessError):
    """A backend's Python environment could not be created."""


class RunInUseError(HarnessError):
    """Another harness process holds the run folder."""


class ResultError(HarnessError):
    """A result file is truncated, corrupt, from another schema or another data set."""


class BaselineError(HarnessError):
    """A baseline file is missing, malformed or lacks an entry."""


class ExecutorError(HarnessError):
    """The executor cannot run jobs (unreachable cluster, forbidden action, ...)."""
