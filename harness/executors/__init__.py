"""Executors run jobs: ``local`` (processes here) and ``kubernetes`` (one Job each).

They are found by name; an unknown name is a ``ConfigError`` listing the valid ones.
"""
from __future__ import annotations

import importlib

from harness.errors import ConfigError
from harness.executors.base import Executor

# name -> module that defines the executor; imported only when chosen, so the
# local executor never imports the Kubernetes client.
_MODULES = {
    "local": "harness.executors.local",
    "kubernetes": "harness.executors.kubernetes",
}


def names() -> list[str]:
    return list(_MODULES)


def executor_class(name: str) -> type[Executor]:
    if name not in _MODULES:
        raise ConfigError(f"unknown executor {name!r}; choose from {', '.join(_MODULES)}")
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as err:
        raise ConfigError(f"the {name} executor cannot be loaded ({err}); reinstall the harness with its "
                          "dependencies (pip install -e .)") from None
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Executor) and getattr(value, "name", None) == name:
            return value
    raise ConfigError(f"executor {name!r} is not installed in this version of the harness")
