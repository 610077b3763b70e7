"""``--device``: which GPUs the local executor finds, how it shares them out, and what the report says.

There is no GPU on the machines these tests run on, so the GPUs are a
stand-in: an ``nvidia-smi`` script on PATH that prints ``GPU 0: NVIDIA H200
(UUID: ...)`` lines and a driver header, as the real one does. The jobs are
real child processes of the real executor and scheduler, but their
"runtime" is a stand-in too: a shell script that records the
``CUDA_VISIBLE_DEVICES`` it was given and when it ran, then exits without a
result (so each job ends as failed, which the scheduling does not care
about). What a real GPU measures is ``benchmarks/gpu_check.sh``'s to show.
"""
from __future__ import annotations

import os
import stat
import sys
import types
from pathlib import Path

import pytest

from harness import plan, runtimes, tuning
from harness.backends import get
from harness.errors import ConfigError
from harness.executors import local_gpus
from harness.executors.base import ExecutorContext
from harness.executors.local import LocalExecutor
from harness.report.device_view import device_facts
from harness.run_store import RunStore
from harness.scheduler import Scheduler
from harness.scoring import speed
from harness.scoring.record import MemberFigures, RunAnalysis
from harness.workload import ceiling, environment, layout

pytest_plugins = ["pytester"]

UUIDS = ("GPU-0a0a0a0a-0000-0000-0000-000000000000", "GPU-1b1b1b1b-1111-1111-1111-111111111111",
         "GPU-2c2c2c2c-2222-2222-2222-222222222222")
RUN = "gpu-run"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def stand_in_nvidia_smi(folder: Path, gpus: int) -> Path:
    """An ``nvidia-smi`` that lists ``gpus`` H200s (``-L``) and prints a driver header otherwise."""
    listed = "".join(f'echo "GPU {i}: NVIDIA H200 (UUID: {UUIDS[i]})"\n' for i in range(gpus))
    return executable(folder / "nvidia-smi", (
        "#!/bin/sh\n"
        'if [ "$1" = "-L" ]; then\n' + listed + "exit 0\nfi\n"
        'echo "| NVIDIA-SMI 570.86.15    Driver Version: 570.86.15    CUDA Version: 12.8     |"\n'))


@pytest.fixture
def gpus(tmp_path, monkeypatch):
    """Install the stand-in nvidia-smi with N GPUs on PATH (and no CUDA_VISIBLE_DEVICES of our own)."""
    def install(count: int) -> Path:
        folder = tmp_path / f"bin-{count}"
        stand_in_nvidia_smi(folder, count)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        return folder

    return install


# -- finding GPUs -------------------------------------------------------------------------------
def test_gpus_are_found_with_nvidia_smi_and_its_driver_header(gpus):
    gpus(2)
    found = local_gpus.find()
    assert [(g.index, g.name, g.uuid) for g in found.gpus] == [("0", "NVIDIA H200", UUIDS[0]),
                                                               ("1", "NVIDIA H200", UUIDS[1])]
    assert (found.driver, found.cuda, found.how) == ("570.86.15", "12.8", "nvidia-smi -L")
    assert local_gpus.describe(found) == "2 x NVIDIA H200 (nvidia-smi -L)"


@pytest.mark.parametrize("visible, expected", [("1", ["1"]), (UUIDS[2] + ",0", ["2", "0"]), ("", []),
                                               ("0,7,1", ["0"])])
def test_cuda_visible_devices_of_the_harness_narrows_the_gpus_as_cuda_would(gpus, visible, expected):
    gpus(3)
    found = local_gpus.find(env={"CUDA_VISIBLE_DEVICES": visible})
    assert [g.index for g in found.gpus] == expected


