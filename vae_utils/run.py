"""Execute the notebooks with papermill: ``python -m vae_utils.run [NOTEBOOK ...] --profile smoke|full``.

* ``full`` (the default) runs each notebook with its own settings, those that reproduce the published
  figures and numbers, and writes the executed notebook back in place (execution counts and
  papermill's metadata stripped), so that the repository shows the outputs of the last full run.
  Metrics go to ``results/``, figures to ``figures/``.
* ``smoke`` sets the papermill parameter ``SMOKE=True`` (a small subset, few epochs, the same code
  paths) and writes the executed copies, metrics and figures under ``build/smoke/``, outside git.
* ``--sweep NAME=V1,V2`` (repeatable) runs the notebook once per combination of the values, passing
  them as papermill parameters: ``--sweep N_LABELLED=100,1000 --sweep SEED=0,1,2`` makes six runs. The
  executed copies go to ``build/sweep/`` (``<notebook>__<tag>.ipynb``, the tag as ``variant_tag`` writes
  it); the notebook saves one metrics file per run (``repro.Run(..., variant=...)``).

Each notebook's wall time is printed when it ends.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS = ROOT / "notebooks"
SMOKE_DIR = ROOT / "build" / "smoke"
SWEEP_DIR = ROOT / "build" / "sweep"


def variant_tag(variant: dict) -> str:
    """``{"N_LABELLED": 100, "SEED": 0}`` -> ``"N_LABELLED=100_SEED=0"``: a file-name-safe run label."""
    parts = []
    for name, value in variant.items():
        text = f"{name}={value}"
        if not re.fullmatch(r"[A-Za-z0-9_.=-]+", text):
            raise ValueError(
                f"a variant must be names and plain values (letters, digits, _ . -), found {text!r}"
            )
        parts.append(text)
    return "_".join(parts)


def parse_sweep(specs: list[str]) -> list[dict]:
    """``["N=100,600", "SEED=0,1"]`` -> every combination as a dict of parameters, in order.

    Values are Python literals where they parse as one (``100``, ``0.5``, ``True``), strings otherwise.
    """
    names, value_lists = [], []
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.isidentifier() or not values:
            raise ValueError(
                f"a sweep is NAME=V1,V2,... with NAME a parameter of the notebook, found {spec!r}"
            )
        if name in names:
            raise ValueError(f"parameter {name} is swept twice: give all its values in one --sweep")
        names.append(name)
        value_lists.append([_literal(v.strip()) for v in values.split(",")])
    return [dict(zip(names, combo)) for combo in itertools.product(*value_lists)]


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebooks() -> list[Path]:
    """The notebooks in reading order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _strip(path: Path) -> None:
    """Drop execution counts and papermill's per-run metadata, keeping the outputs."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.execution_count = None
            for output in cell.outputs:
                if "execution_count" in output:
                    output.execution_count = None
    nbformat.write(nb, path)


def execute(
    notebook: Path,
    profile: str,
    output_dir: Path | None = None,
    parameters: dict | None = None,
    tag: str | None = None,
) -> Path:
    """Run one notebook in ``profile`` and return the path of the executed copy.

    With a ``tag`` (one run of a sweep) the copy is ``<output_dir>/<notebook>__<tag>.ipynb`` and the
    notebook itself is never rewritten, whatever the profile.
    """
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    if profile not in ("smoke", "full"):
        raise ValueError(f"profile must be 'smoke' or 'full', found {profile!r}")
    parameters = dict(parameters or {})
    if profile == "smoke":
        parameters["SMOKE"] = True
    # The kernel inherits this environment: keep TensorFlow's C++ INFO and WARNING lines out of outputs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    label = f"{notebook.name}" + (f" [{tag}]" if tag else "")
    print(f"[{profile}] {label} ...", flush=True)
    if tag is not None:
        output_dir = Path(output_dir or SWEEP_DIR)
        output_dir.mkdir(parents=True, exist_ok=True)
        target = output_dir / f"{notebook.stem}__{tag}.ipynb"
    elif profile == "smoke":
        output_dir = Path(output_dir or SMOKE_DIR / "notebooks")
        output_dir.mkdir(parents=True, exist_ok=True)
        target = output_dir / notebook.name
    else:
        target = Path(output_dir) / notebook.name if output_dir else notebook
    # Execute into a temporary file beside the target: a failed run leaves the target untouched.
    fd, tmp = tempfile.mkstemp(prefix=f".{notebook.stem}.", suffix=".ipynb", dir=target.parent)
    os.close(fd)
    try:
        papermill.execute_notebook(
            str(notebook),
            tmp,
            parameters=parameters or None,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=sys.stderr.isatty(),
            log_output=not sys.stderr.isatty(),
        )
        if profile == "full":
            _strip(Path(tmp))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"[{profile}] {label}: {time.perf_counter() - started:.1f} s -> {target}", flush=True)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_utils.run", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all, in order)")
    parser.add_argument("--profile", choices=("smoke", "full"), default="full")
    parser.add_argument("--output-dir", type=Path, help="where executed copies go (default: see above)")
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="run once per value (repeat for a grid of combinations)",
    )
    args = parser.parse_args(argv)
    paths = args.notebooks or notebooks()
    if not paths:
        parser.error(f"no notebooks found in {NOTEBOOKS}")
    try:
        variants = parse_sweep(args.sweep) if args.sweep else [None]
        tags = [variant_tag(v) if v else None for v in variants]
    except ValueError as exc:
        parser.error(str(exc))
    for path in paths:
        for variant, tag in zip(variants, tags):
            execute(path, args.profile, args.output_dir, parameters=variant, tag=tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
