"""Scoring a finished run: read it back, score every member, ensemble them, describe it all.

The stage between the jobs and the verdicts: ``gather`` reads the run folder
back, ``metrics``, ``ensemble``, ``calibration`` and ``variants`` are the pure
numpy maths, ``analysis`` turns a gathered run into the ``record`` model
that the baselines, the history and the report read.
"""
