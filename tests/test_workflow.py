"""The copyable GitHub workflow and .ci/run: what they promise about the gate and the nightly run.

No GitHub runner is available here; these read the files as Actions and bash
would, and check the promises the README makes about them.
"""
from __future__ import annotations

import subprocess

import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "benchmark.yml"
CI_RUN = REPO / ".ci" / "run"


def load() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_pushes_and_pull_requests_run_the_local_ci_script_with_the_base_commit_in_the_clone():
    smoke = load()["jobs"]["smoke"]
    steps = smoke["steps"]
    assert any(step.get("run", "").strip() == "bash .ci/run" for step in steps)
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "the gate times the base commit, which a depth-1 clone lacks"
    assert "HEAD~1" in smoke["env"]["KBENCH_GATE_BASE"] and "base_ref" in smoke["env"]["KBENCH_GATE_BASE"]
    assert "schedule" in smoke["if"], "the nightly schedule runs the standard profile, not the smoke gate"


def test_the_standard_profile_runs_nightly_against_its_baseline_and_publishes_its_report():
    workflow = load()
    assert workflow["on"]["schedule"], "a nightly schedule trigger"
    standard = workflow["jobs"]["standard"]
    assert "schedule" in standard["if"]
    command = next(step["run"] for step in standard["steps"] if "--profile standard" in step.get("run", ""))
    assert "--require-baseline" in command
    assert any("GITHUB_STEP_SUMMARY" in step.get("run", "") for step in standard["steps"])
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in standard["steps"])
    assert (REPO / "benchmarks" / "baselines" / "standard.json").is_file()


def test_ci_gates_speed_against_the_base_timed_in_the_same_job():
    script = CI_RUN.read_text()
    assert subprocess.run(["bash", "-n", str(CI_RUN)], check=False).returncode == 0
    assert "-k test_speed" in script, "the base times only its speed phase"
    assert 'git archive "$base_commit"' in script, "with its own code"
    assert script.count("kbench gate") >= 2, "a flagged backend is confirmed by a second comparison"
    assert "--also-base" in script and "--also-candidate" in script, "on the fastest of several processes per side"
    assert "latest_in_store" not in script and "--benchmark-compare" not in script
