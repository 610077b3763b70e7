"""Executors run jobs: ``local`` (processes here) and ``kubernetes`` (one Job each).

They are found by name; an unknown name is a ``ConfigError`` listing the valid ones.
Each executor's options live in a light module of their own, so that listing
them (``harness.options``, at every start of pytest) imports no executor and
no cluster client.
"""
from __future__ import annotations

import importlib

from harness.errors import ConfigError
from harness.executors.base import Executor
from harness.option_spec import Option

_MODULES = {
    "local": "harness.executors.local",
    "kubernetes": "harness.executors.kubernetes.executor",
}
"""name -> module that defines the executor; imported only when chosen, so the local executor
never imports the Kubernetes executor's modules."""
_OPTION_MODULES = {
    "local": "harness.executors.local_options",
    "kubernetes": "harness.executors.kubernetes.options",
}
"""name -> the light module that declares the executor's ``OPTIONS``."""


def names() -> list[str]:
    return list(_MODULES)


def check_name(name: str) -> str:
    if name not in _MODULES:
        raise ConfigError(f"unknown executor {name!r}; choose from {', '.join(_MODULES)}")
    return name


def _load(name: str, module_name: str):
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"the {name} executor cannot be loaded ({err}); reinstall the harness with its "
                          "dependencies (pip install -e .)") from None


def options(name: str) -> tuple[Option, ...]:
    """The options an executor takes, without importing it."""
    return tuple(_load(name, _OPTION_MODULES[check_name(name)]).OPTIONS)


def executor_class(name: str) -> type[Executor]:
    module = _load(name, _MODULES[check_name(name)])
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Executor) and getattr(value, "name", None) == name:
            return value
    raise ConfigError(f"executor {name!r} is not installed in this version of the harness")
