"""The one rule for names that become file and folder names: run ids and profile names.

A run id is a folder under ``<shared>/runs/`` and part of Kubernetes object
names; a profile name is a history file (``<history>/<name>.jsonl``) and a
baseline file (``<baselines>/<name>.json``). Both must stay plain so that no
value can reach outside its folder or create oddly named files.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets

from harness.errors import ConfigError

SAFE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?\Z")
"""1-40 lowercase letters, digits and '-', starting and ending with a letter or digit.

Matched with ``fullmatch`` and anchored with ``\\Z``: ``$`` would accept a
trailing newline."""
RULE = "use 1-40 lowercase letters, digits and '-', starting and ending with a letter or digit"


def is_safe(text: object) -> bool:
    return isinstance(text, str) and SAFE_NAME.fullmatch(text) is not None


def check(text: object, what: str, example: str) -> str:
    """``text`` if it is a safe name, else a ConfigError naming ``what`` and the rule."""
    if not is_safe(text):
        raise ConfigError(f"{what} {text!r} is not a safe name; {RULE} (e.g. {example})")
    return text  # type: ignore[return-value]


def new_run_id(now: dt.datetime | None = None) -> str:
    """A fresh run id: the time it was made and a few random characters (``20261202-083000-1a2b``)."""
    now = now or dt.datetime.now()
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def check_run_id(text: str) -> str:
    """A run id becomes a folder name and part of Kubernetes names: keep it plain."""
    return check(text, "run id", "nightly-42")
