"""What is said about jobs that ended badly."""
from __future__ import annotations

from harness.jobs import reasons_once


def test_backends_that_fail_for_one_reason_are_named_together_with_it_once():
    text = reasons_once({"tensorflow": "no data set", "jax": "no data set", "cntk": "no MPI", "torch": "no data set"})
    assert text == "tensorflow, jax, torch: no data set; cntk: no MPI"
    assert text.count("no data set") == 1
