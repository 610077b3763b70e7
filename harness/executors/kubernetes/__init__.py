"""The Kubernetes executor: each job a batch/v1 Job, its files on a shared NFS volume.

A package of small modules, each named for what it holds, in layers (lower
ones never import higher ones):

* ``options`` (the command-line options, standard library only) and
  ``settings`` (their values, typed); ``errors`` (our error types) and
  ``streams`` (stopping a stream from another thread);
* pure rules over plain JSON: ``status`` (how a Job ended), ``starting`` (when
  to stop waiting for a pod), ``manifests`` (the Job from ``job.yaml.j2``);
* ``sharing`` (who owns what on the shared volume, and the write probe);
* ``client`` (the one door to the API, the only module that imports the
  ``kubernetes`` client), ``preflight``, ``watch`` and ``logs`` (which use it);
* ``executor`` (``KubernetesExecutor`` and ``cleanup``), which ties them together.

This file imports nothing, so that importing ``options`` (to register the
options) loads nothing else.
"""
