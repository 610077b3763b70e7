"""Benchmark one Keras program on every backend and ensemble the results.

This file must stay importable by the workload's oldest interpreter
(Python 3.6, inside the legacy image): no annotations-only syntax here.
"""
__version__ = "0.1.0"
