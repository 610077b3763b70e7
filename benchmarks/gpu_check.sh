#!/usr/bin/env bash
# The GPU check: JAX and PyTorch on an NVIDIA GPU through the main command, in that machine's own Python.
#
#   benchmarks/gpu_check.sh --probe          on the GPU machine: its Python, its GPUs, what it lacks (seconds)
#   benchmarks/gpu_check.sh --fetch 3.12     here: the wheels for that Python into .kbench/wheels/cp312
#   benchmarks/gpu_check.sh                  on the GPU machine: the benchmark itself (under 10 minutes)
#
# For a machine whose Python has CUDA builds of JAX and PyTorch but no Keras, and
# no registry to install from. Carry .kbench/wheels/cpXY there: Keras 3.15.1 and
# its dependencies, and the harness's own in case that Python lacks them (about
# 35 MB for one Python version; numpy is not carried, JAX brings it). A wheel is
# unpacked into a temporary folder on PYTHONPATH only when that Python does not
# have its distribution already, so nothing of the machine's is replaced. Then
#
#   pytest benchmarks/ --backend jax,torch --device gpu --runtime current --profile default
#
# runs with the harness from this checkout (on PYTHONPATH; its plugin named with
# -p harness.pytest_plugin unless installed), the bundled CIFAR-10 sample
# (--dataset auto, offline) and a 9-minute limit, and writes the report, the
# pytest-benchmark JSON, the log and every job's result and log under $OUT (else
# reports/out/gpu-check). With the device tool: run `--probe`, then `--fetch` here
# with the version it printed, then the run with carry [".kbench/wheels/cpXY"].
# KBENCH_CHECK_DEVICE=cpu and KBENCH_CHECK_PROFILE=smoke try the plumbing on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
WHEELS="${KBENCH_WHEELS:-.kbench/wheels}"
OUT="${OUT:-reports/out/gpu-check}"
DEVICE="${KBENCH_CHECK_DEVICE:-gpu}"
PROFILE="${KBENCH_CHECK_PROFILE:-default}"
LIMIT_S="${KBENCH_CHECK_LIMIT_S:-540}"

# What `import keras` needs besides numpy, then what the harness imports for a local run.
KERAS_WHEELS="keras==3.15.1 absl-py rich markdown-it-py mdurl pygments namex optree h5py ml-dtypes packaging
              typing-extensions"
HARNESS_WHEELS="pillow==13.0.0 jinja2==3.1.6 markupsafe matplotlib==3.11.2 contourpy cycler fonttools
                kiwisolver pyparsing python-dateutil six psutil==7.2.2 pytest==9.2.0 pluggy iniconfig
                pytest-benchmark==5.3.1 py-cpuinfo"
MODULES="keras numpy PIL jinja2 matplotlib psutil pytest pytest_benchmark jax torch"

pyversion() { "$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

case "${1:-run}" in
--probe)
    echo "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    nvidia-smi -L || echo "nvidia-smi: not found or failed"
    for module in $MODULES; do
        "$PY" -c "import $module as m; print('$module', getattr(m, '__version__', '?'))" 2>/dev/null \
            || echo "$module MISSING"
    done
    "$PY" -c 'import jax; print("jax devices:", jax.devices())' 2>&1 | tail -1 || true
    "$PY" -c 'import torch; print("torch cuda:", torch.version.cuda, torch.cuda.is_available())' 2>&1 | tail -1 || true
    echo "then, on the machine with the checkout: benchmarks/gpu_check.sh --fetch $(pyversion)"
    ;;
--fetch)
    version="${2:?give the GPU machine Python version, e.g. --fetch 3.12 (from --probe)}"
    tag="cp${version/./}"
    mkdir -p "$WHEELS/$tag"
    # shellcheck disable=SC2086  # the lists are words
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS/$tag" $KERAS_WHEELS $HARNESS_WHEELS
    ls -l "$WHEELS/$tag"
    du -sh "$WHEELS/$tag"
    ;;
run)
    mkdir -p "$OUT"
    OUT="$(cd "$OUT" && pwd)"
    scratch="$(mktemp -d)"
    if [ "$DEVICE" = gpu ]; then
        nvidia-smi -L | tee "$OUT/gpus.txt"
    fi
    site="$scratch/site"
    mkdir -p "$site"
    tag="cp$(pyversion | tr -d .)"
    for wheel in "$WHEELS/$tag"/*.whl; do
        [ -e "$wheel" ] || { echo "no wheels in $WHEELS/$tag: run --fetch $(pyversion) and carry them" >&2; exit 2; }
        name="$(basename "$wheel" | cut -d- -f1)"
        if "$PY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$name" 2>/dev/null; then
            continue  # the machine's own build stays
        fi
        echo "using the carried $(basename "$wheel")"
        "$PY" -m zipfile -e "$wheel" "$site"
    done
    export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    plugin=(-p harness.pytest_plugin)  # unless an install (or an egg-info here) already registers it
    if "$PY" - <<'PYTHON'
import importlib.metadata as m, sys
found = m.entry_points()
found = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", [])
sys.exit(0 if any(e.value == "harness.pytest_plugin" for e in found) else 1)
PYTHON
    then
        plugin=()
    fi
    set +e
    timeout "$LIMIT_S" "$PY" -m pytest benchmarks/ "${plugin[@]}" -p no:cacheprovider \
        --backend jax,torch --device "$DEVICE" --runtime current --profile "$PROFILE" --run-id gpu-check \
        --shared-dir "$scratch/shared" --work-dir "$scratch/work" --reports-dir "$OUT/reports" \
        --benchmark-json "$OUT/benchmark.json" 2>&1 | tee "$OUT/pytest.log"
    code=${PIPESTATUS[0]}
    set -e
    run="$scratch/shared/runs/gpu-check"
    if [ -d "$run" ]; then
        (cd "$run" && find . \( -name '*.json' -o -name '*.log' -o -name 'report.md' \) -size -4M \
            -exec cp --parents {} "$OUT/" \;)
    fi
    echo "gpu check: pytest exited $code; report and results under $OUT"
    exit "$code"
    ;;
*)
    sed -n '2,6p' "$0"
    exit 2
    ;;
esac
