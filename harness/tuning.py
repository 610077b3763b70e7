"""Each backend's switches for a job: thread pools and quieter logs.

The same environment is given to a job on every executor, and each result
file records what was in effect, so anyone can see the configuration behind
a number.
"""
from __future__ import annotations

from harness.backends import Backend


def job_env(backend: Backend, threads: int, device: str = "cpu") -> dict[str, str]:
    """Environment variables for one job of ``backend`` allowed ``threads`` CPU threads, computing on
    ``device`` (``cpu``, or ``gpu``: which GPU is the executor's to give, in ``CUDA_VISIBLE_DEVICES``).

    On a GPU, JAX is pointed at CUDA (it would otherwise keep to the CPU, as
    every CPU job is told to) and TensorFlow allocates GPU memory as it needs
    it rather than all of it at start-up; PyTorch's Keras backend takes the
    GPU it is shown by itself. ``KBENCH_DEVICE`` tells the job, which then
    records the GPU, its peak memory and its own ceiling.
    """
    n = str(max(1, threads))
    env = {
        "KERAS_BACKEND": backend.keras_backend,
        "KBENCH_THREADS": n,
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "PYTHONUNBUFFERED": "1",
        "PYTHONHASHSEED": "0",
    }
    gpu = device == "gpu"
    if gpu:
        env["KBENCH_DEVICE"] = "gpu"
    if backend.name == "tensorflow":
        env.update(TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
        if gpu:
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    elif backend.name == "jax":
        env.update(JAX_PLATFORMS="cuda" if gpu else "cpu", TF_CPP_MIN_LOG_LEVEL="2")
        if threads <= 1 and not gpu:
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env
