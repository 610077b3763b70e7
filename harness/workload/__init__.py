"""The program that runs inside a job: train or predict one backend.

Everything under ``harness/workload`` must run unchanged on the legacy
interpreter (Python 3.6, Keras 2.3.1) and on Keras 3: Python 3.6 syntax, and
imports limited to the standard library, numpy, keras and Pillow. The harness
side never imports keras; it talks to this program through the run folder.
"""
