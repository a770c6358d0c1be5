"""Trainings that survive a kill: one checkpoint per epoch, written whole, checked when read.

After every epoch, ``Checkpoints.callbacks()`` writes one folder ``state/`` holding the model and optimizer
(``latest.weights.h5``: the step count, hence the learning-rate schedule's position), the best epoch's
weights by ``monitor``, the log of every epoch so far, the noise generators' states and ``state.json``
(the epoch, the best value and a SHA-256 of each file). It is written as ``state.new/``, then renamed
into place, so a kill at any point leaves the last finished epoch whole: a new ``fit`` resumes from it,
the model, optimizer and epoch restored together, and the batches' ``epoch`` set at each epoch's start
(``data.ShuffledBatches``, ``m2.SemiSupervisedBatches``), so they are those an uninterrupted run draws.
Reading checks every file's hash. ``finish(model)`` loads the best weights, marks the training complete
and returns its log; a complete training is loaded, not trained again, or continued when asked for more
epochs (a ``config`` without ``epochs``, with a learning rate that does not depend on the planned length).

The files go to ``<directory>/<key>/``, ``key`` a hash of the identity (``identity.py``): the settings
(``config``, written as ``config.json``), the Keras backend, the checkpoints of the trainings it learns
from, and, once ``bind`` adds them, the code that trains, the optimizer's settings and the layers::

    ckpt = Checkpoints("build/checkpoints/m2", {"n_labelled": 100}, monitor="val_error")
    history = training.fit(model, batches, epochs=100, checkpoints=ckpt,
                           callbacks=[evaluate.ClassificationError(x_val, y_val)])

Introduced in ``notebooks/01_vae_mnist.ipynb``; the identity rule is spelled out in notebook 06.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from .atomic import write_text
from .data.files import sha256sum
from .identity import _canonical, code_sources, identity_key, model_structure
from .training import StopOnNonFinite

__all__ = ["Checkpoints"]

# --------------------------------------------------------------------------------------------------
# The per-epoch state: one folder, written whole, then renamed into place
# --------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpoints:
    """Long ``fit`` runs that survive a kill, keep their best epoch and log every epoch (see the module's
    docstring); ``training.fit(..., checkpoints=ckpt)`` uses them. Introduced in notebook 01.
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
        self.data = None  # the batches given to ``callbacks``: what builds a model that ``finish`` loads into

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
                json.dumps(model_structure(model), sort_keys=True).encode()
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
                if sha256sum(folder / name) != digest:
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
        self.data = data
        self.directory.mkdir(parents=True, exist_ok=True)
        write_text(self.directory / "config.json", json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        if self.code is not None:
            write_text(self.directory / "code.json", json.dumps(sorted(self.code), indent=2) + "\n")
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

    def _build(self, model) -> None:
        """Create the variables of a model that makes them at its first call (a ``keras.Model`` subclass
        whose parts are built there): call it on the inputs of the first batch given to ``callbacks``."""
        if self.data is None:
            raise ValueError(
                f"{type(model).__name__} is not built, so the weights in {self.state_dir} cannot load "
                "into it: pass its batches to callbacks(data=...) or call the model on data first"
            )
        batches = isinstance(self.data, keras.utils.PyDataset)
        batch = self.data[0] if batches else self.data
        inputs = batch[0] if isinstance(batch, tuple) else batch
        model(inputs if batches else inputs[:1])  # arrays: one example is enough to build

    def finish(self, model) -> dict[str, list[float]]:
        """Load the best epoch's weights into ``model``, mark the training complete, return ``history()``."""
        state = self._state()
        if state is None:
            raise FileNotFoundError(
                f"no finished epoch in {self.directory}: fit the model with callbacks() first (was "
                f"{self.monitor!r} in the logs? put the callback that computes it before these)"
            )
        history = self.history()
        if not model.built:
            self._build(model)
        if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so that its saved state loads too
        try:
            model.load_weights(str(self.state_dir / "best.weights.h5"))
        except Exception as exc:  # h5py's OSError, Keras's ValueError on a mismatch, ...
            raise self._broken("best.weights.h5", exc) from exc
        if not state["complete"]:
            write_text(self.state_dir / "state.json", json.dumps({**state, "complete": True}, indent=2))
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
        new = self.ckpt.directory / "state.new"
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        self.state = {
            "epoch": epoch + 1,
            "monitor": self.ckpt.monitor,
            "best": value if improved else best,
            "best_epoch": epoch + 1 if improved else self.state["best_epoch"],
            "complete": False,
            "files": self._write_files(new, improved),
            # the noise generators' states, which save_weights leaves out: the next epoch's noise
            "unsaved": [[v.path, keras.ops.convert_to_numpy(v).tolist()] for v in _unsaved(self.model)],
        }
        write_text(new / "state.json", json.dumps(self.state, indent=2))
        _fsync_dir(new)
        self._swap_in(new)

    def _write_files(self, new: Path, improved: bool) -> dict[str, str]:
        """The weights (latest, best) and the log into ``new``, each synced; returns their SHA-256."""
        self.model.save_weights(str(new / "latest.weights.h5"))
        best_from = new / "latest.weights.h5" if improved else self.ckpt.state_dir / "best.weights.h5"
        shutil.copyfile(best_from, new / "best.weights.h5")
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        with open(new / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
        files = {}
        for name in ("latest.weights.h5", "best.weights.h5", "log.csv"):
            with open(new / name, "rb+") as f:
                os.fsync(f.fileno())
            files[name] = sha256sum(new / name)
        return files

    def _swap_in(self, new: Path) -> None:
        """``new`` becomes ``state/``: the old state is renamed aside first, then removed."""
        directory, current = self.ckpt.directory, self.ckpt.state_dir
        old = directory / "state.old"
        if current.exists():
            os.replace(current, old)
        os.replace(new, current)
        _fsync_dir(directory)
        shutil.rmtree(old, ignore_errors=True)
