"""Reproducibility plumbing: seeding, and saving a run's metrics and figures with its provenance.

A full run writes ``results/<name>.json`` and ``figures/<name>_<figure>.png`` in the repository; a
smoke run writes the same files under ``build/smoke/`` so it never overwrites the published ones.
``$VAE_OUTPUT_DIR`` replaces either base directory. Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np

from . import home
from .atomic import write_atomically, write_json
from .checkpoints import Checkpoints
from .home import STAGING_ENV, VARIANT_ENV, checkpoints_root, output_base, variant_tag
from .identity import code_version
from .publish import FIGURE_KEY
from .training import StopOnNonFinite

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


def show_png(png: bytes, name: str) -> None:
    """Display PNG bytes as a notebook output whose metadata names the file; outside IPython, do nothing."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=png, format="png"), metadata={FIGURE_KEY: name})


class Run:
    """One execution of a notebook: seeds it, times it, and saves its metrics and figures
    (``Run("01_vae_mnist", seed=0, smoke=True)``, then ``save_figure(fig, "manifold")`` and
    ``save_metrics({...})``). Introduced in notebook 01."""

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
        self,
        stem: str,
        config: dict,
        *,
        upstream=(),
        code=(),
        monitor: str = "val_loss",
        mode: str = "min",
    ) -> Checkpoints:
        """``Checkpoints`` for one model of this notebook, under ``build/checkpoints/<profile>/<name>/``;
        its identity: ``config``, the backend, each ``upstream`` training's key and (bound by
        ``training.fit``) the code that trains. Introduced in notebook 01."""
        root = checkpoints_root()
        identity = {
            **config,
            "backend": keras.backend.backend(),
            "upstream": {ck.name: ck.key for ck in upstream},
        }
        ckpt = Checkpoints(root / self.profile / self.name / stem, identity, monitor=monitor, mode=mode)
        ckpt.roots = tuple(code)
        self.trainings[stem] = ckpt
        return ckpt

    def elapsed(self) -> float:
        """Seconds since this run started."""
        return time.perf_counter() - self.started

    def figure_path(self, stem: str, suffix: str) -> Path:
        """Where this run writes the file ``stem`` beside its figures: ``<name>_<stem><suffix>``."""
        if not isinstance(stem, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", stem):
            raise ValueError(f"a figure's stem is letters, digits, _ . - (a file name), found {stem!r}")
        return self.figures_dir / f"{self.figure_prefix}_{stem}{suffix}"

    @property
    def reproduce(self) -> str:
        """The command that reproduces this run."""
        return f"python -m vae_utils.run notebooks/{self.name}.ipynb --profile {self.profile}" + "".join(
            f" --sweep {name}={value}" for name, value in self.variant.items()
        )

    def save_figure(self, fig, stem: str) -> None:
        """Save ``fig`` as ``<figures_dir>/<name>_<stem>.png`` (written whole, then renamed) and display
        that file, its name in the output's metadata (``FIGURE_KEY``). Introduced in notebook 01."""
        path = self.figure_path(stem, ".png")
        write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
        plt.close(fig)  # shown once, as the file below, not a second time by an inline backend
        show_png(path.read_bytes(), path.name)

    def save_metrics(self, metrics: dict) -> Path:
        """Save ``metrics`` with seed, profile, wall time and machine as ``results/<name>.json`` (a sweep's
        run: ``results/<name>/<tag>.json``); returns the published path. Introduced in notebook 01."""
        _check_finite(metrics)
        metrics = json.loads(json.dumps(metrics, default=_plain))  # NumPy values -> plain numbers
        payload = {
            "notebook": self.name,
            "profile": self.profile,
            "seed": self.seed,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "wall_time_s": round(self.elapsed(), 1),
            "metrics": metrics,
            **({"trainings": {k: ck.record() for k, ck in self.trainings.items()}} if self.trainings else {}),
            **environment(),
            "reproduce": self.reproduce,
        }
        if self.tag:
            payload["variant"] = self.variant
        relative = Path("results") / (f"{self.name}/{self.tag}.json" if self.tag else f"{self.name}.json")
        write_json((self.staging or self.base) / relative, payload)
        return self.base / relative  # where it is published (at once, or by the runner when staged)
