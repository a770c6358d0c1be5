"""Execute the notebooks with papermill: ``python -m vae_utils.run [NOTEBOOK ...] --profile smoke|full``.

* ``smoke`` (the default) sets the papermill parameter ``SMOKE=True`` (a small subset, few epochs, the
  same code paths) and writes the executed copies, metrics and figures under ``build/smoke/``, outside git.
* ``full`` runs each notebook with its own settings, those that reproduce the published figures and
  numbers, and publishes the executed notebook (execution counts and papermill's metadata stripped), its
  metrics in ``results/`` and its figures in ``figures/``.
* ``--sweep NAME=V1,V2`` (repeatable, NAME a parameter of the notebook) runs the notebook once per
  combination of the values: ``--sweep N_LABELLED=100,1000 --sweep SEED=0,1,2`` makes six runs. Each run
  saves its own metrics file, ``results/<notebook>/<tag>.json``, and executed copy, ``build/sweep/``.
* ``--output-dir DIR`` puts the executed notebooks, metrics and figures under DIR instead.

A run publishes nothing unless it finished: the notebook writes its metrics and figures into a staging
folder, and the runner moves them into place together with the executed notebook only once the last cell
has run. A failed or interrupted run (Ctrl-C, SIGTERM) leaves the published files as they were.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import papermill

from . import home
from .home import SMOKE_DIR, STAGING_ENV, VARIANT_ENV, output_base, variant_tag
from .publish import (
    check_figures_shown,
    check_profiles,
    clear_leftovers,
    publish,
    strip_executed,
)

ROOT = home.ROOT  # the checkout, or the working directory of an installed package

NOTEBOOKS = ROOT / "notebooks"
SWEEP_DIR = ROOT / "build" / "sweep"
STAGING_DIR = ROOT / "build" / "staging"
#: Every kernel draws inline, whatever the caller's ``MPLBACKEND`` (``Agg`` would show no figure).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: Paths the kernel reads; made absolute before it starts, since it runs in ``notebooks/``.
PATH_ENVS = ("VAE_DATA_DIR", "VAE_DATA_MIRROR", "VAE_OUTPUT_DIR")


def parse_sweep(specs: list[str], parameters=None) -> list[dict]:
    """``["N=100,600", "SEED=0,1"]`` -> every combination as a dict of parameters, in order; values parse as
    Python literals where they can. Refused: ``SMOKE``, two values that parse alike (``0``, ``00``) and a
    name not in ``parameters`` (the notebook's)."""
    names, value_lists = [], []
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.isidentifier() or not values:
            raise ValueError(
                f"a sweep is NAME=V1,V2,... with NAME a parameter of the notebook, found {spec!r}"
            )
        if name in names:
            raise ValueError(f"parameter {name} is swept twice: give all its values in one --sweep")
        if name == "SMOKE":
            raise ValueError("SMOKE is set by the profile (--profile smoke or full), not by a sweep")
        if parameters is not None and name not in parameters:
            raise ValueError(
                f"{name} is not a parameter of the notebook: expected one of {sorted(parameters)}"
            )
        items = [v.strip() for v in values.split(",")]
        if any(not v for v in items):
            raise ValueError(f"a sweep value is empty in {spec!r}: expected NAME=V1,V2,... with none empty")
        if len(set(items)) != len(items):
            raise ValueError(f"a sweep value is repeated in {spec!r}: each run would overwrite another")
        values = [_literal(v) for v in items]
        for i, j in itertools.combinations(range(len(values)), 2):
            if values[i] == values[j]:
                raise ValueError(
                    f"sweep values {items[i]!r} and {items[j]!r} of {name} name the same run "
                    f"({name}={values[i]!r}): give each value once"
                )
        names.append(name)
        value_lists.append(values)
    return [dict(zip(names, combo)) for combo in itertools.product(*value_lists)]


def notebook_parameters(notebook: Path) -> set[str]:
    """The names defined in the notebook's cell tagged ``parameters``."""
    return set(papermill.inspect_notebook(str(notebook)))


def _literal(text: str):
    """A sweep value as the notebook will see it: an integer (``007`` -> 7, ``0x10`` -> 16), a float
    (``1e3``), another Python literal (``True``), else the string itself."""
    for parse in (int, lambda t: int(t, 0), float):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebooks() -> list[Path]:
    """The notebooks in reading order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@contextmanager
def _kernel_environment(values: dict):
    """Set environment variables for the kernel (it inherits this process's environment), then restore."""
    saved = {name: os.environ.get(name) for name in values}
    for name in PATH_ENVS:
        if os.environ.get(name):
            saved.setdefault(name, os.environ[name])
            values.setdefault(name, str(Path(os.environ[name]).resolve()))
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _terminate_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt, so that a killed run cleans up like Ctrl-C."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _target(notebook: Path, profile: str, output_dir: Path | None, tag: str | None) -> Path:
    """Where the executed copy goes: a sweep's run and a smoke run under ``build/``, a full run over the
    notebook itself, each in ``output_dir`` when one is given."""
    if tag is not None:
        return Path(output_dir or SWEEP_DIR) / f"{notebook.stem}__{tag}.ipynb"
    if profile == "smoke":
        return Path(output_dir or SMOKE_DIR / "notebooks") / notebook.name
    return Path(output_dir) / notebook.name if output_dir else notebook


def _set_kernel_defaults() -> None:
    """Settings the kernel inherits, unless already set."""
    # keep TensorFlow's C++ INFO and WARNING lines out of outputs
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # on a GPU, take memory as needed rather than most of it up front (JAX's and TensorFlow's default)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def _run_then_publish(notebook: Path, tmp: Path, target: Path, staging: Path, profile: str, parameters):
    """Execute ``notebook`` into ``tmp``; then, if every cell ran and showed its figures, publish ``tmp`` as
    ``target`` with the metrics and figures staged in ``staging``."""
    papermill.execute_notebook(
        str(notebook),
        str(tmp),
        parameters=parameters or None,
        cwd=str(notebook.parent),
        kernel_name="python3",
        progress_bar=sys.stderr.isatty(),
        log_output=not sys.stderr.isatty(),
    )
    if profile == "full":
        strip_executed(tmp)
    check_figures_shown(tmp, [p.name for p in (staging / "figures").glob("*.png")])
    check_profiles(staging, output_base(profile), profile)
    publish(staging, output_base(profile), tmp, target, full=profile == "full")


def execute(
    notebook: Path,
    profile: str,
    output_dir: Path | None = None,
    parameters: dict | None = None,
    tag: str | None = None,
) -> Path:
    """Run one notebook in ``profile``; returns the executed copy (``<output_dir>/<notebook>__<tag>.ipynb``
    for one run of a sweep, which never rewrites the notebook). Metrics and figures publish with it only if
    every cell ran."""
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    if profile not in ("smoke", "full"):
        raise ValueError(f"profile must be 'smoke' or 'full', found {profile!r}")
    parameters = {**(parameters or {}), **({"SMOKE": True} if profile == "smoke" else {})}
    _set_kernel_defaults()
    started = time.perf_counter()
    label = f"{notebook.name}" + (f" [{tag}]" if tag else "")
    print(f"[{profile}] {label} ...", flush=True)
    target = _target(notebook, profile, output_dir, tag)
    target.parent.mkdir(parents=True, exist_ok=True)
    STAGING_DIR.mkdir(parents=True, exist_ok=True)
    clear_leftovers(STAGING_DIR, target.parent)
    pid = os.getpid()  # in the temporary names, so that the next run can tell a dead run's leftovers
    staging = Path(tempfile.mkdtemp(prefix=f"{notebook.stem}.{pid}.", dir=STAGING_DIR))
    variant = {k: v for k, v in parameters.items() if k != "SMOKE"} if tag is not None else {}
    env = {STAGING_ENV: str(staging), VARIANT_ENV: json.dumps(variant), "MPLBACKEND": INLINE_BACKEND}
    # Execute into a temporary file beside the target: a failed run leaves the target untouched.
    fd, tmp = tempfile.mkstemp(prefix=f".{notebook.stem}.{pid}.", suffix=".ipynb", dir=target.parent)
    os.close(fd)
    try:
        with _terminate_as_interrupt(), _kernel_environment(env):
            _run_then_publish(notebook, Path(tmp), target, staging, profile, parameters)
    finally:
        Path(tmp).unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    print(f"[{profile}] {label}: {time.perf_counter() - started:.1f} s -> {target}", flush=True)
    return target


def _parser() -> argparse.ArgumentParser:
    """The command line of ``python -m vae_utils.run``."""
    parser = argparse.ArgumentParser(prog="python -m vae_utils.run", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all, in order)")
    parser.add_argument(
        "--profile",
        choices=("smoke", "full"),
        default="smoke",
        help="smoke (default): a quick pass, outputs under build/smoke/; full: the published runs",
    )
    parser.add_argument("--output-dir", type=Path, help="where executed notebooks, metrics and figures go")
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="run once per value (repeat for a grid of combinations)",
    )
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    paths = args.notebooks or notebooks()
    if not paths:
        parser.error(f"no notebooks found in {NOTEBOOKS}")
    plans = []
    try:
        for path in paths:
            if not Path(path).is_file():
                raise ValueError(f"no notebook at {path}")
            names = notebook_parameters(path) if args.sweep else None
            variants = parse_sweep(args.sweep, names) if args.sweep else [None]
            plans += [(path, v, variant_tag(v) if v else None) for v in variants]
    except ValueError as exc:
        parser.error(str(exc))
    if args.output_dir is not None:  # everything a run writes goes there, not only the notebooks
        try:  # before anything runs or is staged: a folder this process can write in
            args.output_dir.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=args.output_dir).close()
        except OSError as exc:
            parser.error(f"--output-dir {args.output_dir}: expected a writable directory, found {exc}")
        os.environ["VAE_OUTPUT_DIR"] = str(args.output_dir.resolve())
    for path, variant, tag in plans:
        execute(path, args.profile, args.output_dir, parameters=variant, tag=tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
