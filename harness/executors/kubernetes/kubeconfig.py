"""Which kubeconfig the harness reads, and whether it is one, said in one line before the client reads it.

The ``kubernetes`` client's loader fails on a file that is not a kubeconfig
with whatever error its parsing meets (a ``TypeError`` for plain text, a
``UnicodeDecodeError`` for binary, a YAML parser error); a user needs the
file's name and the fix instead. So the file is read and parsed here first,
and what the loader still refuses is reported the same way (``client``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.executors.kubernetes.status import one_line

DEFAULT = "~/.kube/config"
FIX = ("pass --k8s-kubeconfig with a working kubeconfig (`kubectl config view --raw` prints the one kubectl "
       "uses; kind get kubeconfig and k3d kubeconfig get write one) or set KUBECONFIG")
MAX_BYTES = 16 * 1024 * 1024
"""A kubeconfig is a few kilobytes; a file larger than this is not one (and is not read whole)."""


@dataclass(frozen=True)
class Source:
    """The kubeconfig the harness would use: its paths and where the choice came from."""

    paths: tuple[Path, ...]
    """Every file named (KUBECONFIG may list several, separated by ':'); the first is the one that must exist."""
    given_by: str
    """``--k8s-kubeconfig``, ``KUBECONFIG`` or ``the default``: for messages."""
    value: str
    """What to hand the client's loader (several paths joined as KUBECONFIG joins them)."""

    @property
    def first(self) -> Path:
        return self.paths[0]


def source(kubeconfig: str | None) -> Source:
    """The kubeconfig named by the option, else by ``$KUBECONFIG``, else the default ``~/.kube/config``."""
    if kubeconfig:
        value, given_by = kubeconfig, "--k8s-kubeconfig"
    elif os.environ.get("KUBECONFIG"):
        value, given_by = os.environ["KUBECONFIG"], "KUBECONFIG"
    else:
        value, given_by = DEFAULT, "the default"
    paths = tuple(Path(os.path.expanduser(p)) for p in value.split(os.pathsep) if p) or (Path(DEFAULT),)
    return Source(paths, given_by, os.pathsep.join(str(p) for p in paths))


def problem(path: Path, given_by: str = "--k8s-kubeconfig") -> str | None:
    """Why ``path`` is not a kubeconfig the client can read, in one line naming the fix; None if it may be one."""
    origin = "" if given_by == "--k8s-kubeconfig" else f" ({given_by})"
    where = f"the kubeconfig {path}{origin}"
    if path.is_dir():
        return f"{where} is a folder, not a kubeconfig file; {FIX}"
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return f"no kubeconfig at {path}{origin}; {FIX}, or run the harness inside the cluster"
    except OSError as err:
        return f"cannot read {where} ({err.strerror or err}); {FIX}"
    if len(data) > MAX_BYTES:
        return f"{where} is not a kubeconfig (larger than {MAX_BYTES // 2**20} MiB); {FIX}"
    if not data.strip():
        return f"{where} is empty; {FIX}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"{where} is not a kubeconfig (not UTF-8 text: a binary file?); {FIX}"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        said = one_line(str(getattr(err, "problem", None) or err), 120)
        return f"{where} is not a kubeconfig (not YAML: {said}{at}); {FIX}"
    if not isinstance(document, dict):
        return (f"{where} is not a kubeconfig (its YAML is a {type(document).__name__}, not a mapping with "
                f"clusters, contexts and users); {FIX}")
    return None


def unusable(path: Path, given_by: str, context: str | None, err: BaseException, understood: bool) -> str:
    """The one line for a kubeconfig the client's loader refused.

    ``understood``: the loader read the file and said what is wrong (an unknown
    context, a missing server); otherwise its parsing broke on the file's shape.
    """
    origin = "" if given_by == "--k8s-kubeconfig" else f", {given_by}"
    where = (f"context {context!r} of {path}" if context else str(path)) + origin
    said = one_line(str(err) or type(err).__name__, 200)
    if understood:
        return f"cannot use the Kubernetes configuration ({where}): {said}; check --k8s-context and {FIX}"
    return (f"cannot use the Kubernetes configuration ({where}): it is not a valid kubeconfig "
            f"({type(err).__name__}: {said}); check --k8s-context and {FIX}")
