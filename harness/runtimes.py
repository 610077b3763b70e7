"""Local Python environments for each Keras line, built on first use.

A runtime is a virtual environment made from a pinned requirements file
(``harness/requirements/*.txt``, the same files the Docker images install) with
a particular interpreter:

* ``keras3``: this machine's Python, Keras 3 with TensorFlow, JAX and PyTorch.
* ``keras2``: this machine's Python, Keras 2.3.1 with Theano (plus the
  compatibility shim in the workload, ``numpy<1.24`` and OpenBLAS).
* ``keras2-py36``: CPython 3.6, Keras 2.3.1 with CNTK 2.7 (its wheels exist for
  3.6 only). CNTK's core links OpenMPI 1.10's ``libmpi.so.12``; a newer
  OpenMPI's library is offered under that name when the old one is missing.

Environments live under ``<work dir>/runtimes/<name>-<digest>``; the digest
covers the requirements and the interpreter, so changing either builds a new
one. A finished environment carries a marker file; a half-built one is rebuilt.

``--runtime current`` runs the Keras 3 backends in the Python that runs the
harness instead (``current``): whatever Keras and backend builds it has (a
user's CUDA builds), nothing built. Whether a backend imports there is asked
once per backend, before any job (``probe``); Keras 2's backends keep their
managed runtimes, whose pins no current environment has.
"""
from __future__ import annotations

import ctypes.util
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import RuntimeSetupError

REQUIREMENTS_DIR = Path(__file__).parent / "requirements"
READY_MARKER = ".kbench-ready"
FORMAT = "1"
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                "/usr/local/lib", "/usr/lib/x86_64-linux-gnu/openmpi/lib")


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    python_version: str | None
    """``"3.6"`` to look for that interpreter; ``None`` for the harness's own Python."""
    requirements: str
    pip_bootstrap: tuple[str, ...] = ()
    """Packages to upgrade first (old interpreters ship an old pip)."""
    description: str = ""


SPECS: dict[str, RuntimeSpec] = {
    s.name: s
    for s in (
        RuntimeSpec("keras3", None, "keras3.txt", description="Keras 3: TensorFlow, JAX, PyTorch"),
        RuntimeSpec("keras2", None, "keras2.txt", description="Keras 2.3.1 with Theano"),
        RuntimeSpec("keras2-py36", "3.6", "keras2.txt", pip_bootstrap=("pip==21.3.1",),
                    description="Keras 2.3.1 with CNTK 2.7 on CPython 3.6"),
    )
}


MODES = ("managed", "current")
"""``--runtime``: the harness's own per-line environments, or the Python that runs the harness."""
CURRENT = RuntimeSpec("current", None, "", description="the Python that runs the harness")


@dataclass
class Runtime:
    """A usable (or unusable, with a reason) environment for one runtime spec."""

    spec: RuntimeSpec
    base_python: str | None
    root: Path
    unavailable_reason: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    executable: Path | None = None
    """The interpreter, where it is not ``<root>/bin/python``: the current environment's."""

    @property
    def python(self) -> Path:
        return self.executable or self.root / "bin" / "python"

    @property
    def ready(self) -> bool:
        return self.is_current or (self.root / READY_MARKER).is_file()

    @property
    def is_current(self) -> bool:
        """The Python that runs the harness: nothing to build, and its own PYTHONPATH kept."""
        return self.spec is CURRENT


# -- finding interpreters -------------------------------------------------------------
def _interpreter_version(exe: str) -> str | None:
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str) -> str | None:
    """A working interpreter for ``version`` (``"3.6"``): env var, PATH, then pyenv."""
    env_name = "KBENCH_PYTHON" + version.replace(".", "")
    candidates = [os.environ.get(env_name, "")]
    candidates.append(shutil.which(f"python{version}") or "")
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}*", "bin", f"python{version}")),
                         reverse=True)
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for exe in candidates:
        if exe and os.path.isfile(exe) and _interpreter_version(exe) == version:
            return exe
    return None


def _base_python() -> str:
    """This interpreter outside any virtual environment it runs in."""
    return getattr(sys, "_base_executable", None) or sys.executable


