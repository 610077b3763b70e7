"""Which model a run builds (``--model``), checked before any job starts.

* ``spec``: names and files resolved into a ``ModelSpec``, with what Python
  alone can check (the file parses as Python 3.6, defines ``build``; the
  ``keras.*`` names it uses that Keras 2.3.1 lacks, from ``keras2_names``);
* ``build_check``: the file built once in the Keras 3 runtime
  (``harness.workload.build_check`` inside it), so a model that does not build
  is one line before any job.

Building a model inside a job is the workload's (``harness.workload.model``).
"""
from __future__ import annotations

from harness.models.spec import DEFAULT, ModelSpec, key, parse, resolve, shipped

__all__ = ["DEFAULT", "ModelSpec", "key", "parse", "resolve", "shipped"]
