# The Keras 3 image: TensorFlow, JAX and PyTorch on one Python, the backend
# chosen per job by KERAS_BACKEND (the Job template sets it).
# It installs harness/requirements/keras3.txt, the file the local executor's
# keras3 runtime installs, and holds only the workload (harness/workload/),
# not the harness. Build from the repository root:
#
#   docker build -f docker/keras3.Dockerfile -t kbench-keras3:0.1.0 .
#
# CPU build by default: torch comes from PyTorch's CPU index (an unpinned
# index would pull a multi-GB CUDA build). For a GPU image:
#
#   docker build -f docker/keras3.Dockerfile -t kbench-keras3-gpu:0.1.0 \
#     --build-arg GPU=1 --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .
#
# GPU=1 swaps tensorflow-cpu for tensorflow[and-cuda] and jax for jax[cuda12]
# at the same versions; the CUDA libraries come as wheels, so the nodes need
# only the NVIDIA driver and device plugin. Run with --k8s-gpus 1.
#
# For amd64 and arm64 at once (one multi-arch tag; pass --k8s-arch amd64,arm64):
#
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/keras3.Dockerfile \
#     -t registry.example.com/kbench-keras3:0.1.0 --push .
#
# tensorflow-cpu publishes x86_64 wheels only; on arm64 the same version of
# tensorflow (whose aarch64 wheels are CPU builds) takes its place.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG GPU=0
# Set by docker buildx for each platform it builds (amd64, arm64).
ARG TARGETARCH=amd64

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/kbench \
    HOME=/tmp

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

COPY harness/requirements/keras3.txt /opt/kbench/requirements/keras3.txt

# torch first, from its own index, at the pinned version; then everything
# else from PyPI, where the installed torch already satisfies the pin.
# (DL3013: the torch pin is read from the requirement file.)
# hadolint ignore=DL3013
RUN requirements=/opt/kbench/requirements/keras3.txt \
 && if [ "$GPU" = "1" ]; then \
      sed -i -e 's/^tensorflow-cpu==/tensorflow[and-cuda]==/' -e 's/^jax==/jax[cuda12]==/' "$requirements"; \
    elif [ "$TARGETARCH" != "amd64" ]; then \
      sed -i -e 's/^tensorflow-cpu==/tensorflow==/' "$requirements"; \
    fi \
 && torch_pin="$(grep -E '^torch==' "$requirements")" \
 && pip install --index-url "$TORCH_INDEX" "$torch_pin" \
 && pip install -r "$requirements"

COPY harness/__init__.py /opt/kbench/harness/__init__.py
COPY harness/workload/ /opt/kbench/harness/workload/

# A numeric, non-root user: Pod Security "restricted" checks runAsNonRoot.
USER 1000:1000
WORKDIR /tmp
CMD ["python", "-m", "harness.workload", "--help"]