# -- native libraries ---------------------------------------------------------------
def _find_library_file(names: tuple[str, ...]) -> str | None:
    for folder in LIBRARY_DIRS:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    return None


def _mpi_shim(root: Path) -> tuple[dict[str, str], str | None]:
    """Environment that lets CNTK find libmpi.so.12 and libmpi_cxx.so.1."""
    wanted = {"libmpi.so.12": ("libmpi.so.12", "libmpi.so.40", "libmpi.so.20"),
              "libmpi_cxx.so.1": ("libmpi_cxx.so.1", "libmpi_cxx.so.40", "libmpi_cxx.so.20")}
    found = {soname: _find_library_file(names) for soname, names in wanted.items()}
    missing = [s for s, path in found.items() if path is None]
    if missing:
        return {}, ("CNTK 2.7 needs OpenMPI's libmpi.so.12 and libmpi_cxx.so.1 (Ubuntu 16.04) or a newer "
                    "OpenMPI to stand in for them; install one (apt install libopenmpi3)")
    shim = root.parent / (root.name + "-mpi")
    shim.mkdir(parents=True, exist_ok=True)
    for soname, path in found.items():
        link = shim / soname
        if os.path.basename(path) != soname or not link.exists():
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(path)
    current = os.environ.get("LD_LIBRARY_PATH", "")
    return {"LD_LIBRARY_PATH": str(shim) + (os.pathsep + current if current else "")}, None


def _theano_env(root: Path) -> dict[str, str]:
    blas = "-lopenblas" if ctypes.util.find_library("openblas") else ""
    flags = [f"blas.ldflags={blas}", f"base_compiledir={root.parent / (root.name + '-theano')}", "floatX=float32"]
    return {"THEANO_FLAGS": ",".join(flags)}


# -- resolving and building -------------------------------------------------------------
def _digest(spec: RuntimeSpec, python_version: str) -> str:
    text = (REQUIREMENTS_DIR / spec.requirements).read_text()
    return hashlib.sha256(f"{FORMAT}\n{python_version}\n{text}".encode()).hexdigest()[:12]


def check_mode(text: str) -> str:
    """``--runtime``'s value, checked as it is parsed."""
    if text not in MODES:
        raise ValueError(f"choose {' or '.join(MODES)}")
    return text


def current() -> Runtime:
    """The Python that runs the harness, as a runtime: used as it is, never built or changed."""
    executable = Path(sys.executable)
    return Runtime(CURRENT, str(executable), executable.parent.parent, executable=executable)


def for_backend(backend_runtime: str, keras_line: str, mode: str, work_dir: Path) -> Runtime:
    """The runtime a backend's jobs use: ``current`` takes Keras 3's backends into this Python;
    Keras 2's always keep their managed runtime."""
    if mode == "current" and keras_line == "3":
        return current()
    return resolve(backend_runtime, work_dir)


PROBE_TIMEOUT_S = 120.0
NO_GPU = "sees no GPU"
"""How the probe says a backend imported but found no GPU (``--device gpu``)."""
PROBE_CODE = """
import json, os, sys
import keras
library = __import__(sys.argv[1])
found = {"python": sys.version.split()[0], "executable": sys.executable,
         "keras": getattr(keras, "__version__", None), "library": getattr(library, "__version__", None)}
if keras.backend.backend() != os.environ["KERAS_BACKEND"]:
    raise SystemExit("keras %s loaded backend %r, not %r" % (found["keras"], keras.backend.backend(),
                     os.environ["KERAS_BACKEND"]))
if os.environ.get("KBENCH_DEVICE") == "gpu":
    name = sys.argv[1]
    if name == "torch":
        seen = library.cuda.device_count() if library.cuda.is_available() else 0
        found["cuda"] = library.version.cuda
    elif name == "jax":
        try:
            seen = len(library.devices("gpu"))
        except RuntimeError:
            seen = 0
    else:
        seen = len(library.config.list_physical_devices("GPU"))
        found["cuda"] = library.sysconfig.get_build_info().get("cuda_version")
    if not seen:
        raise SystemExit("%s %s sees no GPU (a CPU-only build?)" % (name, found["library"]))
print(json.dumps(found))
"""
"""Run with ``python -c PROBE_CODE <library>``: imports Keras and the backend's library as a job would
(its ``KERAS_BACKEND`` set), and on a GPU asks the library whether it sees one; prints versions as JSON."""


