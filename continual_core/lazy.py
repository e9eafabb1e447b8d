"""TensorFlow and Keras, imported on first use.

A method's file holds both its config model (read by the API process, which never imports
TensorFlow) and its implementation (run by the worker). It takes `tf` and `keras` from
here: the names exist at import time, the libraries are imported when an attribute is
first read, i.e. when the worker builds the method. `tests/continual_core/test_plugins.py`
checks that importing every registered method leaves TensorFlow unimported.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """A module that is imported when one of its attributes is first read."""

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self.__name__), attribute)
        setattr(self, attribute, value)  # later reads skip __getattr__
        return value


tf: Any = LazyModule("tensorflow")
keras: Any = LazyModule("keras")
