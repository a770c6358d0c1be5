"""Trainings that survive a kill: one checkpoint per epoch, written whole, checked when read.

A training's identity is what determines its weights: its settings (``config``), the Keras backend, the
checkpoints of the trainings it learns from, and the code that trains it, found by following the model,
the data, the callbacks and ``training.fit`` to every function and class of ``vae_utils`` or of the
notebook that they use (``code_sources``). Its files live in ``<directory>/<key>/``, ``key`` a hash of
the identity. Introduced in ``notebooks/01_vae_mnist.ipynb``; the rule is spelled out in notebook 06.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import inspect
import io
import json
import math
import os
import shutil
import tempfile
import textwrap
import time
import types
from pathlib import Path

import keras
import numpy as np

from .training import StopOnNonFinite

__all__ = ["Checkpoints", "code_sources", "code_version", "identity_key"]

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

    A root is a function, a class, a module or an instance (a model, a batches object, a callback). An
    instance brings its class and, for a Keras model, the class of each of its layers; a class brings
    every method defined in it and in its bases of ``vae_utils`` or of the notebook; a function brings
    every function, class or module attribute of ``vae_utils`` or of the notebook that its code names.
    Code of other packages (Keras, NumPy) is left out, their versions recorded with each run, unless a
    function or class of theirs is itself a root: its module's code is then followed too.
    """
    own = set(OWN_MODULES) | {
        r.__module__.split(".")[0] for r in roots if isinstance(r, (type, types.FunctionType))
    }
    sources: dict[str, str] = {}
    seen: dict[int, object] = {}  # the objects too, so that no id is reused while this runs
    pending = list(roots)
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        if isinstance(obj, _Setting):
            sources[obj[0]] = repr(_canonical(obj[1]) if not isinstance(obj[1], tuple) else obj[1])
        elif isinstance(obj, (staticmethod, classmethod)):
            pending.append(obj.__func__)
        elif isinstance(obj, property):
            pending.extend(f for f in (obj.fget, obj.fset) if f is not None)
        elif isinstance(obj, types.ModuleType):
            if obj.__name__.split(".")[0] in own:
                sources[obj.__name__] = _code_only(inspect.getsource(obj))
        elif isinstance(obj, type):
            for cls in obj.__mro__:
                if _own(cls, own) and id(cls) not in seen:
                    pending.append(cls)
            if _own(obj, own):
                sources[f"{obj.__module__}.{obj.__qualname__}"] = "class " + ",".join(
                    f"{b.__module__}.{b.__qualname__}" for b in obj.__bases__
                )
                pending.extend(obj.__dict__.values())
        elif isinstance(obj, (types.FunctionType, types.MethodType)):
            func = getattr(obj, "__func__", obj)
            if not _own(func, own):
                continue
            sources[f"{func.__module__}.{func.__qualname__}"] = _code_only(inspect.getsource(func))
            pending.extend(_referenced(func, own))
        elif isinstance(obj, _CONSTANT):
            continue
        else:  # an instance: its class, a model's layers, and functions it holds (a transform, say)
            pending.append(type(obj))
            if isinstance(obj, keras.layers.Layer):
                pending.extend(type(layer) for layer in obj._flatten_layers(include_self=False))
            held = getattr(obj, "__dict__", {}).values()
            pending.extend(v for v in held if isinstance(v, types.FunctionType))
    return dict(sorted(sources.items()))


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


def _model_structure(model) -> list:
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


