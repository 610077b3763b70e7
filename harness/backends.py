"""The registry of Keras backends: which Keras line and runtime each one needs.

Only facts live here; whether a backend can run on this machine is decided by
``harness.runtimes``, which knows how to find interpreters and build
environments.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True)
class Backend:
    """One Keras backend the harness can benchmark."""

    name: str
    """What users type: ``--backend torch``."""
    keras_backend: str
    """The value of ``KERAS_BACKEND`` inside the job."""
    keras_line: str
    """``"3"`` for Keras 3, ``"2"`` for Keras 2.3.1."""
    runtime: str
    """Name of the runtime (Python environment) that runs this backend's jobs."""
    library: str
    """The Python module whose version is recorded (``tensorflow``, ``cntk``...)."""


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("tensorflow", "tensorflow", "3", "keras3", "tensorflow"),
        Backend("jax", "jax", "3", "keras3", "jax"),
        Backend("torch", "torch", "3", "keras3", "torch"),
        Backend("theano", "theano", "2", "keras2", "theano"),
        Backend("cntk", "cntk", "2", "keras2-py36", "cntk"),
    )
}

ALIASES = {"tf": "tensorflow", "pytorch": "torch"}


def valid_choices() -> str:
    return ", ".join(BACKENDS) + ", or all"


def parse_backends(text: str) -> list[Backend]:
    """Turn ``--backend`` text (a name, a comma list or ``all``) into backends.

    Order follows the registry, duplicates collapse, and any unknown name is a
    ``ConfigError`` that lists the valid choices.
    """
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ConfigError(f"--backend is empty; choose from {valid_choices()}")
    if "all" in names:
        if len(names) > 1:
            raise ConfigError("--backend all cannot be combined with other names; use one or the other")
        return list(BACKENDS.values())
    unknown = [n for n in names if n not in BACKENDS and n not in ALIASES]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown)
        raise ConfigError(f"unknown backend {shown}; choose from {valid_choices()}")
    wanted = {ALIASES.get(n, n) for n in names}
    return [b for b in BACKENDS.values() if b.name in wanted]


def get(name: str) -> Backend:
    try:
        return BACKENDS[ALIASES.get(name, name)]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; choose from {valid_choices()}") from None
