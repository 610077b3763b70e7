# The legacy image, as in the seed: one image for Keras 2.3.1 with Theano and
# CNTK 2.7 on Python 3.6 (CNTK's wheels exist for CPython 3.6 only); the
# backend is chosen by KERAS_BACKEND (theano or cntk), which the Job sets.
# It installs harness/requirements/keras2.txt, the file the local runtimes
# install (its environment markers add cntk==2.7 on Python 3.6). Build from
# the repository root:
#
#   docker build -f docker/legacy.Dockerfile -t kbench-keras2:0.1.0 .
#
# For amd64 and arm64 at once (one multi-arch tag; pass --k8s-arch amd64,arm64):
#
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/legacy.Dockerfile \
#     -t registry.example.com/kbench-keras2:0.1.0 --push .
#
# CNTK 2.7 publishes x86_64 wheels only: the arm64 image holds Theano alone
# (keras2.txt installs cntk only where platform_machine is x86_64), and the
# harness runs cntk jobs on amd64 nodes only.
# CPU only: Theano's and CNTK's GPU builds need CUDA 9/10 images of their time.
FROM python:3.6-slim-buster

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/kbench \
    HOME=/tmp \
    KERAS_BACKEND=theano \
    THEANO_FLAGS=blas.ldflags=-lopenblas,floatX=float32,base_compiledir=/tmp/.theano

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Debian 10 (buster) lives on archive.debian.org now.
# g++ and OpenBLAS: Theano compiles its ops at run time (into /tmp, since the
# pod's root filesystem is read-only). OpenMPI: CNTK 2.7 links OpenMPI 1.10's
# libmpi.so.12 and libmpi_cxx.so.1 (Ubuntu 16.04); buster's OpenMPI 3 works
# under those names, in the platform's own library folder (x86_64-linux-gnu on
# amd64, aarch64-linux-gnu on arm64, where no CNTK needs them).
# hadolint ignore=DL3008
RUN sed -i -e 's|deb.debian.org|archive.debian.org|g' -e '/security.debian.org/d' -e '/buster-updates/d' \
        /etc/apt/sources.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends g++ libopenblas-dev libopenmpi3 libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && libs="/usr/lib/$(gcc -dumpmachine)" \
 && ln -s "$libs/libmpi.so.40" "$libs/libmpi.so.12" \
 && ln -s "$libs/libmpi_cxx.so.40" "$libs/libmpi_cxx.so.1"

COPY harness/requirements/keras2.txt /opt/kbench/requirements/keras2.txt
# Python 3.6's pip is too old for the requirement file; the local runtime bootstraps the same pip.
RUN pip install pip==21.3.1 \
 && pip install -r /opt/kbench/requirements/keras2.txt

COPY harness/__init__.py /opt/kbench/harness/__init__.py
COPY harness/workload/ /opt/kbench/harness/workload/

# A numeric, non-root user: Pod Security "restricted" checks runAsNonRoot.
USER 1000:1000
WORKDIR /tmp
CMD ["python", "-m", "harness.workload", "--help"]
