"""``pytest benchmarks/ --executor kubernetes`` from start to report, through an emulated cluster.

What stands in for the cluster (see ``k8s_fixtures``): kmock's Kubernetes API
emulator on localhost, reached by the harness through a kubeconfig, and a fake
Job controller and kubelet that run each Job's container command as a local
process with the harness's local runtimes standing in for the images (the
Keras 3 runtime for kbench-keras3, the Keras 2.3.1 one for kbench-keras2),
streaming its output as the pod log and writing pod and Job status back
through the API, under the same Job controller rules as the unit tests'
stand-in (``k8s_fixtures.drive_pods``). The shared "NFS" folder is a temporary
folder that the "pods" mount at the same path. The data are a tiny image
folder and the profile a tiny one with a speed phase (as ``test_faults`` runs
the local executor), with a baseline any result meets: this test is about the
Kubernetes path, and the jobs' own cost is the suite's. Everything else is the
real harness: options, data set staging, run.json, Job manifests, watching,
logs, gathering, baselines, report.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest_k8s import runs_locally
from k8s_fixtures import CONTEXT, running_fake_cluster

from harness.backends import get
from harness.profiles import Profile
from tests.conftest import write_image_folder

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "theano")
"""One backend of each image: kbench-keras3 and kbench-keras2."""
TINY = Profile(name="tiny-k8s", description="the Kubernetes end-to-end test", n_train=24, n_val=6, n_test=12,
               epochs=2, batch_size=8, learning_rate=1e-3, predict_batch_size=4, job_timeout_s=600, seed=5,
               speed_steps=4, speed_predict_batches=2, serve_seconds=0.5, serve_sweep_seconds=0.1,
               serve_min_queries=20, serve_max_batch=8, serve_rate_trials=2)


@pytest.fixture
def fake_cluster(tmp_path: Path):
    with running_fake_cluster(tmp_path) as cluster:
        yield cluster


@pytest.mark.slow
def test_pytest_benchmarks_runs_every_job_as_a_kubernetes_job(fake_cluster, pytester, tmp_path, runtime_for):
    """Train, predict, check, time and serve two backends as Jobs; results, logs and the report come back
    through the shared folder."""
    work_dir = REPO / ".kbench"
    images = {"kbench-keras3:0.1.0": runtime_for(get("tensorflow")), "kbench-keras2:0.1.0": runtime_for(get("theano"))}
    fake_cluster.behave(runs_locally(images, work_dir, tmp_path / "pods"))
    shared = tmp_path / "shared"
    shared.mkdir()
    data = write_image_folder(tmp_path / "data")
    profile = tmp_path / "tiny-k8s.json"
    profile.write_text(json.dumps(TINY.to_json()))
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    anything = {"test_accuracy": 0.0, "tolerance": 0.0}
    (baselines / "tiny-k8s.json").write_text(json.dumps({
        "schema": 1, "members": {backend: anything for backend in BACKENDS},
        "ensemble": dict(anything, method="seed", max_gap_to_best_member=1.0)}))
    pytester.makepyfile(test_backends=(REPO / "benchmarks" / "test_backends.py").read_text())

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "--backend", ",".join(BACKENDS), "--profile", str(profile),
        "--dataset", str(data), "--shared-dir", str(shared), "--work-dir", str(work_dir), "--baselines",
        str(baselines), "--run-id", "k8s-e2e", "--reports-dir", str(tmp_path / "reports"), "--executor",
        "kubernetes", "--k8s-kubeconfig", str(fake_cluster.kubeconfig), "--k8s-context", CONTEXT,
        "--k8s-mount-path", str(shared), "--k8s-cpu", "1", "--k8s-poll-interval", "0.5",
        # the emulator and the stand-in kubelet run in this process and poll, so the machine is never quiet
        # for a speed or serve job here: each job would wait out its whole --quiet-wait first
        "--quiet-wait", "1", timeout=900)

    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines_random([f"*test_{phase}?{backend}? PASSED*" for backend in BACKENDS
                                        for phase in ("train", "predict", "fidelity", "speed", "serve")])
    result.stdout.fnmatch_lines_random(["*test_ensemble PASSED*"])
    result.stdout.fnmatch_lines(["*Kubernetes v1.31*namespace kbench*", "*tensorflow/train*epoch 1 done in*",
                                 "*theano/predict*succeeded in*"])
    jobs = {j["metadata"]["name"]: j for j in fake_cluster.jobs()}
    assert sorted(jobs) == sorted(f"kbench-k8s-e2e-{b}-{p}" for b in BACKENDS
                                  for p in ("train", "predict", "fidelity", "speed", "serve"))
    assert all(any(c["type"] == "Complete" for c in j["status"]["conditions"]) for j in jobs.values())
    run_folder = shared / "runs" / "k8s-e2e"
    for backend in BACKENDS:
        for phase in ("train", "predict", "fidelity"):
            log = (run_folder / backend / f"{phase}.log").read_text()
            assert log.startswith("$ python -m harness.workload " + phase)  # fetched through the pod log API
            assert (run_folder / backend / f"{phase}.json").is_file()
        assert (run_folder / backend / "probs_test.npy").is_file()
    staged = [p for p in (shared / "inputs").rglob("*") if p.is_file()]  # staged for the pods, readable by them
    assert staged and all(path.stat().st_mode & 0o444 == 0o444 for path in staged)
    for line in result.stdout.lines:
        found = re.match(r"report: (.+)$", line.strip())
        if found:
            assert Path(found.group(1)).is_file()
