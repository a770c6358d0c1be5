"""A training's identity: its settings by content and the code it reaches, hashed into a checkpoint's key.

What trains a model is found from the objects a training is given (the model, the batches, the callbacks,
``training.fit``): the classes of the model and of its layers, their methods, and every function, class
or module attribute of ``vae_utils`` or of the notebook that reached code names (``code_sources``).
Introduced in ``notebooks/01_vae_mnist.ipynb``; the rule is spelled out in notebook 06.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import math
import textwrap
import types

import keras
import numpy as np

__all__ = ["code_sources", "code_version", "identity_key", "model_structure"]

#: Modules whose code is part of a training's identity: the package and the notebook (``__main__``).
OWN_MODULES = ("vae_utils", "__main__")


# --------------------------------------------------------------------------------------------------
# Identity: settings by content, code by what it reaches
# --------------------------------------------------------------------------------------------------


def _canonical(value):
    """``value`` as plain JSON: arrays by their content's hash, so two arrays of one shape differ."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"a checkpoint config's keys must be strings, found {list(value)!r}")
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.ndarray) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(value))
        if array.ndim == 0:
            return _canonical(array.item())
        return {
            "array": hashlib.sha1(array.tobytes()).hexdigest(),
            "shape": list(array.shape),
            "dtype": str(array.dtype),
        }
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"a checkpoint config holds {value}: expected finite numbers")
        return value
    raise TypeError(
        f"a checkpoint config holds a {type(value).__name__} ({value!r}): expected numbers, strings, "
        "lists, dicts or arrays"
    )


def identity_key(config: dict) -> str:
    """The 12-hex-digit key of ``config`` (see ``_canonical``)."""
    text = json.dumps(_canonical(config), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


_CONSTANT = (str, bytes, int, float, bool, type(None), tuple, frozenset, np.ndarray)


class _Setting(tuple):
    """A module-level constant that a function reads, hashed by its value."""

    def __new__(cls, name, value):
        return super().__new__(cls, (name, value))


def _own(obj, own=OWN_MODULES) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in own


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def code_sources(*roots) -> dict[str, str]:
    """The source (without docstrings and comments) of every function and class method that ``roots`` reach.
    Roots: functions, classes, modules, instances (their classes, a model's layers); the rule is in the
    module's docstring. Introduced in notebook 06.
    """
    own = set(OWN_MODULES) | {
        r.__module__.split(".")[0] for r in roots if isinstance(r, (type, types.FunctionType))
    }
    sources: dict[str, str] = {}
    seen: dict[int, object] = {}  # the objects too, so that no id is reused while this runs
    pending = list(roots)
    while pending:
        obj = pending.pop()
        if id(obj) not in seen:
            seen[id(obj)] = obj
            pending.extend(_visit(obj, own, seen, sources))
    return dict(sorted(sources.items()))


def _visit(obj, own, seen, sources) -> list:
    """Record the source of ``obj`` in ``sources`` if it is ours; return what it reaches."""
    if isinstance(obj, _Setting):
        sources[obj[0]] = repr(_canonical(obj[1]) if not isinstance(obj[1], tuple) else obj[1])
    elif isinstance(obj, (staticmethod, classmethod)):
        return [obj.__func__]
    elif isinstance(obj, property):
        return [f for f in (obj.fget, obj.fset) if f is not None]
    elif isinstance(obj, types.ModuleType):
        if obj.__name__.split(".")[0] in own:
            sources[obj.__name__] = _code_only(inspect.getsource(obj))
    elif isinstance(obj, type):
        reached = [cls for cls in obj.__mro__ if _own(cls, own) and id(cls) not in seen]
        if _own(obj, own):
            sources[f"{obj.__module__}.{obj.__qualname__}"] = "class " + ",".join(
                f"{b.__module__}.{b.__qualname__}" for b in obj.__bases__
            )
            reached.extend(obj.__dict__.values())
        return reached
    elif isinstance(obj, (types.FunctionType, types.MethodType)):
        func = getattr(obj, "__func__", obj)
        if _own(func, own):
            sources[f"{func.__module__}.{func.__qualname__}"] = _code_only(inspect.getsource(func))
            return _referenced(func, own)
    elif not isinstance(obj, _CONSTANT):  # an instance: its class, a model's layers, and
        reached = [type(obj)]  # functions it holds (a transform, say)
        if isinstance(obj, keras.layers.Layer):
            reached.extend(type(layer) for layer in obj._flatten_layers(include_self=False))
        held = getattr(obj, "__dict__", {}).values()
        return reached + [v for v in held if isinstance(v, types.FunctionType)]
    return []


def _referenced(func, own) -> list:
    """The objects of ``vae_utils`` or the notebook that the code of ``func`` names."""
    names = {name for code in _code_objects(func.__code__) for name in code.co_names}
    found = []
    for name in sorted(names):
        value = func.__globals__.get(name)
        if isinstance(value, types.ModuleType) and value.__name__.split(".")[0] in own:
            # a module names its functions by attribute: losses.gaussian_kl
            found.extend(getattr(value, attr) for attr in names if _own(getattr(value, attr, None), own))
        elif _own(value, own) and isinstance(value, (type, types.FunctionType)):
            found.append(value)
        elif isinstance(value, _CONSTANT) and name.isupper():  # a setting: LATENT_DIM = 50
            found.append(_Setting(f"{func.__module__}.{name}", value))
    for cell in func.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if _own(value, own) and isinstance(value, (type, types.FunctionType)):
            found.append(value)
    return found


def code_version(*roots) -> str:
    """A short hash of ``code_sources(*roots)``: docstrings, comments and layout do not change it."""
    digest = hashlib.sha1()
    for name, source in code_sources(*roots).items():
        digest.update(f"{name}\n{source}\n".encode())
    return digest.hexdigest()[:12]


def _code_only(source: str) -> str:
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:  # a lambda cut out of a longer line: hash its text as it stands
        return source
    for node in ast.walk(tree):
        documented = isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        if documented and node.body and _is_docstring(node.body[0]):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _is_docstring(statement) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def model_structure(model) -> list:
    """Each layer's class, settings (without its name) and weight shapes: the architecture that trains."""

    def unnamed(config):
        if isinstance(config, dict):
            return {k: unnamed(v) for k, v in config.items() if k != "name"}
        if isinstance(config, list):
            return [unnamed(v) for v in config]
        return config

    structure = []
    for layer in model._flatten_layers(include_self=True):
        if layer._flatten_layers(include_self=False):  # a container: its leaves say it all
            continue
        try:
            config = unnamed(layer.get_config())
        except NotImplementedError:
            config = {}
        shapes = [list(w.shape) for w in layer.weights]
        structure.append([type(layer).__qualname__, json.loads(json.dumps(config, default=str)), shapes])
    return structure
