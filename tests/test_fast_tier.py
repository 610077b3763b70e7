"""The fast tier stays fast: a test not marked ``slow`` that takes over the limit fails, naming the fix."""
from __future__ import annotations

import tests.conftest as suite

pytest_plugins = ["pytester"]


def test_a_slow_test_outside_the_slow_tier_fails_with_the_fix(pytester, monkeypatch):
    monkeypatch.setattr(suite, "FAST_TIER_LIMIT_S", 0.2)  # the real limit is 10 s; the rule is what is tested
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    pytester.makepyfile(test_timed="""
        import time
        import pytest

        def test_quick():
            pass

        def test_lingers():
            time.sleep(0.4)

        @pytest.mark.slow
        def test_marked():
            time.sleep(0.4)
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-m", "not slow")
    result.assert_outcomes(passed=1, failed=1, deselected=1)
    result.stdout.fnmatch_lines([("*test_lingers is in the fast tier but took 0.4 s, over 0.2 s: make it faster "
                                 "or mark it slow*")])
    # beside the slow tier (./dev test --all) a test's wall time says how busy the machine was, not the test
    everything = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    everything.assert_outcomes(passed=3)