def test_without_nvidia_smi_the_drivers_proc_folders_are_read(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    proc = tmp_path / "proc-gpus"
    (proc / "0000:17:00.0").mkdir(parents=True)
    (proc / "0000:17:00.0" / "information").write_text("Model: \t NVIDIA H200\nIRQ: 35\n")
    found = local_gpus.find(env={}, proc=proc)
    assert [(g.index, g.name) for g in found.gpus] == [("0", "NVIDIA H200")]
    assert local_gpus.find(env={}, proc=tmp_path / "none").gpus == ()


def test_device_gpu_without_a_gpu_is_one_line_naming_the_fix(gpus):
    gpus(0)
    executor = LocalExecutor(ExecutorContext(Path("/nonexistent"), Path("/nonexistent"), None), {"device": "gpu"})
    with pytest.raises(ConfigError) as err:
        executor.check()
    assert str(err.value) == ("--device gpu: no NVIDIA GPU visible (nvidia-smi -L); run on a machine with an NVIDIA "
                              "GPU and its driver, or pass --device cpu (or auto)")


@pytest.mark.parametrize("count, chosen, line", [
    (0, "cpu", "--device auto: CPU, no NVIDIA GPU visible (nvidia-smi -L)"),
    (1, "gpu", "--device auto: GPU, 1 x NVIDIA H200 (nvidia-smi -L)"),
])
def test_device_auto_takes_the_gpu_when_one_is_visible_and_says_so(gpus, count, chosen, line):
    gpus(count)
    said = []
    executor = LocalExecutor(ExecutorContext(Path("/x"), Path("/x"), None, said.append), {"device": "auto"})
    executor.check()
    assert executor.device(get("jax")) == chosen
    assert said == [line]


def test_on_a_gpu_keras_3_points_its_backends_at_it_and_keras_2_stays_on_the_cpu(gpus):
    gpus(1)
    executor = LocalExecutor(ExecutorContext(Path("/x"), Path("/x"), None), {"device": "gpu"})
    executor.check()
    assert {b: executor.device(get(b)) for b in ("tensorflow", "jax", "torch", "theano", "cntk")} == {
        "tensorflow": "gpu", "jax": "gpu", "torch": "gpu", "theano": "cpu", "cntk": "cpu"}
    jax, tf, torch = (tuning.job_env(get(b), 1, "gpu") for b in ("jax", "tensorflow", "torch"))
    assert jax["JAX_PLATFORMS"] == "cuda" and "XLA_FLAGS" not in jax
    assert tf["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert all(env["KBENCH_DEVICE"] == "gpu" for env in (jax, tf, torch))
    assert tuning.job_env(get("jax"), 1)["JAX_PLATFORMS"] == "cpu"
    assert "KBENCH_DEVICE" not in tuning.job_env(get("jax"), 1)


# -- sharing the GPUs out -------------------------------------------------------------------------
def stand_in_runtime(folder: Path, log: Path) -> runtimes.Runtime:
    """A "runtime" whose python records its phase, backend, CUDA_VISIBLE_DEVICES and run time, sleeps,
    and exits without a result file."""
    script = executable(folder / "bin" / "python", (
        "#!/bin/sh\n"
        "start=$(date +%s.%N)\n"
        "sleep 0.4\n"
        f'echo "$3 $KERAS_BACKEND [${{CUDA_VISIBLE_DEVICES-unset}}] $start $(date +%s.%N)" >> {log}\n'))
    (folder / runtimes.READY_MARKER).write_text("1")
    return runtimes.Runtime(runtimes.SPECS["keras3"], str(script), folder, executable=script)


def schedule(tmp_path: Path, settings: dict, backends: list[str], parallel: int | None = None):
    """Run train and speed jobs of ``backends`` through the real executor and scheduler; return each
    job's recorded run (phase, backend, CUDA_VISIBLE_DEVICES, start, end), the results and the parallelism."""
    shared, log = tmp_path / "shared", tmp_path / "jobs.log"
    RunStore(shared, RUN).write_settings({"schema": layout.SCHEMA_VERSION, "profile": {}, "dataset": {}})
    executor = LocalExecutor(ExecutorContext(shared, tmp_path / "work", parallel, lambda line: None), settings)
    executor.check()
    executor._runtimes["keras3"] = stand_in_runtime(tmp_path / "keras3", log)
    executor._runtimes["keras2"] = stand_in_runtime(tmp_path / "keras2", log)
    executor.prepare([])
    chosen = [get(b) for b in backends]
    parallel = parallel or executor.default_parallel(len(chosen))
    executor.set_concurrency(parallel, 1)
    jobs = plan.jobs(RUN, chosen, ("train", "speed"), 1, 1, 60.0, device=executor.device)
    results = Scheduler(executor, jobs, parallel).run_all()
    runs = []
    for line in log.read_text().splitlines():
        phase, backend, visible, start, end = line.split()
        runs.append((phase, backend, visible.strip("[]"), float(start), float(end)))
    return runs, results, parallel


def overlapping(runs):
    return [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:] if a[3] < b[4] and b[3] < a[4]]


def test_each_job_gets_a_gpu_of_its_own_and_speed_jobs_run_alone_on_the_first(gpus, tmp_path):
    gpus(2)
    runs, results, parallel = schedule(tmp_path, {"device": "gpu"}, ["tensorflow", "jax", "torch", "theano"])
    assert parallel == 2, "as many jobs at once as GPUs"
    assert len(runs) == 8
    by_job = {(phase, backend): visible for phase, backend, visible, _, _ in runs}
    for backend in ("tensorflow", "jax", "torch"):
        gpu = results[(backend, "train")].details["gpu"]
        assert by_job[("train", backend)] == gpu["uuid"] and gpu["name"] == "NVIDIA H200"
        assert by_job[("speed", backend)] == UUIDS[0], "every backend is timed on the same GPU"
    assert by_job[("train", "theano")] == by_job[("speed", "theano")] == "", "Keras 2 is shown no GPU"
    assert "gpu" not in results[("theano", "train")].details
    for a, b in overlapping(runs):
        assert "speed" not in (a[0], b[0]), f"{a[:2]} ran beside {b[:2]}: a speed job runs alone"
        assert a[2] == "" or a[2] != b[2], f"{a[:2]} and {b[:2]} shared GPU {a[2]}"
    assert any(a[2] and b[2] for a, b in overlapping(runs)), "two GPUs: two GPU jobs at once, at some point"


def test_with_one_gpu_jobs_run_one_at_a_time_even_when_more_are_allowed(gpus, tmp_path):
    gpus(1)
    runs, _, parallel = schedule(tmp_path, {"device": "gpu"}, ["jax", "torch"])
    assert parallel == 1
    assert len(runs) == 4 and not overlapping(runs)
    runs, _, _ = schedule(tmp_path / "asked-3", {"device": "gpu"}, ["tensorflow", "jax", "torch"], parallel=3)
    assert len(runs) == 6 and not overlapping(runs), "--parallel above the GPUs: jobs wait for a free one"
    assert {r[2] for r in runs} == {UUIDS[0]}


def test_cpu_jobs_on_a_gpu_machine_are_shown_no_gpu(gpus, tmp_path):
    gpus(2)
    runs, results, _ = schedule(tmp_path, {"device": "cpu"}, ["jax"])
    assert {r[2] for r in runs} == {""}
    assert "gpu" not in results[("jax", "train")].details


def test_without_a_gpu_cpu_jobs_keep_the_environment_they_had(gpus, tmp_path):
    gpus(0)
    runs, _, _ = schedule(tmp_path, {"device": "cpu"}, ["jax"])
    assert {r[2] for r in runs} == {"unset"}


def test_pytest_with_device_gpu_and_no_gpu_stops_in_one_line_before_any_job(pytester, gpus, tmp_path):
    gpus(0)
    pytester.makepyfile(test_cases="def test_train(backend_name, kbench):\n    kbench.check('train', backend_name)\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--backend", "jax", "--device", "gpu",
                                           "--shared-dir", str(tmp_path / "shared"), "--work-dir", str(tmp_path / "w"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    said = [line for line in result.outlines + result.errlines if "--device gpu" in line]
    assert len(said) == 1 and "no NVIDIA GPU visible (nvidia-smi -L); run on a machine with an NVIDIA GPU" in said[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (tmp_path / "shared").exists(), "no run may start"


# -- what the report says ---------------------------------------------------------------------------
def test_the_gpu_ceiling_is_float32s_with_tf32_and_bfloat16_listed_beside():
    result = {"ceiling": {"machine": {"id": "h200", "device": "gpu", "gpu_model": "NVIDIA H200"}, "threads": 1,
                          "kernels": {"jax-gpu-float32": {"gflops": 51000.0},
                                      "jax-gpu-tf32": {"gflops": 400000.0, "beside": True},
                                      "jax-gpu-bfloat16": {"gflops": 700000.0, "beside": True}}}}
    found = speed.ceilings({"jax": result})[("h200", 1)]
    assert (found["kernel"], found["gflops"]) == ("jax-gpu-float32", 51000.0)
    assert found["kernels"]["jax-gpu-tf32"]["beside"] is True


def test_what_ran_names_the_gpu_its_driver_the_cpu_backends_and_each_jobs_peak_memory():
    analysis = RunAnalysis(run_id="r", method="seed", settings={
        "runtime": {"mode": "current", "python": "/env/bin/python",
                    "versions": {"jax": {"python": "3.11.9", "keras": "3.15.1", "library": "0.10.2"},
                                 "torch": {"python": "3.11.9", "keras": "3.15.1", "library": "2.13.0"}}},
        "device": {"kind": "gpu", "gpus": [{"index": "0", "name": "NVIDIA H200", "uuid": UUIDS[0]}],
                   "driver": "570.86.15", "cuda_driver": "12.8",
                   "backends": {"jax": "gpu", "torch": "gpu", "theano": "cpu"}}},
        members={"torch": MemberFigures(state="ok", environment={"gpu": {"cuda": "12.8"}})},
        statuses={"jax/train": {"details": {"gpu_memory": {"peak_mib": 812.4, "source": "jax's"}}},
                  "jax/speed": {"details": {"gpu_memory": {"peak_mib": None, "error": "no stats"}}},
                  "theano/train": {"details": {}}})
    facts = dict(device_facts(analysis))
    assert facts["Runtime"] == ("current: the Python that ran pytest, /env/bin/python (Python 3.11.9): keras 3.15.1; "
                                "jax 0.10.2, torch 2.13.0; Theano and CNTK, where run, in their managed runtimes")
    assert facts["Device"] == ("GPU: 1 x NVIDIA H200, driver 570.86.15 (CUDA 12.8 at most); each job on a GPU of "
                               "its own; backends built for CUDA: torch 12.8. On the CPU: theano (Keras 2.3.1's "
                               "builds here have no GPU path)")
    assert facts["Peak GPU memory"] == ("jax: speed not read (no stats), train 812 MiB (each backend's own "
                                        "allocator: jax's)")
    cpu = RunAnalysis(run_id="r", method="seed", settings={"runtime": {"mode": "managed"},
                                                         "device": {"kind": "cpu", "backends": {"jax": "cpu"}}})
    assert dict(device_facts(cpu))["Device"] == "CPU"
    assert device_facts(RunAnalysis(run_id="r", method="seed")) == [], "a run from before says nothing"


def test_a_run_is_resumed_only_on_the_device_it_started_on(tmp_path):
    store = RunStore(tmp_path, "r")
    base = {"schema": layout.SCHEMA_VERSION, "profile": {}, "dataset": {}}
    store.write_settings({**base, "device": {"kind": "cpu"}, "runtime": {"mode": "managed"}})
    store.write_settings({**base})  # an executor that does not say ran on CPUs, in managed runtimes
    with pytest.raises(ConfigError, match=r"started with a different device \(\"cpu\", now \"gpu\"\)"):
        store.write_settings({**base, "device": {"kind": "gpu"}, "runtime": {"mode": "managed"}})
    with pytest.raises(ConfigError, match="started with a different runtime"):
        store.write_settings({**base, "device": {"kind": "cpu"}, "runtime": {"mode": "current"}})


# -- inside a GPU job, with a stand-in torch ----------------------------------------------------------
class StandInTorch(types.ModuleType):
    """Just enough of ``torch`` for the GPU ceiling and memory code: a "GPU" named NVIDIA H200 whose
    multiplies are recorded, not computed (so the rates measured here mean nothing; the plumbing does)."""

    float32, bfloat16 = "float32", "bfloat16"

    def __init__(self):
        super().__init__("torch")
        self.calls: list = []
        self.precision = "highest"
        self.version = types.SimpleNamespace(cuda="12.8")
        self.backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(version=lambda: 91000))
        self.cuda = types.SimpleNamespace(
            synchronize=lambda: self.calls.append("synchronize"), get_device_name=lambda i: "NVIDIA H200",
            max_memory_allocated=lambda: 512 * 2 ** 20,
            get_device_properties=lambda i: types.SimpleNamespace(total_memory=141 * 2 ** 30, major=9, minor=0))

    def Generator(self, device):  # torch's name
        return types.SimpleNamespace(manual_seed=lambda seed: None)

    def rand(self, *shape, device, dtype, generator):
        return (dtype, self.precision)

    def mm(self, a, b):
        self.calls.append(("mm", a[0], self.precision))

    def get_float32_matmul_precision(self):
        return self.precision

    def set_float32_matmul_precision(self, value):
        self.precision = value


def test_a_gpu_jobs_ceiling_is_its_backends_float32_matmul_with_tf32_and_bfloat16_beside(monkeypatch, tmp_path):
    torch = StandInTorch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setenv("KBENCH_DEVICE", "gpu")
    monkeypatch.setenv("KBENCH_CEILING_SECONDS", "0.05")
    found = ceiling.measure("torch", 1, str(tmp_path))
    assert found["machine"]["gpu_model"] == "NVIDIA H200" and found["theoretical_peak"] is None
    assert sorted(found["kernels"]) == ["torch-gpu-bfloat16", "torch-gpu-float32", "torch-gpu-tf32"]
    assert found["best"]["kernel"] == "torch-gpu-float32"
    assert [k for k, v in found["kernels"].items() if v.get("beside")] == ["torch-gpu-tf32", "torch-gpu-bfloat16"]
    multiplied = {(dtype, precision) for kind, dtype, precision in (c for c in torch.calls if c != "synchronize")}
    assert multiplied == {("float32", "highest"), ("float32", "high"), ("bfloat16", "high")}
    assert torch.calls.count("synchronize") * ceiling.GPU_REPEATS == len(torch.calls) - torch.calls.count("synchronize")
    assert torch.precision == "highest", "the job's own TF32 setting is put back"
    assert environment.gpu_memory("torch") == {"source": "torch.cuda.max_memory_allocated()", "peak_mib": 512.0}
    facts = environment.gpu_facts("torch")
    assert (facts["name"], facts["cuda"], facts["memory_mib"], facts["capability"]) == ("NVIDIA H200", "12.8",
                                                                                        144384, "9.0")
    monkeypatch.delenv("KBENCH_DEVICE")
    assert environment.gpu_memory("torch") is None and environment.gpu_facts("torch") is None


STAND_IN_KERAS = "import os\n__version__ = '3.99'\nclass backend:\n    backend = staticmethod(lambda: os.environ['KERAS_BACKEND'])\n"
STAND_IN_TORCH = ("import os\n__version__ = '9.9+{build}'\nclass version:\n    cuda = {cuda!r}\n"
                  "class cuda:\n    is_available = staticmethod(lambda: {gpu})\n"
                  "    device_count = staticmethod(lambda: 1)\n"
                  "open(os.environ['SEEN'], 'w').write(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))\n")


@pytest.mark.parametrize("gpu", [True, False])
def test_on_a_gpu_each_backend_is_asked_first_whether_it_sees_one(gpus, tmp_path, monkeypatch, gpu):
    """Stand-in keras and torch packages on PYTHONPATH play the current environment's."""
    gpus(2)
    site = tmp_path / "site"
    (site / "keras").mkdir(parents=True)
    (site / "keras" / "__init__.py").write_text(STAND_IN_KERAS)
    (site / "torch.py").write_text(STAND_IN_TORCH.format(build="cu128" if gpu else "cpu",
                                                         cuda="12.8" if gpu else None, gpu=gpu))
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("SEEN", str(tmp_path / "seen"))
    executor = LocalExecutor(ExecutorContext(tmp_path, tmp_path, None, lambda line: None, runtime="current"),
                             {"device": "gpu"})
    executor.check()
    reasons = executor.unavailable([get("torch")])
    assert (tmp_path / "seen").read_text() == UUIDS[0], "asked on the GPU its jobs would use first"
    if gpu:
        assert reasons == {}
        assert executor.facts([get("torch")])["runtime"]["versions"]["torch"]["cuda"] == "12.8"
    else:
        assert reasons == {"torch": f"keras with torch cannot be used by {sys.executable}: torch 9.9+cpu sees no "
                                    "GPU (a CPU-only build?); install a CUDA build of torch for that Python, or "
                                    "pass --device cpu"}
