"""``pytest benchmarks/ --executor kubernetes`` from start to report, through an emulated cluster.

What stands in for the cluster (see ``k8s_fixtures``): kmock's Kubernetes API
emulator on localhost, reached by the harness through a kubeconfig, and a fake
Job controller and kubelet that run each Job's container command as a local
process with the harness's local runtimes standing in for the images (the
Keras 3 runtime for kbench-keras3, the Keras 2.3.1 one for kbench-keras2),
streaming its output as the pod log and writing pod and Job status back
through the API. The shared "NFS" folder is a temporary folder that the
"pods" mount at the same path. Everything else is the real harness: options,
data set staging, run.json, Job manifests, watching, logs, gathering, report.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest_k8s import runs_locally
from k8s_fixtures import CONTEXT, running_fake_cluster

from harness.backends import get

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
BACKENDS = ("tensorflow", "theano")
"""One backend of each image: kbench-keras3 and kbench-keras2."""


@pytest.fixture
def fake_cluster(tmp_path: Path):
    with running_fake_cluster(tmp_path) as cluster:
        yield cluster


@pytest.mark.slow
def test_pytest_benchmarks_runs_every_job_as_a_kubernetes_job(fake_cluster, pytester, tmp_path, runtime_for):
    """Train, predict, check, time and serve two backends as Jobs; results, logs and the report come back
    through the shared folder."""
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is not on this machine")
    work_dir = REPO / ".kbench"
    images = {"kbench-keras3:0.1.0": runtime_for(get("tensorflow")), "kbench-keras2:0.1.0": runtime_for(get("theano"))}
    fake_cluster.behave(runs_locally(images, work_dir, tmp_path / "pods"))
    shared = tmp_path / "shared"
    shared.mkdir()
    pytester.makepyfile(test_backends=(REPO / "benchmarks" / "test_backends.py").read_text())

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "--backend", ",".join(BACKENDS), "--profile", "smoke",
        "--dataset", str(SHARED_DATA), "--shared-dir", str(shared), "--work-dir", str(work_dir),
        "--run-id", "k8s-e2e", "--reports-dir", str(tmp_path / "reports"), "--executor", "kubernetes",
        "--k8s-kubeconfig", str(fake_cluster.kubeconfig), "--k8s-context", CONTEXT,
        "--k8s-mount-path", str(shared), "--k8s-cpu", "1", "--k8s-poll-interval", "0.5",
        # what is under test is the executor, not accuracy: record a baseline rather than judge one
        "--record-baseline", "--baselines", str(tmp_path / "baselines"), timeout=900)

    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines_random([f"*test_{phase}?{backend}? PASSED*" for backend in BACKENDS
                                        for phase in ("train", "predict", "fidelity", "speed", "serve")])
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
    assert list((shared / "inputs").glob("*/cifar10-jpeg.tar.gz"))  # staged for the pods
    for line in result.stdout.lines:
        found = re.match(r"report: (.+)$", line.strip())
        if found:
            assert Path(found.group(1)).is_file()
