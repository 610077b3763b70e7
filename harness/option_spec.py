"""How one command-line option is declared, once, for every front door.

In the manner of pytest-benchmark's option groups: an ``Option`` says its
flag, default, help and (optionally) a context-free check, and ``register``
adds a list of them to anything with argparse's ``add_argument`` signature:
a pytest option group (``group.addoption``) or an ``argparse`` parser. So
``pytest benchmarks/`` and ``kbench`` show the same names, defaults and help
text. The table of the harness's options is ``harness.options``; executors
declare theirs in light modules (``harness.executors.local_options``,
``harness.executors.kubernetes.options``).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError


@dataclass(frozen=True)
class Option:
    """One option: written once, registered into each front door that offers it."""

    flag: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] | None = None
    """A context-free check of the text (argparse's ``type``): raises ValueError, ArgumentTypeError or
    a HarnessError naming the fix. Checks that need other options run when the run is configured."""
    metavar: str | None = None
    switch: bool = False
    """A flag that takes no value (``--record-baseline``)."""
    default_text: str | None = None
    """How the help names a default that is worked out later (``<shared-dir>/history``)."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def help_text(self) -> str:
        """The help with its default, the same wherever the option is registered."""
        shown = self.default_text if self.default_text is not None else self.default
        if self.switch or shown is None or "default:" in self.help:
            return self.help
        return f"{self.help} (default: {shown})"


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` for argparse: a HarnessError becomes the usage error argparse prints in one line."""
    def checked(text: str) -> Any:
        try:
            return parse(text)
        except HarnessError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    checked.__name__ = getattr(parse, "__name__", "value")
    return checked


def register(add: Callable[..., Any], options: Iterable[Option], prefix: str = "",
             suppress_defaults: bool = False) -> None:
    """Add ``options`` through ``add`` (``group.addoption`` or ``parser.add_argument``).

    ``prefix`` goes before every help text (``[kubernetes executor] ...``).
    ``suppress_defaults`` leaves a value absent unless given: for a subcommand
    whose parent parser also takes the option (argparse would otherwise reset
    the parent's value to the default).
    """
    for option in options:
        kwargs: dict[str, Any] = {"dest": option.dest, "help": prefix + option.help_text.replace("%", "%%")}
        kwargs["default"] = argparse.SUPPRESS if suppress_defaults else option.default
        if option.switch:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = option.metavar
            if option.parse is not None:
                kwargs["type"] = _argparse_type(option.parse)
        add(option.flag, **kwargs)