def probe(runtime: Runtime, library: str, env: dict[str, str]) -> tuple[dict | None, str | None]:
    """Whether Keras and ``library`` import in ``runtime`` with ``env``: (versions, None) or (None, why).

    A few seconds (one import of the backend); ``why`` is the last line the
    interpreter printed, so the error names the missing module.
    """
    try:
        done = subprocess.run([str(runtime.python), "-c", PROBE_CODE, library], env=env, capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"importing keras and {library} took over {PROBE_TIMEOUT_S:.0f} s"
    except OSError as err:
        return None, f"{runtime.python} cannot run ({err.strerror})"
    if done.returncode == 0:
        try:
            return json.loads(done.stdout.strip().splitlines()[-1]), None
        except (ValueError, IndexError):
            return None, f"importing keras and {library} printed no versions"
    said = [line.strip() for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()]
    return None, said[-1] if said else f"importing keras and {library} exited with status {done.returncode}"


def resolve(name: str, work_dir: Path) -> Runtime:
    """Find the interpreter and the environment folder; builds nothing."""
    spec = SPECS[name]
    if spec.python_version is None:
        base, version = _base_python(), "{}.{}".format(*sys.version_info[:2])
    else:
        base, version = find_python(spec.python_version), spec.python_version
    root = Path(work_dir) / "runtimes" / f"{name}-{_digest(spec, version)}"
    runtime = Runtime(spec, base, root)
    if base is None:
        runtime.unavailable_reason = (
            f"it needs CPython {spec.python_version}, where CNTK 2.7's wheels live, and none was found "
            f"(install one, e.g. `pyenv install {spec.python_version}.15`, or set "
            f"KBENCH_PYTHON{spec.python_version.replace('.', '')})")
        return runtime
    if name == "keras2-py36":
        runtime.env, runtime.unavailable_reason = _mpi_shim(root)
    elif name == "keras2":
        runtime.env = _theano_env(root)
    return runtime


def ensure(runtime: Runtime, say: Callable[[str], None] = print) -> Runtime:
    """Build the environment if it is missing or half-built; safe across processes."""
    if runtime.unavailable_reason:
        raise RuntimeSetupError(runtime.unavailable_reason)
    if runtime.ready:
        return runtime
    runtime.root.parent.mkdir(parents=True, exist_ok=True)
    with open(str(runtime.root) + ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if not runtime.ready:
                _build(runtime, say)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return runtime


def _build(runtime: Runtime, say: Callable[[str], None]) -> None:
    spec = runtime.spec
    log_path = Path(str(runtime.root) + ".install.log")
    say(f"building the {spec.name} runtime ({spec.description}) in {runtime.root}; first use only, "
        f"a few minutes; log: {log_path}")
    if runtime.root.exists():
        shutil.rmtree(runtime.root)
    steps = [[runtime.base_python, "-m", "venv", str(runtime.root)]]
    pip = [str(runtime.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    if spec.pip_bootstrap:
        steps.append(pip + list(spec.pip_bootstrap))
    steps.append(pip + ["-r", str(REQUIREMENTS_DIR / spec.requirements)])
    with open(log_path, "w") as log:
        for step in steps:
            log.write("$ " + " ".join(step) + "\n")
            log.flush()
            code = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
            if code != 0:
                log.close()
                tail = _tail(log_path, 5)
                raise RuntimeSetupError(
                    f"building the {spec.name} runtime failed at `{' '.join(step[-3:])}` (exit {code}): "
                    f"{tail}; see {log_path}, fix the cause and run again")
    (runtime.root / READY_MARKER).write_text(f"{FORMAT}\n")
    say(f"the {spec.name} runtime is ready")


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])
