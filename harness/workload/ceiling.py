"""The machine's float32 multiply ceiling: the denominator of model FLOP utilisation (MFU).

The ceiling is the highest float32 matrix-multiply rate any kernel available
on this machine reaches at the job's thread count: numpy's BLAS as the
environment configures it, numpy's OpenBLAS with its own kernel choice
(``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed, in a child process,
only for this measurement), and the backend's own matmul (TensorFlow's and
PyTorch's, XLA's for JAX, Theano's BLAS, CNTK's MKL). Each kernel is measured
once per machine and thread count and kept in the shared cache
(``layout.ceiling_cache_path``), so every speed job of every run on the same
machine adds its kernels and reads everyone's; the harness takes the best. Delete the
cache file to measure from scratch. Each kernel is timed once the machine has been
quiet for a few seconds (waiting at most the run's limit) and with the outside
load read around it (``machine_load``): a rate measured while others used the
machine is marked contended in the cache and measured again by the next job,
which keeps the better of the two.

The theoretical peak (cores x clock x float32 FLOP per cycle from the CPU's
vector flags) is shown beside it where the CPU says enough to compute one.

On a GPU (``KBENCH_DEVICE=gpu``) the ceiling is the GPU's own: the backend's
float32 matmul on it (``GPU_SIZE`` square matrices, ``GPU_REPEATS`` multiplies
between synchronisations, TF32 off), so MFU means what it means on a CPU.
The same multiply in TF32 and in bfloat16 is measured and listed beside it
(``beside``), never taken as the ceiling. The machine is the GPU model.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

from harness.workload import layout, machine_load

SIZE = 2048
"""Square matrices: 17.2 GFLOP a multiply, large enough that every kernel runs at its best."""
SECONDS = 1.5
"""Per kernel: the best of every multiply within this long (after one warm-up);
``KBENCH_CEILING_SECONDS`` shortens it where only the plumbing matters (the test suite)."""
REMOVED_FOR_AUTO = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
FLOP_PER_CYCLE = (("avx512f", 64, "AVX-512: 2 FMA units x 16 float32 lanes x 2"),
                  ("avx2", 32, "AVX2+FMA: 2 FMA units x 8 float32 lanes x 2"),
                  ("avx", 16, "AVX: 8-lane add + 8-lane multiply"),
                  ("sse", 8, "SSE: 4-lane add + 4-lane multiply"))


GPU_SIZE = 8192
"""1.1 TFLOP a multiply: tens of milliseconds even on the fastest GPU, so launch costs do not count."""
GPU_REPEATS = 10
"""Multiplies queued between two synchronisations."""
GPU_PRECISIONS = (("float32", "float32 matmul on the GPU, TF32 off"),
                  ("tf32", "float32 inputs with TF32 tensor-core arithmetic"),
                  ("bfloat16", "bfloat16 inputs"))
BESIDE = ("tf32", "bfloat16")
"""Kernels listed beside the ceiling, never taken as it: the ceiling is float32's, as the model trains."""


def _cpuinfo():
    fields = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if ":" not in line:
                    if fields.get("flags"):
                        break  # the first processor's block is enough
                    continue
                key, value = line.split(":", 1)
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def machine():
    """What the ceiling belongs to: CPU model, vector flags, usable cores, and an id for the cache."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    vector = [name for name in ("avx512f", "avx512_bf16", "amx_tile", "avx2", "fma", "avx", "sse")
              if name in flags]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    model = info.get("model name") or "unknown CPU"
    mhz = None
    try:
        mhz = float(info.get("cpu mhz", ""))
    except ValueError:
        pass
    ident = hashlib.sha256(json.dumps([model, vector, os.cpu_count()]).encode("utf-8")).hexdigest()[:12]
    return {"id": ident, "cpu_model": model, "vector_flags": vector, "cpus": os.cpu_count(),
            "usable_cpus": cores, "reported_mhz": mhz}


def theoretical_peak(threads, info):
    """``{"gflops", "how"}``: threads x reported clock x FLOP per cycle, or None when not knowable."""
    flags = set(info.get("vector_flags") or [])
    mhz = info.get("reported_mhz")
    if not mhz:
        return None
    for flag, per_cycle, how in FLOP_PER_CYCLE:
        if flag in flags and (flag != "avx2" or "fma" in flags):
            return {"gflops": round(threads * mhz / 1000.0 * per_cycle, 1),
                    "how": "%d core(s) x %.2f GHz (the clock the CPU reports; turbo can run above it) x %d "
                           "float32 FLOP/cycle (%s; the count of FMA units is assumed, not read)"
                           % (threads, mhz / 1000.0, per_cycle, how)}
    return None


def _seconds():
    try:
        return max(0.05, float(os.environ.get("KBENCH_CEILING_SECONDS", SECONDS)))
    except ValueError:
        return SECONDS


def best_rate(multiply, seconds=None, flop=2.0 * SIZE ** 3):
    """GFLOP/s of the fastest of repeated calls of ``multiply`` (which must finish its work)."""
    seconds = _seconds() if seconds is None else seconds
    multiply()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        multiply()
        took = time.perf_counter() - start
        best = max(best, flop / took / 1e9)
        if time.perf_counter() > deadline:
            return round(best, 1)


def _matrices():
    import numpy as np

    rng = np.random.RandomState(0)
    return rng.rand(SIZE, SIZE).astype(np.float32), rng.rand(SIZE, SIZE).astype(np.float32)


def numpy_rate():
    import numpy as np

    a, b = _matrices()
    return best_rate(lambda: np.dot(a, b))


def _backend_multiply(backend):
    """A function that multiplies two float32 matrices with the backend's own kernel, to completion."""
    a, b = _matrices()
    if backend == "tensorflow":
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        return lambda: tf.linalg.matmul(ta, tb).numpy()
    if backend == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(ta, tb)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        ja, jb = jnp.asarray(a), jnp.asarray(b)
        dot = jax.jit(jnp.dot)
        return lambda: dot(ja, jb).block_until_ready()
    if backend == "theano":
        import theano
        import theano.tensor as T

        x, y = T.fmatrix(), T.fmatrix()
        f = theano.function([x, y], T.dot(x, y))
        return lambda: f(a, b)
    if backend == "cntk":
        import cntk as C

        x = C.input_variable((SIZE, SIZE), dtype=a.dtype)
        product = C.times(x, C.constant(b))
        return lambda: product.eval({x: a[None]})
    return None


