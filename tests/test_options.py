"""Option values checked as they are read: bounds that say why, before any job starts."""
from __future__ import annotations

import pytest

from harness.config import parse_threads
from harness.errors import ConfigError


@pytest.mark.parametrize("executor, threads, message", [
    ("local", "9", ("--threads 9 is more than 4 per core of this machine's 2 cores; more only makes the jobs "
                   "contend, so pass --threads 8 or fewer")),
    ("kubernetes", "257", "--threads 257 is more than any one node has; pass --threads 256 or fewer"),
])
def test_threads_are_bounded_by_what_the_jobs_machines_can_have(executor, threads, message):
    with pytest.raises(ConfigError) as err:
        parse_threads(threads, executor, cores=2)
    assert str(err.value).startswith(message)
    assert parse_threads("8", "local", cores=2) == 8 and parse_threads("64", "kubernetes", cores=2) == 64
