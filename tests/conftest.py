"""Shared fixtures: tiny real data sets and the machine's runtimes.

Tests that train use real Keras on real (tiny) data in real subprocesses; the
runtimes they need are built once under ``<repo>/.kbench`` (or
``$KBENCH_WORK_DIR``) and shared with ``pytest benchmarks/``.
"""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import runtimes

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("cat", "dog", "ship")


# The suite's real sessions test the timed sections' plumbing, not their figures: each matmul kernel of the
# ceiling timed for 0.2 s instead of 1.5 s, a timed section starts after one 0.1 s sample of the machine
# instead of 3 s of quiet, and a job does not wait beyond that for quiet (30 s otherwise): its sessions run
# beside other tests (./dev test runs two at a time), so the machine is seldom quiet, and each section is
# timed anyway, its own reading saying whether it was contended. The jobs inherit these.
os.environ.setdefault("KBENCH_CEILING_SECONDS", "0.2")
os.environ.setdefault("KBENCH_QUIET_FOR_S", "0.1")
os.environ.setdefault("KBENCH_QUIET_WAIT_S", "0")
TIMING_KNOBS = ("KBENCH_CEILING_SECONDS", "KBENCH_QUIET_FOR_S", "KBENCH_QUIET_WAIT_S")
"""The variables above, for tests that start a job with an environment of their own."""

FAST_TIER_LIMIT_S = 10.0
"""A test not marked ``slow`` that takes longer fails: the fast tier (``./dev test``) is the inner loop.
Only where the fast tier runs by itself (``-m "not slow"``): beside the slow tier's real sessions (``./dev test
--all``) a test's wall time says how busy the machine was. Not while ``KBENCH_FUZZ_EXAMPLES`` asks the fuzz
tests for more examples than CI runs (a deliberate long run)."""


def _fast_tier_alone(config: pytest.Config) -> bool:
    return "not slow" in (config.getoption("markexpr", "") or "") and "KBENCH_FUZZ_EXAMPLES" not in os.environ


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.passed and item.get_closest_marker("slow") is None \
            and call.duration > FAST_TIER_LIMIT_S and _fast_tier_alone(item.config):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} is in the fast tier but took {call.duration:.1f} s, over "
                           f"{FAST_TIER_LIMIT_S:g} s: make it faster or mark it slow (@pytest.mark.slow)")


@pytest.fixture(autouse=True)
def _sessions_of_their_own(monkeypatch):
    """A benchmark session a test starts (pytester, a subprocess) is a session of its own, not a worker of
    ./dev test's pytest-xdist: pytest-benchmark turns itself off when it sees xdist's worker variable."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests first, in their own order: ``./dev test --all`` hands whole files to two
    workers in collection order, so the long real sessions start early and the fast files fill in after."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_configure(config: pytest.Config) -> None:
    """Every warning is an error in the harness's own tests, and only here.

    Set here rather than in pyproject.toml so that it does not reach
    ``pytest benchmarks/``: a library's warning must never fail a user's benchmark.
    """
    config.addinivalue_line("filterwarnings", "error")


def work_dir() -> Path:
    return Path(os.environ.get("KBENCH_WORK_DIR", REPO / ".kbench"))


def write_image_folder(root: Path, per_class: dict[str, int] | None = None, size: int = 32,
                       classes=CLASSES, seed: int = 0) -> Path:
    """An image-folder data set whose classes differ in colour, so a CNN can learn it."""
    per_class = per_class or {"train": 12, "test": 6}
    rng = np.random.RandomState(seed)
    for split, count in per_class.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.randint(0, 60, size=(size, size, 3)).astype(np.uint8)
                pixels[..., c % 3] += 150
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def write_tarball(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return target


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def image_tarball(image_folder: Path, tmp_path: Path) -> Path:
    return write_tarball(image_folder, tmp_path / "images.tar.gz")


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def runtime_for():
    """Build (once) and return the runtime of a backend, or skip with the reason it cannot run."""
    built: dict[str, runtimes.Runtime] = {}

    def get(backend) -> runtimes.Runtime:
        if backend.runtime not in built:
            runtime = runtimes.resolve(backend.runtime, work_dir())
            if runtime.unavailable_reason:
                pytest.skip(f"{backend.name} cannot run on this machine: {runtime.unavailable_reason}")
            built[backend.runtime] = runtimes.ensure(runtime, say=lambda line: None)
        return built[backend.runtime]

    return get


@pytest.fixture
def keras_download_cached(tmp_path_factory, monkeypatch) -> Path:
    """A Keras cache that holds the CIFAR-10 download, for sessions on ``--dataset keras`` that run no job.

    The harness checks before any job that the download can be had
    (``harness.keras_dataset``); these sessions only reuse synthetic results.
    """
    home = tmp_path_factory.mktemp("keras-home")
    (home / "datasets" / "cifar-10-batches-py").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home
