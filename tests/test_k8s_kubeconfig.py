"""A kubeconfig that is not one (issue 30 item 11): one line naming the file and the fix, from every front door.

Hostile files are written here and read by the real ``kubernetes`` client's
loader behind ``load_configuration``; no cluster is involved (nothing is
contacted). Hypothesis then fuzzes the file's bytes and its YAML shape; each
test's ``max_examples`` keeps the module within seconds (``KBENCH_FUZZ_EXAMPLES``
raises it).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import ExecutorError
from harness.executors.kubernetes.client import load_configuration

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=int(os.environ.get("KBENCH_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
GOOD = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}


def write(folder: Path, kind: str) -> Path:
    """A kubeconfig file of one hostile kind, as a user might point --k8s-kubeconfig at by mistake."""
    path = folder / f"kubeconfig-{kind}"
    contents = {
        "text": b"these are my notes, not a kubeconfig\n",
        "binary": bytes(range(256)) * 4,
        "empty": b"",
        "blank": b"\n  \n",
        "yaml-list": b"- clusters\n- users\n",
        "broken-yaml": b"clusters: [\n",
        "wrong-types": b"apiVersion: v1\nclusters: 5\ncontexts: yes\nusers: {}\n",
        "no-such-context": yaml.safe_dump({**GOOD, "current-context": "gone"}).encode(),
    }
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(contents[kind])
    return path


KINDS = ["text", "binary", "empty", "blank", "yaml-list", "broken-yaml", "wrong-types", "no-such-context",
         "directory"]


def is_one_line_naming_the_fix(text: str, path: Path) -> bool:
    return "\n" not in text and "Traceback" not in text and str(path) in text and "--k8s-kubeconfig" in text


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_that_is_not_a_kubeconfig_is_one_line_naming_it_and_the_fix(tmp_path, kind):
    path = write(tmp_path, kind)
    with pytest.raises(ExecutorError) as raised:
        load_configuration(str(path), None)
    assert is_one_line_naming_the_fix(str(raised.value), path), raised.value


@pytest.mark.parametrize("kind", ["text", "binary", "directory"])
def test_kbench_cleanup_says_it_in_one_line_and_exits_1(tmp_path, capsys, kind):
    path = write(tmp_path, kind)
    code = main(["cleanup", "--run-id", "r1", "--k8s-kubeconfig", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("kbench: ") and err.count("\n") == 1 and is_one_line_naming_the_fix(err.rstrip("\n"), path), err


def test_the_benchmark_refuses_it_as_a_usage_error_before_any_test(tmp_path):
    """``pytest benchmarks/ --executor kubernetes``: exit 4 (usage error), no test run, no traceback.

    One pytest session (seconds): the text file, whose TypeError failed four cases on 4f05b5b; the other
    kinds reach the same ``load_configuration`` (above).
    """
    path = write(tmp_path, "text")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "-q", "-p", "no:cacheprovider",
         "-p", "no:hypothesispytest", "--backend", "tensorflow", "--profile", "smoke", "--executor", "kubernetes",
         "--k8s-kubeconfig", str(path), "--shared-dir", str(tmp_path / "shared"), "--work-dir",
         str(tmp_path / "work"), "--reports-dir", str(tmp_path / "reports")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 4, out[-2000:]
    assert "no tests ran" in out and "Traceback" not in out and "TypeError" not in out
    said = [line for line in out.splitlines() if "keras-multibackend:" in line]
    assert len(said) == 1 and is_one_line_naming_the_fix(said[0], path), out[-2000:]


def test_a_good_kubeconfig_still_loads(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(GOOD))
    assert load_configuration(str(path), None).host == "https://127.0.0.1:6443"


# -- fuzzing ------------------------------------------------------------------------------------------
hostile = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                    st.lists(st.integers(), max_size=2))
named_entry = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(["k", "u", "c"]), hostile),
    "cluster": st.one_of(hostile, st.fixed_dictionaries({}, optional={"server": st.one_of(hostile, st.just(
        "https://127.0.0.1:6443")), "insecure-skip-tls-verify": hostile})),
    "user": st.one_of(hostile, st.fixed_dictionaries({}, optional={"token": hostile, "username": hostile,
                                                                    "password": hostile})),
    "context": st.one_of(hostile, st.fixed_dictionaries({}, optional={"cluster": hostile, "user": hostile,
                                                                       "namespace": hostile})),
})
kubeconfig_shaped = st.fixed_dictionaries({}, optional={
    "apiVersion": hostile, "kind": hostile, "current-context": st.one_of(st.just("c"), hostile),
    "clusters": st.one_of(hostile, st.lists(named_entry, max_size=2)),
    "users": st.one_of(hostile, st.lists(named_entry, max_size=2)),
    "contexts": st.one_of(hostile, st.lists(named_entry, max_size=2)),
})
"""The kubeconfig's own keys with values of every shape (never an ``exec`` or auth-provider entry: nothing runs)."""


def loads_or_one_line(path: Path) -> None:
    try:
        load_configuration(str(path), None)
    except ExecutorError as err:
        assert is_one_line_naming_the_fix(str(err), path), err


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_fuzz_any_bytes_load_or_are_one_line(tmp_path, data):
    path = tmp_path / "kubeconfig"
    path.write_bytes(data)
    loads_or_one_line(path)


@FUZZ
@given(document=kubeconfig_shaped)
def test_fuzz_a_kubeconfig_shaped_yaml_loads_or_is_one_line(tmp_path, document):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    loads_or_one_line(path)
