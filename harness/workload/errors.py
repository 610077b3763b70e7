"""The errors a user can fix, one class each for the job and the harness alike.

The workload raises ``DataError`` while it reads a data set; the harness runs
the same data code (to check a data set before jobs start, to draw the
report's thumbnails) and must catch the very same class. So the classes live
here, in the workload (Python 3.6, nothing of the harness imported), and
``harness.errors`` builds its own errors on ``UserError``.
"""


class UserError(Exception):
    """A problem the user can fix; ``str(err)`` says what was wrong and what to do."""


class DataError(UserError):
    """The data set is missing, empty or malformed; the message says how to fix it."""
