"""Reproducibility plumbing: seeding, and saving a run's metrics and figures with its provenance.

A full run writes ``results/<name>.json`` and ``figures/<name>_<figure>.png`` in the repository; a
smoke run writes the same files under ``build/smoke/`` so it never overwrites the published ones.
``$VAE_OUTPUT_DIR`` replaces either base directory. Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import hashlib
import importlib.metadata
import inspect
import json
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import keras
import matplotlib.pyplot as plt
import numpy as np

from . import home, losses
from .publish import FIGURE_KEY
from .run import STAGING_ENV, VARIANT_ENV, output_base, variant_tag

__all__ = [
    "Checkpoints",
    "Run",
    "StopOnNonFinite",
    "code_version",
    "environment",
    "seed_everything",
    "write_json",
]

ROOT = home.ROOT


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and the Keras backend (``keras.utils.set_random_seed``)."""
    keras.utils.set_random_seed(seed)
    return seed


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Versions and hardware of this process, for the record of a run."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            **{
                p: _version(p)
                for p in ("tensorflow-cpu", "tensorflow", "jax", "jaxlib", "torch", "numpy")
                if _version(p)
            },
        },
        "hardware": {
            "platform": platform.platform(),
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "memory_gib": round(memory / 2**30, 1) if memory else None,
            "gpus": _gpus(),
        },
    }


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` atomically: a temporary file beside ``path``, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)  # mkstemp makes 0600; a results file is read like any other
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, payload: dict) -> Path:
    """Write ``payload`` as JSON atomically (``write_text``); NaN and infinity are refused."""
    return write_text(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _check_finite(metrics, prefix: str = "") -> None:
    """Refuse NaN and infinity anywhere in ``metrics`` (nested dicts, lists, arrays), and keys that are not
    strings, naming the key."""
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if not isinstance(key, str):  # JSON would turn 1 into "1", and two keys into one
                raise ValueError(f"metric key {name} is not a string ({key!r}): write str({key!r})")
            _check_finite(value, name)
        return
    if hasattr(metrics, "__array__") and not isinstance(metrics, np.ndarray | np.generic):  # JAX, pandas
        metrics = np.asarray(metrics)
    if isinstance(metrics, (list, tuple, np.ndarray)):
        for i, value in enumerate(np.asarray(metrics, dtype=object).reshape(-1)):
            _check_finite(value, f"{prefix}[{i}]")
        return
    if isinstance(metrics, (float, np.floating)) and not math.isfinite(metrics):
        raise ValueError(f"metric {prefix} is {metrics}: expected a finite number; nothing was saved")


def _plain(value):
    """NumPy scalars and arrays as plain Python numbers and lists, for JSON."""
    return value.tolist() if hasattr(value, "tolist") else float(value)


def code_version(*objects) -> str:
    """A short hash of the code of ``objects`` (classes, functions, modules): the code that trains.

    Docstrings, comments and layout are left out, so rewording them keeps a training's identity.
    """
    digest = hashlib.sha1()
    for obj in objects:
        digest.update(_code_only(inspect.getsource(obj)).encode())
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


def show_png(png: bytes, name: str) -> None:
    """Display PNG bytes as a notebook output whose metadata names the file; outside IPython, do nothing."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=png, format="png"), metadata={FIGURE_KEY: name})


class StopOnNonFinite(keras.callbacks.Callback):
    """Fail ``fit`` with a ``FloatingPointError`` at the end of an epoch whose loss or metrics are not finite.

    Unlike ``keras.callbacks.TerminateOnNaN``, which ends ``fit`` quietly, this fails the notebook; put first
    among the callbacks, it stops before the epoch is logged or checkpointed, so a diverged run leaves no
    weights to load or to resume from.
    """

    def on_epoch_end(self, epoch, logs=None):
        bad = {k: float(v) for k, v in (logs or {}).items() if not math.isfinite(float(v))}
        if bad:
            raise FloatingPointError(
                f"epoch {epoch + 1} ended with non-finite values {bad}: the run diverged and was stopped, "
                "and nothing of this epoch was saved. Lower the learning rate or check the inputs."
            )


class Run:
    """One execution of a notebook: seeds it, times it, and saves its metrics and figures.

    >>> run = Run("01_vae_mnist", seed=0, smoke=True)    # doctest: +SKIP
    >>> run.save_figure(fig, "manifold")                 # doctest: +SKIP
    >>> run.save_metrics({"test_elbo": -95.1})           # doctest: +SKIP
    """

    def __init__(self, name: str, *, seed: int, smoke: bool, variant: dict | None = None):
        if not isinstance(name, str) or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z_-]*", name):
            raise ValueError(f"a run's name is a notebook's name (letters, digits, _ and -), found {name!r}")
        self.name = name
        # a run of a sweep (python -m vae_utils.run --sweep ...): its parameters name its files
        swept = json.loads(os.environ.get(VARIANT_ENV) or "{}")
        self.variant = {**dict(variant or {}), **swept}
        self.tag = variant_tag(self.variant) if self.variant else None
        self.seed = seed_everything(seed)
        self.profile = "smoke" if smoke else "full"
        self.started = time.perf_counter()
        self.started_at = dt.datetime.now(dt.UTC)
        self.base = output_base(self.profile)
        # under the runner, metrics and figures are staged and published only once the notebook finished
        staging = os.environ.get(STAGING_ENV)
        self.staging = Path(staging) if staging else None
        written = self.staging or self.base
        self.results_dir = written / "results"
        self.figures_dir = written / "figures"
        self.figure_prefix = f"{self.name}__{self.tag}" if self.tag else self.name
        if self.staging:
            write_json(self.staging / "run.json", {"figure_prefix": self.figure_prefix})
        self.trainings: dict[str, Checkpoints] = {}

    def checkpoints(
        self, stem: str, config: dict, *, code=(), upstream=(), monitor: str = "val_loss", mode: str = "min"
    ):
        """``Checkpoints`` for one model of this notebook: ``<build>/checkpoints/<profile>/<name>/<stem>/``.

        The identity of a training is everything that determines its weights: ``config`` (every setting),
        the Keras backend, ``code_version(*code, losses)`` (pass the model's class and the batches' class)
        and the identity of each ``upstream`` training whose output it learns from (M1 for M1+M2). Change
        any of them and the model is trained afresh. Checkpoints live outside git, under ``build/`` (or
        ``$VAE_OUTPUT_DIR/checkpoints``).
        """
        custom = os.environ.get("VAE_OUTPUT_DIR")
        root = self.base / "checkpoints" if custom else ROOT / "build" / "checkpoints"
        identity = {
            **config,
            "backend": keras.backend.backend(),
            "code": code_version(*code, losses),
            "upstream": {ck.name: ck.key for ck in upstream},
        }
        ckpt = Checkpoints(root / self.profile / self.name / stem, identity, monitor=monitor, mode=mode)
        ckpt.name = stem
        self.trainings[stem] = ckpt
        return ckpt

    def elapsed(self) -> float:
        """Seconds since this run started."""
        return time.perf_counter() - self.started

    def save_figure(self, fig, stem: str) -> None:
        """Save ``fig`` as ``<figures_dir>/<name>_<stem>.png`` (written whole, then renamed); show the file.

        In a notebook the saved PNG itself is displayed, whatever matplotlib's backend, so the figure a
        reader sees is the published one; the output's metadata names the file (``FIGURE_KEY``).
        """
        if not isinstance(stem, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", stem):
            raise ValueError(f"a figure's stem is letters, digits, _ . - (a file name), found {stem!r}")
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / f"{self.figure_prefix}_{stem}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        try:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        plt.close(fig)  # shown once, as the file below, not a second time by an inline backend
        show_png(path.read_bytes(), path.name)

    def save_metrics(self, metrics: dict) -> Path:
        """Save ``metrics`` as ``results/<name>.json`` with seed, profile, wall time and machine.

        A run of a sweep (``variant`` given) saves ``results/<name>/<tag>.json`` instead. Returns the
        published path; under the runner the file is staged and published when the notebook finished.
        """
        _check_finite(metrics)
        metrics = json.loads(json.dumps(metrics, default=_plain))  # NumPy values -> plain numbers
        payload = {
            "notebook": self.name,
            "profile": self.profile,
            "seed": self.seed,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - self.started, 1),
            "metrics": metrics,
            **({"trainings": {k: ck.record() for k, ck in self.trainings.items()}} if self.trainings else {}),
            **environment(),
            "reproduce": f"python -m vae_utils.run notebooks/{self.name}.ipynb --profile {self.profile}"
            + "".join(f" --sweep {name}={value}" for name, value in self.variant.items()),
        }
        if self.tag:
            payload["variant"] = self.variant
        relative = Path("results") / (f"{self.name}/{self.tag}.json" if self.tag else f"{self.name}.json")
        write_json((self.staging or self.base) / relative, payload)
        return self.base / relative  # where it is published (at once, or by the runner when staged)


class Checkpoints:
    """Long ``fit`` runs that survive an interruption, keep their best epoch and log every epoch.

    ``callbacks()`` returns Keras's own ``BackupAndRestore`` (model and optimizer state after every epoch;
    a new ``fit`` after an interruption resumes from the last finished epoch), a ``ModelCheckpoint`` that
    keeps the weights of the best epoch by ``monitor`` and a ``CSVLogger`` that appends each epoch to
    ``log.csv``, so the curves cover the epochs before and after a resume. After ``fit``, ``finish(model)``
    loads the best weights, marks the run complete and returns the per-epoch log. A complete run is not
    trained again: ``complete`` is true and ``finish`` alone restores it.

    The files go to ``directory/<key>/``, ``key`` a hash of ``config`` (written beside them as
    ``config.json``): change a setting and the run starts afresh in its own directory.

    >>> ckpt = Checkpoints("build/checkpoints/m2", {"epochs": 100, "n_labelled": 100})  # doctest: +SKIP
    >>> if not ckpt.complete:                                                               # doctest: +SKIP
    ...     model.fit(batches, epochs=100, callbacks=[ClassificationError(x, y), *ckpt.callbacks()])
    >>> history = ckpt.finish(model)                                                        # doctest: +SKIP
    """

    def __init__(self, directory, config: dict, monitor: str = "val_loss", mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', found {mode!r}")
        text = json.dumps(config, sort_keys=True, default=str)
        self.config = json.loads(text)
        self.key = hashlib.sha1(text.encode()).hexdigest()[:12]
        self.name = Path(directory).name
        self.directory = Path(directory) / self.key
        self.monitor, self.mode = monitor, mode
        self.backup_dir = self.directory / "backup"
        self.best_path = self.directory / "best.weights.h5"
        self.log_path = self.directory / "log.csv"
        self.done_path = self.directory / "complete"
        self.status = "loaded a finished training"
        self.resumed_after_epoch = None

    def _broken(self, what: str, exc: Exception) -> RuntimeError:
        return RuntimeError(
            f"the checkpoint in {self.directory} is damaged ({what}: {exc}). Delete that folder to train "
            "this model afresh."
        )

    @property
    def complete(self) -> bool:
        """Whether a run with this config has finished: its best weights and log are there."""
        return self.done_path.exists() and self.best_path.exists() and self.log_path.exists()

    @property
    def resuming(self) -> bool:
        """Whether an interrupted run left a backup that the next ``fit`` resumes from."""
        return self.backup_dir.exists()

    def callbacks(self) -> list:
        """The callbacks to pass to ``fit``, after any that add ``monitor`` to the logs; none if complete."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(self.directory / "config.json", self.config)
        best = None
        if self.resuming:
            self._check_backup()
            log = self.history()
            values = log.get(self.monitor, [])
            best = (min if self.mode == "min" else max)(values) if values else None
            self.resumed_after_epoch = len(values)
            self.status = f"resumed after epoch {len(values)}"
        elif self.complete:  # a finished run: its files are the result, and stay as they are
            return []
        else:  # a fresh run: nothing of an earlier one may leak into its log or its best weights
            for path in (self.log_path, self.best_path, self.done_path):
                path.unlink(missing_ok=True)
            self.status = "trained"
        return [
            StopOnNonFinite(),  # first: a diverged epoch is neither logged nor kept nor backed up
            keras.callbacks.ModelCheckpoint(
                str(self.best_path),
                monitor=self.monitor,
                mode=self.mode,
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best,
            ),
            keras.callbacks.CSVLogger(str(self.log_path), append=True),
            # last, so that an epoch is only backed up once it is logged and its best weights kept
            keras.callbacks.BackupAndRestore(str(self.backup_dir)),
        ]

    def _check_backup(self) -> None:
        """Refuse a backup that ``BackupAndRestore`` could not resume from, naming the folder."""
        metadata = self.backup_dir / "training_metadata.json"
        weights = self.backup_dir / "latest.weights.h5"
        try:
            if metadata.exists():
                json.loads(metadata.read_text())
            if weights.exists():
                with h5py.File(weights, "r"):
                    pass
        except (OSError, ValueError) as exc:
            raise self._broken(f"backup in {self.backup_dir.name}/", exc) from exc

    def record(self) -> dict:
        """What a results file says of this training: its key, whether it resumed, epochs logged."""
        return {
            "checkpoint": self.key,
            "status": self.status,
            "resumed_after_epoch": self.resumed_after_epoch,
            "epochs_logged": len(next(iter(self.history().values()), [])),
        }

    def history(self) -> dict[str, list[float]]:
        """The per-epoch log, ``{metric: [value per epoch]}``; an epoch logged twice keeps its last row.

        A log with a cut or non-numeric row, or a NaN or infinite value, is refused: it is not the log of a
        run that finished its epochs.
        """
        if not self.log_path.exists():
            return {}
        try:
            with open(self.log_path, newline="") as f:
                rows = {int(row["epoch"]): row for row in csv.DictReader(f)}
            ordered = [rows[epoch] for epoch in sorted(rows)]
            # CSVLogger writes val_* columns of "NA" when fit has no validation data: they are not metrics
            keys = [k for k in (ordered[0] if ordered else {}) if k != "epoch"]
            keys = [k for k in keys if any(row[k] != "NA" for row in ordered)]
            log = {key: [float(row[key]) for row in ordered] for key in keys}
        except (KeyError, ValueError, TypeError, csv.Error) as exc:
            raise self._broken(f"unreadable log {self.log_path.name}", exc) from exc
        bad = [key for key, values in log.items() if not all(math.isfinite(v) for v in values)]
        if bad:
            raise self._broken(f"log {self.log_path.name}", ValueError(f"non-finite values in {bad}"))
        return log

    def finish(self, model) -> dict[str, list[float]]:
        """Load the best epoch's weights into ``model``, mark the run complete, return ``history()``."""
        if not self.best_path.exists():
            raise FileNotFoundError(
                f"no best weights at {self.best_path}: fit the model with callbacks() first (was "
                f"{self.monitor!r} in the logs? put the callback that computes it before these)"
            )
        history = self.history()
        if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so that its saved state loads too
        try:
            model.load_weights(str(self.best_path))
        except Exception as exc:  # h5py's OSError, Keras's ValueError on a mismatch, ...
            raise self._broken(f"best weights {self.best_path.name}", exc) from exc
        self.done_path.touch()
        return history
