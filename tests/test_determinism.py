"""Two runs of the same backends with the same seed: bit-identical or not, and by how much.

Run folders in the real layout (``tests.run_fixtures``) with weights written
beside them; no training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.scoring import determinism
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run


def two_runs(tmp_path: Path, nudge: dict[str, float]) -> tuple[Path, Path]:
    folders = []
    for run_id in ("first", "second"):
        folder = write_run(tmp_path, RunSpec(run_id=run_id, backends=("tensorflow", "theano")))
        for backend in ("tensorflow", "theano"):
            weights = [np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), np.zeros(4, np.float32)]
            if run_id == "second":
                weights[0] = weights[0] + np.float32(nudge.get(backend, 0.0))
            layout.atomic_save_npz(str(folder / backend / layout.WEIGHTS), weights)
        folders.append(folder)
    return folders[0], folders[1]


def test_identical_runs_are_bit_reproducible_and_a_nudged_one_says_by_how_much(tmp_path: Path) -> None:
    first, second = two_runs(tmp_path, {"theano": 1e-3})
    found = determinism.compare_runs(first, second)
    assert found["tensorflow"]["bit_reproducible"] is True
    assert found["tensorflow"]["weights"] == {"identical": True, "max_abs_diff": 0.0}
    theano = found["theano"]
    assert theano["bit_reproducible"] is False and not theano["weights"]["identical"]
    assert abs(theano["weights"]["max_abs_diff"] - 1e-3) < 1e-6


def test_a_backend_without_weights_is_reported_not_compared(tmp_path: Path) -> None:
    first, second = two_runs(tmp_path, {})
    (second / "theano" / layout.WEIGHTS).unlink()
    found = determinism.compare_runs(first, second)
    assert found["theano"]["compared"] is False and "run theano's train job" in found["theano"]["reason"]
    assert found["tensorflow"]["compared"] is True


def test_the_script_prints_one_line_per_backend(tmp_path: Path, capsys) -> None:
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "determinism.py"
    spec = importlib.util.spec_from_file_location("kbench_determinism_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first, second = two_runs(tmp_path, {"theano": 0.5})
    assert module.main([str(first), str(second)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["tensorflow", "bit-identical"]
    assert lines[1].startswith("theano") and "weights by up to 0.5," in lines[1]
