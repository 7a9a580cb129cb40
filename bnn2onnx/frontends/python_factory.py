"""A source that exists only as Python code: `package.module:function` or `path/to/file.py:function`.

Some models cannot be saved and reloaded by their own framework (larq_zoo's MeliusNet22: Keras rebuilds its Lambda
layer's `tf.split` keywords as a dict), and some users keep the model's definition, not a file. Naming a function
that builds the model (as uvicorn and gunicorn name an app) converts it from the CLI as the Python API would.
The function runs with the keyword arguments given (`--kwargs` JSON) and returns a Keras model, or a torch module
with its example input as `(module, example_input)`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from bnn2onnx.errors import ConversionError, first_line

_IDENTIFIER = r"[A-Za-z_]\w*"
_DOTTED = rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*"
FACTORY = re.compile(rf"^(?P<target>{_DOTTED}|.+\.py):(?P<function>{_DOTTED})$")


def is_factory(source: Any) -> bool:
    """A `module:function` or `file.py:function` string that is not an existing path."""
    return isinstance(source, str) and not Path(source).exists() and FACTORY.match(source) is not None


def _module(target: str) -> Any:
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ConversionError(f"{target}: no such file")
        spec = importlib.util.spec_from_file_location(f"bnn2onnx_factory_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ImportError as error:
        raise ConversionError(f"cannot import {target}: {first_line(error)}") from error


def parse_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConversionError(f"--kwargs is not JSON: {error}") from error
    if not isinstance(kwargs, dict):
        raise ConversionError('--kwargs must be a JSON object, e.g. \'{"weights": null}\'')
    return kwargs


def build(source: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """(model, example input or None) from calling the named function with `kwargs`."""
    match = FACTORY.match(source)
    target, function = match.group("target"), match.group("function")
    factory: Any = _module(target)
    for part in function.split("."):
        if not hasattr(factory, part):
            raise ConversionError(f"{target} has no {function}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ConversionError(f"{source} is not callable")
    # Larq needs legacy Keras, chosen by this variable before TensorFlow's first import, which the factory may do.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        built = factory(**kwargs)
    except ConversionError:
        raise
    except Exception as error:
        raise ConversionError(f"{source}(**{kwargs}) failed: {type(error).__name__}: {first_line(error)}") \
            from error
    if isinstance(built, tuple):
        if len(built) != 2:
            raise ConversionError(f"{source} returned a tuple of {len(built)}; give (torch module, example input)")
        return built
    return built, None
