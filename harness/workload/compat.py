"""Make Keras 2.3.1 and Theano 1.0.5 import on Python 3.10 and newer.

Python 3.10 removed the ``collections.Iterable``-style aliases and 3.11 removed
``inspect.getargspec``; the old libraries still use them. Call ``apply()``
before importing keras. It changes nothing on interpreters that still have them.
"""
import collections
import inspect
import sys

_ABC_NAMES = ("Callable", "Container", "Hashable", "ItemsView", "Iterable", "Iterator", "KeysView",
              "Mapping", "MappingView", "MutableMapping", "MutableSequence", "MutableSet", "Sequence",
              "Set", "Sized", "ValuesView")


def apply():
    if sys.version_info >= (3, 10):
        import collections.abc

        for name in _ABC_NAMES:
            if not hasattr(collections, name):
                setattr(collections, name, getattr(collections.abc, name))
    if not hasattr(inspect, "getargspec"):
        def getargspec(func):
            spec = inspect.getfullargspec(func)
            return spec.args, spec.varargs, spec.varkw, spec.defaults

        inspect.getargspec = getargspec
