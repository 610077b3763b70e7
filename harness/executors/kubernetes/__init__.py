"""The Kubernetes executor: each job a batch/v1 Job, its files on a shared NFS volume.

A package of small modules, each named for what it holds, in layers (lower
ones never import higher ones; ``tests/test_layers.py`` fails on any cycle):

* ``options`` (the command-line options, standard library only) and
  ``settings`` (their values, typed); ``streams`` (stopping a stream from
  another thread);
* pure rules over plain JSON and text: ``status`` (how a Job ended),
  ``starting`` (when to stop waiting for a pod), ``capacity`` (how many Jobs
  fit), ``admission`` (who refused a request), ``errors`` (our error types,
  each naming its fix), ``kubeconfig`` (whether the kubeconfig is one),
  ``manifests`` (the Job from ``job.yaml.j2``);
* ``sharing`` (who owns what on the shared volume, the staged data set, the
  write probe);
* ``client`` (the one door to the API, the only module that imports the
  ``kubernetes`` client), and what uses it: ``preflight``, ``watch``,
  ``logs`` and ``following`` (creating one Job and following it to its end);
* ``executor`` (``KubernetesExecutor`` and ``cleanup``), which ties them together.

This file imports nothing, so that importing ``options`` (to register the
options) loads nothing else.
"""