def _gpu_multiply(backend, precision):
    """(multiply, restore): ``GPU_REPEATS`` matmuls on the job's GPU in ``precision``, then a
    synchronisation, so the call returns when the GPU has done them; ``restore`` puts back the
    backend's TF32 setting, which the float32 and TF32 kernels change."""
    n = GPU_SIZE
    if backend == "torch":
        import torch

        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision({"float32": "highest"}.get(precision, "high"))
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        generator = torch.Generator(device="cuda").manual_seed(0)
        a = torch.rand(n, n, device="cuda", dtype=dtype, generator=generator)
        b = torch.rand(n, n, device="cuda", dtype=dtype, generator=generator)

        def multiply():
            for _ in range(GPU_REPEATS):
                torch.mm(a, b)
            torch.cuda.synchronize()

        return multiply, lambda: torch.set_float32_matmul_precision(before)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        dtype = jnp.bfloat16 if precision == "bfloat16" else jnp.float32
        how = jax.lax.Precision.HIGHEST if precision == "float32" else jax.lax.Precision.DEFAULT
        a, b = (jax.random.uniform(jax.random.PRNGKey(i), (n, n), dtype=dtype) for i in (0, 1))
        dot = jax.jit(lambda x, y: jnp.dot(x, y, precision=how))

        def multiply():
            for _ in range(GPU_REPEATS):
                out = dot(a, b)
            out.block_until_ready()  # one stream: the last done means all done

        return multiply, lambda: None
    if backend == "tensorflow":
        import tensorflow as tf

        before = tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
        dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
        with tf.device("/GPU:0"):
            a = tf.cast(tf.random.stateless_uniform((n, n), seed=(0, 0)), dtype)
            b = tf.cast(tf.random.stateless_uniform((n, n), seed=(0, 1)), dtype)

        def multiply():
            with tf.device("/GPU:0"):
                for _ in range(GPU_REPEATS):
                    out = tf.linalg.matmul(a, b)
                out[0, 0].numpy()  # a scalar back to the host: the stream has run every multiply

        return multiply, lambda: tf.config.experimental.enable_tensor_float_32_execution(before)
    return None, None


def gpu_rate(backend, precision):
    """GFLOP/s of the backend's matmul on the job's GPU in ``precision`` (see ``_gpu_multiply``)."""
    multiply, restore = _gpu_multiply(backend, precision)
    if multiply is None:
        raise ValueError("%s has no GPU matmul here" % backend)
    try:
        return best_rate(multiply, flop=GPU_REPEATS * 2.0 * GPU_SIZE ** 3)
    finally:
        restore()


def gpu_kernels(backend):
    """[(kernel name, what it is, function returning GFLOP/s)] of the backend on the job's GPU."""
    return [("%s-gpu-%s" % (backend, precision), "%s's %s" % (backend, what),
             (lambda p: lambda: gpu_rate(backend, p))(precision))
            for precision, what in GPU_PRECISIONS]


def is_beside(name):
    """Whether a kernel is listed beside the ceiling rather than counted for it (TF32, bfloat16)."""
    return any(name.endswith("-" + precision) for precision in BESIDE)


def gpu_machine(backend):
    """What a GPU ceiling belongs to: the GPU model (its id for the cache), the host CPU beside it."""
    from harness.workload import environment

    name = environment.gpu_name(backend) or "unknown GPU"
    ident = hashlib.sha256(json.dumps(["gpu", name]).encode("utf-8")).hexdigest()[:12]
    return {"id": ident, "device": "gpu", "gpu_model": name, "cpu_model": _cpuinfo().get("model name"),
            "cpus": os.cpu_count()}


