"""What a result was measured on, and the in-process thread settings.

Recorded in every result file so anyone can see the Python, Keras and backend
versions, the thread settings and the CPU (or GPU) behind a number, and on a
GPU the most memory the backend's allocator held.
"""
import os
import platform
import resource
import socket
import sys

THREAD_VARIABLES = ("KBENCH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "XLA_FLAGS", "TF_XLA_FLAGS",
                    "THEANO_FLAGS", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "TF_ENABLE_ONEDNN_OPTS",
                    "KBENCH_JIT_COMPILE", "KBENCH_DATA_FORMAT", "KBENCH_DEVICE", "JAX_PLATFORMS",
                    "TF_FORCE_GPU_ALLOW_GROWTH")

DEVICE_VARIABLE = "KBENCH_DEVICE"
"""``gpu`` when the harness gave this job a GPU (``CUDA_VISIBLE_DEVICES``); unset on the CPU."""

JIT_VARIABLE = "KBENCH_JIT_COMPILE"
"""Keras 3's ``compile(jit_compile=...)`` for a job: ``auto`` (Keras's default), ``true`` or ``false``."""
DATA_FORMAT_VARIABLE = "KBENCH_DATA_FORMAT"
"""A job's image layout, ``channels_last`` or ``channels_first``, instead of the backend's default."""
JIT_CHOICES = {"auto": "auto", "true": True, "false": False}


def jit_compile():
    """The ``jit_compile`` argument this job compiles with (Keras 3 only); a bad value is an error."""
    text = os.environ.get(JIT_VARIABLE, "auto").strip().lower() or "auto"
    if text not in JIT_CHOICES:
        raise ValueError("%s=%s: use auto, true or false" % (JIT_VARIABLE, os.environ.get(JIT_VARIABLE)))
    return JIT_CHOICES[text]


def data_format(default):
    """The image layout of this job: ``KBENCH_DATA_FORMAT`` if set, else ``default``."""
    text = os.environ.get(DATA_FORMAT_VARIABLE, "").strip()
    if not text:
        return default
    if text not in ("channels_last", "channels_first"):
        raise ValueError("%s=%s: use channels_last or channels_first" % (DATA_FORMAT_VARIABLE, text))
    return text

def on_gpu():
    """Whether this job computes on a GPU (its Keras 3 backend was pointed at one by the harness)."""
    return os.environ.get(DEVICE_VARIABLE) == "gpu"


def gpu_name(backend_name):
    """The model of the job's GPU as its backend names it (``NVIDIA H200``)."""
    if backend_name == "torch":
        import torch

        return torch.cuda.get_device_name(0)
    if backend_name == "jax":
        import jax

        return jax.devices()[0].device_kind
    if backend_name == "tensorflow":
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return details.get("device_name") or "GPU"
    return None


def gpu_facts(backend_name):
    """The job's GPU as its backend sees it: model, memory, and the CUDA (and cuDNN) the backend was
    built with; None on the CPU. What cannot be read is left out with the error, never fatal."""
    if not on_gpu():
        return None
    facts = {"visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        facts["name"] = gpu_name(backend_name)
        if backend_name == "torch":
            import torch

            properties = torch.cuda.get_device_properties(0)
            facts.update(memory_mib=int(properties.total_memory // 2 ** 20), cuda=torch.version.cuda,
                         cudnn=torch.backends.cudnn.version(),
                         capability="%d.%d" % (properties.major, properties.minor))
        elif backend_name == "jax":
            import jax

            device = jax.devices()[0]
            stats = device.memory_stats() or {}
            if stats.get("bytes_limit"):
                facts["memory_mib"] = int(stats["bytes_limit"] // 2 ** 20)
            facts["cuda"] = getattr(device.client, "platform_version", None)
        elif backend_name == "tensorflow":
            import tensorflow as tf

            build = tf.sysconfig.get_build_info()
            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            facts.update(cuda=build.get("cuda_version"), cudnn=build.get("cudnn_version"),
                         capability=".".join(str(x) for x in details.get("compute_capability") or ()) or None)
    except Exception as err:  # a fact that cannot be read is noted, never fatal
        facts["error"] = "%s: %s" % (type(err).__name__, err)
    return facts


GPU_MEMORY_SOURCES = {"torch": "torch.cuda.max_memory_allocated()",
                      "jax": "the device's memory_stats()['peak_bytes_in_use']",
                      "tensorflow": "tf.config.experimental.get_memory_info('GPU:0')['peak']"}


def gpu_memory(backend_name):
    """The most GPU memory the backend's allocator held for this job so far, in MiB, and where the
    figure comes from; None on the CPU."""
    if not on_gpu():
        return None
    found = {"source": GPU_MEMORY_SOURCES.get(backend_name)}
    try:
        if backend_name == "torch":
            import torch

            peak = torch.cuda.max_memory_allocated()
        elif backend_name == "jax":
            import jax

            peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
        elif backend_name == "tensorflow":
            import tensorflow as tf

            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        else:
            return None
    except Exception as err:
        found["error"] = "%s: %s" % (type(err).__name__, err)
        peak = None
    found["peak_mib"] = None if peak is None else round(peak / 2.0 ** 20, 1)
    return found


LIBRARY_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "theano": "theano",
                   "cntk": "cntk"}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def cpu_use(wall_s):
    """CPU seconds this process used and the average number of cores it kept busy."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = usage.ru_utime + usage.ru_stime
    return {"cpu_seconds": round(seconds, 2), "busy_cores": round(seconds / wall_s, 2) if wall_s > 0 else None}


def _version(module_name):
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = __import__(module_name)
        except Exception:
            return None
    return getattr(module, "__version__", None)


def describe(keras, backend_name):
    """The environment of this job, as plain JSON."""
    import numpy

    library = LIBRARY_MODULES.get(backend_name, backend_name)
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "keras": getattr(keras, "__version__", None),
        "keras_backend": keras.backend.backend(),
        "backend_library": library,
        "backend_version": _version(library),
        "numpy": numpy.__version__,
        "image_data_format": keras.backend.image_data_format(),
        "jit_compile": _jit_in_effect(keras),
        "floatx": keras.backend.floatx(),
        "threads": threads_in_effect(backend_name),
        "variables": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        "device": "gpu" if on_gpu() else "cpu",
        "gpu": gpu_facts(backend_name),
    }


def _jit_in_effect(keras):
    if not str(getattr(keras, "__version__", "2")).startswith("3"):
        return None  # Keras 2 has no such switch
    value = jit_compile()
    return value if isinstance(value, bool) else "auto"


def requested_threads():
    try:
        return max(1, int(os.environ.get("KBENCH_THREADS", "0")))
    except ValueError:
        return None


def apply_threads(backend_name):
    """Set the backend's own thread pools to ``KBENCH_THREADS`` where an API exists.

    Environment variables (set by the executor) cover OpenMP, MKL, OpenBLAS and
    XLA; TensorFlow and PyTorch also take an in-process call.
    """
    threads = requested_threads()
    if not threads:
        return
    if backend_name == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised: the environment variables applied
    elif backend_name == "torch":
        import torch

        torch.set_num_threads(threads)
        # Not set_num_interop_threads(1): measured here, it cut Keras 3 training on torch
        # from ~450 to ~30 images/s.


def threads_in_effect(backend_name):
    found = {"requested": requested_threads()}
    try:
        if backend_name == "tensorflow":
            import tensorflow as tf

            found["intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
            found["inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
        elif backend_name == "torch":
            import torch

            found["intra_op"] = torch.get_num_threads()
            found["inter_op"] = torch.get_num_interop_threads()
    except Exception:
        pass
    return found
