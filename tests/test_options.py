"""Option values checked as they are read: bounds that say why, before any job starts."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from harness import options
from harness.config import parse_threads
from harness.errors import ConfigError
from tests.conftest import REPO


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


# -- one option table, two front doors ------------------------------------------------------------
def _help_entries(text: str) -> dict[str, str]:
    """Each ``--flag``'s help in a ``--help`` output, whitespace removed (the two wrap lines differently)."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        found = re.match(r"\s{2}(--[a-z0-9-]+)(?:[ =]\S+)?(.*)", line)
        if found:
            current = found.group(1)
            entries[current] = found.group(2)
        elif current and line.startswith("      ") and line.strip():
            entries[current] += line
        else:
            current = None
    return {flag: "".join(help_text.split()) for flag, help_text in entries.items()}


def test_pytest_and_kbench_report_show_the_shared_options_alike():
    """The results options are declared once (``harness.options.RESULTS``): the same names, defaults and help
    text in ``pytest --help`` and ``kbench report --help``."""
    env = {**os.environ, "COLUMNS": "100"}
    pytest_help = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=REPO,
                                 capture_output=True, text=True, env=env, check=True).stdout
    kbench_help = subprocess.run([sys.executable, "-m", "harness.cli", "report", "--help"], cwd=REPO,
                                 capture_output=True, text=True, env=env, check=True).stdout
    in_pytest, in_kbench = _help_entries(pytest_help), _help_entries(kbench_help)
    for option in options.RESULTS:
        assert option.flag in in_pytest and option.flag in in_kbench, option.flag
        assert in_pytest[option.flag] == in_kbench[option.flag] == "".join(option.help_text.split()), option.flag
        assert f"(default:{option.default_text or option.default})" in in_kbench[option.flag].replace(" ", "")


def test_every_default_is_written_once_in_the_table():
    """``RunConfig`` has no default of its own for what an option sets: a run built from no options at all
    takes the table's."""
    defaults = options.defaults()
    config = options.build_run(REPO, dataset="keras", run_id="x1")
    assert config.ensemble_method == defaults["ensemble"] == "seed"
    assert config.report_images == int(defaults["report_images"])
    assert config.model.name == defaults["model"] and config.profile.name == defaults["profile"]
    assert config.shared_dir == REPO / defaults["shared_dir"] and config.work_dir == REPO / defaults["work_dir"]
    assert config.history_dir == REPO / defaults["shared_dir"] / "history"
    assert len({o.flag for o in options.all_options()}) == len(options.all_options()), "a flag declared twice"