NUMPY_AUTO_CODE = ("import sys; sys.path.insert(0, %r); from harness.workload import ceiling; "
                   "print(ceiling.numpy_rate())")


def numpy_auto_rate():
    """numpy in a child process with OpenBLAS's own kernel choice (the ``OPENBLAS_*`` overrides removed)."""
    env = dict((k, v) for k, v in os.environ.items() if k not in REMOVED_FOR_AUTO)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.check_output([sys.executable, "-c", NUMPY_AUTO_CODE % root], env=env,
                                  universal_newlines=True, timeout=120)
    return float(out.strip().splitlines()[-1])


def kernels_for(backend):
    """[(kernel name, what it is, function returning GFLOP/s)] this job can measure."""
    from harness.workload import environment

    if environment.on_gpu():
        return gpu_kernels(backend)
    import numpy

    coretype = os.environ.get("OPENBLAS_CORETYPE")
    # each runtime has its own numpy and BLAS build: named by version, so one does not stand for another
    name = "numpy-%s" % numpy.__version__
    found = [(name, "numpy %s's BLAS as configured%s" % (numpy.__version__, " (OPENBLAS_CORETYPE=%s)" % coretype
                                                          if coretype else ""), numpy_rate)]
    if any(k in os.environ for k in REMOVED_FOR_AUTO):
        found.append((name + "-auto", "numpy %s's OpenBLAS with its own kernel choice (%s removed for this "
                      "measurement only)" % (numpy.__version__, ", ".join(REMOVED_FOR_AUTO)), numpy_auto_rate))
    found.append((backend, "%s's own float32 matmul" % backend,
                  lambda: best_rate(_backend_multiply(backend))))
    return found


def _load():
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _busy(kernel):
    """Whether a cached rate was measured while others used the machine (its load reading says so; a
    rate cached before readings existed: when more was runnable than the machine has cores): then it
    may be low, and it is measured again (the better of the two is kept)."""
    if "contended" in kernel:
        return bool(kernel["contended"])
    load, cpus = kernel.get("load_1min"), kernel.get("cpus") or os.cpu_count() or 1
    return load is None or load > cpus


def _read(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def measure(backend, threads, cache_root, say=None, wait=None):
    """Every kernel's rate on this machine at ``threads`` threads: cached ones read, missing ones measured.

    Returns ``{"machine", "threads", "kernels": {name: {"gflops", "what", "measured_at"}},
    "best": {"kernel", "gflops"}, "theoretical_peak": ...}``. A kernel that cannot
    run here is recorded with its error, not measured. ``wait`` is called before each kernel is timed
    (``machine_load.wait_for_quiet``).
    """
    from harness.workload import environment

    info = gpu_machine(backend) if environment.on_gpu() else machine()
    path = layout.ceiling_cache_path(cache_root, info["id"], threads)
    cached = _read(path).get("kernels", {})
    kernels = dict(cached)
    measured = []
    for name, what, rate in kernels_for(backend):
        if name in cached and cached[name].get("gflops") and not _busy(cached[name]):
            continue
        try:
            if wait is not None:
                wait()
            load = _load()
            with machine_load.LoadMeter() as meter:
                value = rate()
            known = cached.get(name) or {}
            if known.get("gflops") and known["gflops"] >= value:
                continue  # an earlier measurement on a busier machine still beat this one
            kernels[name] = {"gflops": value, "what": what, "measured_at": time.time(), "load_1min": load,
                             "cpus": os.cpu_count(), "contended": meter.result.get("contended"),
                             "outside_load": {k: meter.result.get(k) for k in ("others_cores", "steal_share")},
                             "load_reasons": meter.result.get("reasons")}
            if is_beside(name):
                kernels[name]["beside"] = True
            measured.append(name)
        except Exception as err:  # a kernel this runtime cannot run is noted, never fatal
            kernels[name] = {"gflops": None, "what": what, "error": "%s: %s" % (type(err).__name__, err)}
            if is_beside(name):
                kernels[name]["beside"] = True
    if measured:
        try:
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            latest = _read(path).get("kernels", {})  # another machine's job may have added some
            latest.update(dict((k, kernels[k]) for k in measured))
            kernels = dict(latest, **dict((k, v) for k, v in kernels.items() if k not in latest))
            layout.atomic_write_json(path, {"machine": info, "threads": threads, "kernels": latest})
        except OSError as err:
            if say:
                say("could not cache the ceiling in %s (%s)" % (path, err))
    usable = [(v["gflops"], k) for k, v in kernels.items() if v.get("gflops") and not is_beside(k)]
    best = max(usable) if usable else (None, None)
    return {"machine": info, "threads": threads, "kernels": kernels, "measured_now": measured,
            "best": {"kernel": best[1], "gflops": best[0]},
            "theoretical_peak": None if environment.on_gpu() else theoretical_peak(threads, info)}