# --------------------------------------------------------------------------------------------------
# The per-epoch state: one folder, written whole, then renamed into place
# --------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, text: str) -> None:
    """``text`` into ``path`` atomically (a temporary file beside it, flushed, renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Checkpoints:
    """Long ``fit`` runs that survive a kill at any point, keep their best epoch and log every epoch.

    After every epoch, ``callbacks()`` writes one folder ``state/`` holding the model and optimizer
    (``latest.weights.h5``: the step count, hence the learning-rate schedule's position), the best epoch's
    weights by ``monitor``, the log of every epoch so far and ``state.json`` (the epoch, the best value
    and a SHA-256 of each file). The folder is written as ``state.new/``, then renamed into place, so a
    kill at any point leaves the last finished epoch whole: a new ``fit`` resumes from it, the model,
    optimizer and epoch restored together, and a batches object with an ``epoch`` attribute
    (``data.BinarizedBatches``, ``m2.SemiSupervisedBatches``) set to the epoch it resumes at, so the
    batches are those an uninterrupted run would have drawn. Reading checks every file's hash.

    ``finish(model)`` loads the best weights, marks the training complete and returns its log. A complete
    training is loaded, not trained again; asked for more epochs than it holds (a ``config`` without
    ``epochs``, with a learning rate that does not depend on the planned length), it continues.

    The files go to ``directory/<key>/``, ``key`` a hash of ``config`` (written beside them as
    ``config.json``; ``bind`` adds the code that trains). ``training.fit`` does all of this::

        ckpt = Checkpoints("build/checkpoints/m2", {"n_labelled": 100}, monitor="val_error")
        history = training.fit(model, batches, epochs=100, checkpoints=ckpt,
                               callbacks=[evaluate.ClassificationError(x_val, y_val)])
    """

    def __init__(self, directory, config: dict, monitor: str = "val_loss", mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', found {mode!r}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must name a logged metric, found {monitor!r}")
        self.root = Path(directory)
        self.name = self.root.name
        self.monitor, self.mode = monitor, mode
        self.config = _canonical(config)
        self.code: dict[str, str] | None = None
        self.roots: tuple = ()  # further functions or classes whose code ``bind`` follows
        self._rekey()
        self.status = "loaded a finished training"
        self.resumed_after_epoch = None

    def _rekey(self) -> None:
        self.key = identity_key(self.config)
        self.directory = self.root / self.key
        self.state_dir = self.directory / "state"

    def bind(self, *roots, optimizer=None, model=None) -> Checkpoints:
        """Add to the identity the code that ``roots`` reach (``code_sources``), the settings of
        ``optimizer`` (its schedule included) and the layers of ``model``; returns ``self``."""
        self.code = code_sources(*roots, *self.roots, *([model] if model is not None else []))
        identity = {"code": hashlib.sha1(json.dumps(self.code).encode()).hexdigest()[:12]}
        if optimizer is not None:
            settings = keras.optimizers.serialize(optimizer)["config"]
            settings.pop("name", None)
            identity["optimizer"] = json.loads(json.dumps(settings, default=str))
        if model is not None:
            identity["layers"] = hashlib.sha1(
                json.dumps(_model_structure(model), sort_keys=True).encode()
            ).hexdigest()[:12]
        self.config = {**self.config, **identity}
        self._rekey()
        return self

    # ---- reading -----------------------------------------------------------------------------

    def _broken(self, what: str, exc: Exception | str) -> RuntimeError:
        return RuntimeError(
            f"the checkpoint in {self.directory} is damaged ({what}: {exc}). Delete that folder to train "
            "this model afresh."
        )

    def _read_state(self, folder: Path) -> dict:
        """``state.json`` of ``folder``, every file's hash checked; a damaged folder raises."""
        try:
            state = json.loads((folder / "state.json").read_text())
            files = state["files"]
            for name, digest in files.items():
                if _sha256(folder / name) != digest:
                    raise ValueError(f"{name} does not match the SHA-256 recorded when it was written")
            if state["monitor"] != self.monitor:
                raise ValueError(f"it monitors {state['monitor']!r}, this training {self.monitor!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise self._broken(f"{folder.name}/", exc) from exc
        return state

    def _state(self) -> dict | None:
        """The last whole epoch's state, or None. A kill between the two renames of a write leaves the
        newest whole state in ``state.new/`` or the previous one in ``state.old/``: either is taken."""
        if self.state_dir.exists():
            return self._read_state(self.state_dir)
        for name in ("state.new", "state.old"):
            folder = self.directory / name
            if folder.exists():
                try:
                    state = self._read_state(folder)
                except RuntimeError:
                    continue
                os.replace(folder, self.state_dir)
                return state
        return None

    @property
    def complete(self) -> bool:
        """Whether a training with this identity has finished (``finish`` was called)."""
        state = self._state()
        return bool(state and state["complete"])

    @property
    def resuming(self) -> bool:
        """Whether an unfinished training left a state that the next ``fit`` resumes from."""
        state = self._state()
        return bool(state and not state["complete"])

    @property
    def epochs_done(self) -> int:
        state = self._state()
        return state["epoch"] if state else 0

    def _log(self) -> dict[str, list[float]]:
        return _parse_log((self.state_dir / "log.csv").read_text(), self) if self._state() else {}

    def history(self) -> dict[str, list[float]]:
        """The per-epoch log, ``{metric: [value per epoch]}`` (empty before the first epoch)."""
        return {key: values for key, values in self._log().items() if key != "epoch_seconds"}

    def record(self) -> dict:
        """What a results file says of this training: its key, whether it resumed, epochs, speed."""
        seconds = self._log().get("epoch_seconds", [])
        return {
            "checkpoint": self.key,
            "status": self.status,
            "resumed_after_epoch": self.resumed_after_epoch,
            "epochs_logged": self.epochs_done,
            "seconds_per_epoch": round(float(np.median(seconds)), 3) if seconds else None,
        }

    # ---- training ----------------------------------------------------------------------------

    def callbacks(self, data=None, epochs: int | None = None) -> list:
        """The callbacks to pass to ``fit`` after any that add ``monitor`` to the logs; none when the
        training is complete with at least ``epochs`` epochs. ``data``: the batches, whose ``epoch`` is set
        to the epoch a resumed ``fit`` starts at."""
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_file(self.directory / "config.json", json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        if self.code is not None:
            _write_file(self.directory / "code.json", json.dumps(sorted(self.code), indent=2) + "\n")
        state = self._state()  # first: a killed write's newest whole state may be in state.new/
        for name in ("state.new", "state.old"):  # what a killed write left beside a whole state
            shutil.rmtree(self.directory / name, ignore_errors=True)
        if state and state["complete"] and (epochs is None or epochs <= state["epoch"]):
            if epochs is not None and epochs < state["epoch"]:
                raise ValueError(
                    f"the training in {self.directory} holds {state['epoch']} epochs and this run asks "
                    f"for {epochs}: ask for at least {state['epoch']}, or delete the folder"
                )
            return []
        if state:
            self.resumed_after_epoch = state["epoch"]
            self.status = f"resumed after epoch {state['epoch']}"
        else:
            self.status = "trained"
        return [StopOnNonFinite(), _EpochState(self, state, data)]

    def finish(self, model) -> dict[str, list[float]]:
        """Load the best epoch's weights into ``model``, mark the training complete, return ``history()``."""
        state = self._state()
        if state is None:
            raise FileNotFoundError(
                f"no finished epoch in {self.directory}: fit the model with callbacks() first (was "
                f"{self.monitor!r} in the logs? put the callback that computes it before these)"
            )
        history = self.history()
        if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so that its saved state loads too
        try:
            model.load_weights(str(self.state_dir / "best.weights.h5"))
        except Exception as exc:  # h5py's OSError, Keras's ValueError on a mismatch, ...
            raise self._broken("best.weights.h5", exc) from exc
        if not state["complete"]:
            _write_file(self.state_dir / "state.json", json.dumps({**state, "complete": True}, indent=2))
        return history


def _parse_log(text: str, ckpt: Checkpoints) -> dict[str, list[float]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not text.endswith("\n"):
        raise ckpt._broken("log.csv", "empty or cut")
    try:
        log = {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"}
    except (TypeError, ValueError) as exc:
        raise ckpt._broken("log.csv", exc) from exc
    if [int(row["epoch"]) for row in rows] != list(range(1, len(rows) + 1)):
        raise ckpt._broken("log.csv", "its epochs are not 1, 2, 3, ...")
    return log


def _unsaved(model) -> list:
    """The model's variables that ``save_weights`` does not write (random generators' states)."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


class _EpochState(keras.callbacks.Callback):
    """Restores a state at the start of ``fit`` and writes one after every epoch (see ``Checkpoints``)."""

    def __init__(self, ckpt: Checkpoints, state: dict | None, data):
        super().__init__()
        self.ckpt, self.state, self.data = ckpt, state, data
        self.rows = []
        if state:
            text = (ckpt.state_dir / "log.csv").read_text()
            self.rows = list(csv.DictReader(io.StringIO(text)))

    def on_train_begin(self, logs=None):
        if not self.state:
            return
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(str(self.ckpt.state_dir / "latest.weights.h5"))
        except Exception as exc:
            raise self.ckpt._broken("latest.weights.h5", exc) from exc
        unsaved = _unsaved(model)
        if len(unsaved) != len(self.state["unsaved"]):
            raise self.ckpt._broken(
                "state.json", f"{len(self.state['unsaved'])} generator states, the model has {len(unsaved)}"
            )
        for variable, (_, value) in zip(unsaved, self.state["unsaved"]):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        model._initial_epoch = self.state["epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        if self.data is not None and hasattr(self.data, "epoch"):
            self.data.epoch = epoch  # the batches of this epoch, whatever came before
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.ckpt.monitor not in logs:
            raise KeyError(
                f"the checkpoint keeps the best epoch by {self.ckpt.monitor!r}, which is not in the logs "
                f"{sorted(logs)}: put the callback that computes it before the checkpoint's"
            )
        logs["epoch_seconds"] = time.perf_counter() - self.started
        self.rows.append({"epoch": epoch + 1, **logs})
        value = logs[self.ckpt.monitor]
        best = self.state["best"] if self.state else None
        improved = best is None or (value < best if self.ckpt.mode == "min" else value > best)
        directory, current = self.ckpt.directory, self.ckpt.state_dir
        new, old = directory / "state.new", directory / "state.old"
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        self.model.save_weights(str(new / "latest.weights.h5"))
        if improved:
            shutil.copyfile(new / "latest.weights.h5", new / "best.weights.h5")
        else:
            shutil.copyfile(current / "best.weights.h5", new / "best.weights.h5")
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        with open(new / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
        files = {}
        for name in ("latest.weights.h5", "best.weights.h5", "log.csv"):
            with open(new / name, "rb+") as f:
                os.fsync(f.fileno())
            files[name] = _sha256(new / name)
        self.state = {
            "epoch": epoch + 1,
            "monitor": self.ckpt.monitor,
            "best": value if improved else best,
            "best_epoch": epoch + 1 if improved else self.state["best_epoch"],
            "complete": False,
            "files": files,
            # the noise generators' states, which save_weights leaves out: the next epoch's noise
            "unsaved": [[v.path, keras.ops.convert_to_numpy(v).tolist()] for v in _unsaved(self.model)],
        }
        _write_file(new / "state.json", json.dumps(self.state, indent=2))
        _fsync_dir(new)
        if current.exists():
            os.replace(current, old)
        os.replace(new, current)
        _fsync_dir(directory)
        shutil.rmtree(old, ignore_errors=True)
