"""Which model a run builds: ``--model NAME|PATH`` resolved, checked and described.

A model is a Python file defining ``build(keras, input_shape, n_classes)``
(``harness.workload.model`` says what it returns). The shipped ones live in
``harness/workload/models/``; any other file is named by its path. Everything
here runs on the harness's own Python, without Keras, before any job starts:
the file exists, parses as Python 3.6 (the oldest interpreter a job runs in,
CNTK's), and defines ``build`` at its top level; the ``keras.<module>.<name>``
it uses that Keras 2.3.1 lacks give Theano and CNTK their skip reason. Building
the model needs Keras: ``harness.models.build_check`` does that in a runtime.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from harness import names
from harness.errors import ConfigError
from harness.models.keras2_names import KERAS2_NAMES
from harness.workload import layout
from harness.workload.model import MODELS_DIR

DEFAULT = layout.DEFAULT_MODEL
SHIPPED_DIR = Path(MODELS_DIR)
KERAS2_BACKENDS = ("theano", "cntk")
"""The backends that run through Keras 2.3.1 (``harness.backends`` names their Keras line)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a run: its name, its file and that file's hash."""

    name: str
    path: Path
    sha256: str
    shipped: bool
    keras2_missing: tuple[str, ...] = field(default=())
    """``keras.<module>.<name>`` the file uses that Keras 2.3.1 does not have (Theano and CNTK skip it)."""

    @property
    def is_default(self) -> bool:
        return self.shipped and self.name == DEFAULT

    def skip_reason(self, backend: str) -> str | None:
        """Why ``backend`` cannot build this model, or None."""
        if backend in KERAS2_BACKENDS and self.keras2_missing:
            return (f"model {self.name} needs Keras 3: Keras 2.3.1 has no {', '.join(self.keras2_missing)} "
                    f"(used in {self.path})")
        return None

    def to_json(self) -> dict:
        """run.json's ``model``: what every job builds and how to check it is the same file (the run store
        adds the name of the run folder's copy)."""
        return {"name": self.name, "sha256": self.sha256,
                "source": str(self.path), "shipped": self.shipped}


def shipped() -> list[str]:
    """The names of the shipped models, the default first."""
    found = sorted(layout.model_name_of(p.name) for p in SHIPPED_DIR.glob("*.py"))
    return [DEFAULT] + [n for n in found if n != DEFAULT]


def parse(text: str | None, cwd: Path) -> list[ModelSpec]:
    """``--model``: one name or path, or a comma list of them; each checked, none twice."""
    items = [part.strip() for part in (text or DEFAULT).split(",") if part.strip()] or [DEFAULT]
    specs = [resolve(item, cwd) for item in items]
    seen: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"--model names {spec.name} twice ({seen[spec.name].path} and {spec.path}); "
                              "give each model once, and rename a file whose name clashes")
        seen[spec.name] = spec
    return specs


def resolve(item: str, cwd: Path) -> ModelSpec:
    """A shipped model's name, or the path of a model file, checked as far as Python alone can."""
    looks_like_path = item.endswith(".py") or "/" in item or item.startswith(".")
    if not looks_like_path:
        path = SHIPPED_DIR / layout.model_file_name(item)
        if not names.is_safe(item) or not path.is_file():
            raise ConfigError(f"unknown model {item!r}; choose from {', '.join(shipped())}, or give the path of "
                              "a model file (a .py file defining build(keras, input_shape, n_classes))")
        return _spec(item, path, shipped=True)
    given = cwd / Path(item).expanduser()
    fix = "give the path of a .py file defining build(keras, input_shape, n_classes), or a shipped model: " + \
        ", ".join(shipped())
    try:
        path = given.resolve()
    except (RuntimeError, OSError):  # a symbolic link loop
        raise ConfigError(f"model file {given} cannot be followed (a loop of symbolic links?); {fix}") from None
    if path.is_dir():
        raise ConfigError(f"model file {path} is a folder, not a file; {fix}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"model file {path} is not a regular file (a device or a pipe); {fix}")
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist; {fix}")
    name = layout.model_name_of(path.name)
    if not names.is_safe(name):
        raise ConfigError(f"model file {path}: its name {name!r} is not plain enough to name results; "
                          f"rename the file ({names.RULE}, '_' allowed)")
    if (SHIPPED_DIR / layout.model_file_name(name)).is_file() and path != (
            SHIPPED_DIR / layout.model_file_name(name)).resolve():
        raise ConfigError(f"model file {path} has the name of the shipped model {name}; rename the file so "
                          "their results, baselines and history stay apart")
    return _spec(name, path, shipped=False)


def _spec(name: str, path: Path, shipped: bool) -> ModelSpec:
    try:
        source = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"model file {path} cannot be read ({err.strerror})") from None
    tree = check_source(path, source)
    return ModelSpec(name, path, hashlib.sha256(source).hexdigest(), shipped, keras2_missing(tree))


def check_source(path: Path, source: bytes) -> ast.Module:
    """The file parses as Python 3.6 and defines ``build`` at its top level taking three arguments."""
    try:
        tree = ast.parse(source, filename=str(path), feature_version=(3, 6))
    except SyntaxError as err:
        raise ConfigError(f"model file {path} is not Python 3.6 (line {err.lineno}: {err.msg}); a model file "
                          "runs on CNTK's Python 3.6 too") from None
    except ValueError as err:  # null bytes
        raise ConfigError(f"model file {path} is not Python source ({err})") from None
    builds = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "build"]
    if not builds:
        raise ConfigError(f"model file {path} has no build function; define build(keras, input_shape, "
                          "n_classes) at its top level, returning an uncompiled Keras model")
    arguments = builds[-1].args
    if len(arguments.args) < 3 and arguments.vararg is None:
        raise ConfigError(f"model file {path}: build takes {len(arguments.args)} argument(s); it must take "
                          "(keras, input_shape, n_classes)")
    return tree


def keras2_missing(tree: ast.Module) -> tuple[str, ...]:
    """``keras.<module>.<name>`` and ``keras.<name>`` used in the file that Keras 2.3.1 does not have.

    Static: it reads attribute chains on the name ``keras`` and on local
    aliases of ``keras.layers`` (``layers = keras.layers``), the idiom of the
    shipped models. A use it cannot see still fails the job, with Keras's own error.
    """
    aliases = {"keras": ""}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and _chain(node.value) and _chain(node.value)[0] == "keras" and len(_chain(node.value)) == 2):
            aliases[node.targets[0].id] = _chain(node.value)[1]
    missing = set()
    for node in ast.walk(tree):
        chain = _chain(node)
        if not chain or len(chain) < 2 or chain[0] not in aliases:
            continue
        parts = ([aliases[chain[0]]] if aliases[chain[0]] else []) + chain[1:]
        module, member = (parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0])
        if module and module not in KERAS2_NAMES:  # keras.<name> where <name> is not a module
            if module not in KERAS2_NAMES[""]:
                missing.add(f"keras.{module}")
            continue
        if member not in KERAS2_NAMES.get(module, KERAS2_NAMES[""]):
            missing.add(f"keras.{module}.{member}" if module else f"keras.{member}")
    return tuple(sorted(missing))


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def key(profile: str, model: str) -> str:
    """The name of a (profile, model) pair in baseline and history files: the profile alone for the default model.

    ``@`` cannot occur in a profile or model name, so no two pairs share a key,
    and the seed's files (``default.json``, ``smoke.jsonl``) keep their names.
    """
    return profile if model == DEFAULT else f"{profile}@{model}"
