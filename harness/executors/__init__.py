"""Executors run jobs: ``local`` (processes here) and ``kubernetes`` (one Job each).

They are found by name; an unknown name is a ``ConfigError`` listing the valid ones.
An executor's options can be read without importing the executor itself
(``options``), so registering every executor's options at start-up loads no
executor's dependencies.
"""
from __future__ import annotations

import importlib

from harness.errors import ConfigError
from harness.executors.base import Executor, Option

# name -> module that defines the executor; imported only when chosen, so the
# local executor never imports the Kubernetes executor's modules.
_MODULES = {
    "local": "harness.executors.local",
    "kubernetes": "harness.executors.kubernetes.executor",
}
# name -> a light module that declares the executor's options as ``OPTIONS``;
# an executor without one declares them on its class (its module is light enough).
_OPTION_MODULES = {
    "kubernetes": "harness.executors.kubernetes.options",
}


def names() -> list[str]:
    return list(_MODULES)


def _known(name: str) -> None:
    if name not in _MODULES:
        raise ConfigError(f"unknown executor {name!r}; choose from {', '.join(_MODULES)}")


def _load(name: str, module_name: str):
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"the {name} executor cannot be loaded ({err}); reinstall the harness with its "
                          "dependencies (pip install -e .)") from None


def executor_class(name: str) -> type[Executor]:
    _known(name)
    module = _load(name, _MODULES[name])
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Executor) and getattr(value, "name", None) == name:
            return value
    raise ConfigError(f"executor {name!r} is not installed in this version of the harness")


def options(name: str) -> tuple[Option, ...]:
    """The command-line options of executor ``name``, without importing the executor where it has a light module."""
    _known(name)
    if name in _OPTION_MODULES:
        return tuple(_load(name, _OPTION_MODULES[name]).OPTIONS)
    return tuple(executor_class(name).options)
