"""Publishing an executed notebook: its outputs cleaned, checked for what a reader must see, and put in
place with its metrics and figures as one transaction. Used by ``run``; see its docstring.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from .checks import process_alive

__all__ = [
    "FIGURE_KEY",
    "check_figures_shown",
    "check_profiles",
    "clear_leftovers",
    "drop_runtime_log",
    "merge_streams",
    "publish",
    "strip_executed",
]

#: The key of a figure output's metadata naming the saved file it shows (``repro.Run.save_figure``).
FIGURE_KEY = "vae_figure"


def strip_executed(path: Path) -> None:
    """Drop execution counts and papermill's per-run metadata, and merge each cell's consecutive streams
    into one output (one box per cell, not one per printed line), keeping the outputs."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:  # papermill gives every cell an empty list
            del cell.metadata["tags"]
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = drop_runtime_log(merge_streams(cell.outputs))
            for output in cell.outputs:
                if "execution_count" in output:
                    output.execution_count = None
    nbformat.write(nb, path)


#: What the C++ runtime (TensorFlow, XLA) writes to stderr before its logging is initialised, when no log
#: level applies yet (absl ignores TF_CPP_MIN_LOG_LEVEL there): the notice and the INFO lines that follow it.
RUNTIME_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)\n?",
    re.M,
)


def drop_runtime_log(outputs: list) -> list:
    """Remove the runtime's uninitialised-log notice and INFO lines from stderr outputs (warnings and
    errors stay), and the stderr outputs left empty."""
    kept = []
    for output in outputs:
        if output.output_type == "stream" and output.name == "stderr":
            output.text = RUNTIME_LOG.sub("", output.text)
            if not output.text.strip():
                continue
        kept.append(output)
    return kept


def merge_streams(outputs: list) -> list:
    """Join each run of consecutive outputs of the same stream (stdout, stderr) into one output."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.output_type == "stream"
            and previous is not None
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def check_figures_shown(notebook: Path, figures: list[str]) -> None:
    """Refuse an executed notebook that does not show each saved figure (by name) as an image."""
    shown = {
        output.get("metadata", {}).get(FIGURE_KEY)
        for cell in nbformat.read(notebook, as_version=4).cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    }
    missing = sorted(set(figures) - shown)
    if missing:
        raise RuntimeError(
            f"the run saved {missing} but its notebook shows no image of them (expected an image output "
            f"whose metadata {FIGURE_KEY!r} names each file, as repro.Run.save_figure displays it): "
            "a reader would see no figure, so nothing was published"
        )


def _stale_figures(base: Path, prefix: str, made: set[str]) -> list[Path]:
    """Published figures (and the files beside them, such as an explorer's export) of the run named
    ``prefix`` that this run did not make again; a file of another variant (whose name continues the prefix
    with ``NAME=value``) is never one of them."""
    stale = []
    for old in (base / "figures").glob(f"{glob.escape(prefix)}_*.*"):
        if old.name not in made and "=" not in old.name[len(prefix) + 1 :]:
            stale.append(old)
    return stale


def check_profiles(staging: Path, base: Path, profile: str) -> None:
    """Refuse staged results of another profile than the run's, and a results file replacing one of
    another profile (a smoke run's numbers never replace a full run's, nor the reverse)."""
    for staged in sorted((staging / "results").rglob("*.json")):
        made = json.loads(staged.read_text()).get("profile")
        if made != profile:
            raise RuntimeError(
                f"{staged.name}: results of profile {made!r} from a {profile} run (the notebook's SMOKE "
                "must follow the runner's --profile); nothing was published"
            )
        published = base / staged.relative_to(staging)
        if published.is_file():
            try:
                before = json.loads(published.read_text()).get("profile")
            except (json.JSONDecodeError, AttributeError):
                before = None
            if before is not None and before != profile:
                raise RuntimeError(
                    f"{published} holds a {before} run's results: publishing here would replace a "
                    f"{before} run's results with a {profile} run's; choose another --output-dir"
                )


def publish(staging: Path, base: Path, notebook_tmp: Path, target: Path, full: bool) -> None:
    """Publish the staged metrics and figures under ``base`` and the notebook at ``target`` as one
    transaction (copied beside, then renamed; restored if any step fails); a full run then removes the
    figures of its own variant that it did not make again.
    """
    staged = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != "run.json")
    moves = [(p, base / p.relative_to(staging)) for p in staged] + [(notebook_tmp, target)]
    stale = []
    manifest = staging / "run.json"
    if full and manifest.exists():
        prefix = json.loads(manifest.read_text())["figure_prefix"]  # "<name>" or "<name>__<tag>"
        stale = _stale_figures(base, prefix, {p.name for p in staged if p.parent.name == "figures"})
    ready, done = [], []  # (copy beside the destination, destination); (destination, its previous file)
    try:
        for source, destination in moves:
            destination.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".new", dir=destination.parent)
            os.close(fd)
            ready.append((Path(tmp), destination))
            shutil.copyfile(source, tmp)
            _readable(Path(tmp))
        for tmp, destination in ready:
            previous = None
            if destination.exists():
                previous = destination.with_name(f".{destination.name}.{os.getpid()}.previous")
                _keep(destination, previous)
            try:
                os.replace(tmp, destination)
            except BaseException:
                if previous is not None:
                    previous.unlink()
                raise
            done.append((destination, previous))
    except BaseException:
        for destination, previous in reversed(done):  # undo, newest first
            if previous is None:
                destination.unlink(missing_ok=True)
            else:
                os.replace(previous, destination)
        for tmp, _ in ready:
            tmp.unlink(missing_ok=True)
        raise
    for _, previous in done:
        if previous is not None:
            previous.unlink()
    for old in stale:
        old.unlink(missing_ok=True)


def _keep(path: Path, keep: Path) -> None:
    """A second name for ``path``'s file (a hard link, or a copy where links are not supported)."""
    keep.unlink(missing_ok=True)
    try:
        os.link(path, keep)
    except OSError:
        shutil.copy2(path, keep)


def _readable(path: Path) -> None:
    """Give a file made by mkstemp (0600) the permissions of any file this user writes."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def clear_leftovers(staging_root: Path, notebook_dir: Path) -> None:
    """Remove the staging folders and hidden executed notebooks of runs that were killed (their process
    is gone): ``<stem>.<pid>.<random>/`` and ``.<stem>.<pid>.<random>.ipynb``."""
    candidates = [(p, r"[^.]+\.(\d+)\.\w+") for p in staging_root.glob("*") if p.is_dir()]
    candidates += [(p, r"\.[^.]+\.(\d+)\.\w+\.ipynb") for p in notebook_dir.glob(".*.ipynb")]
    for path, pattern in candidates:
        found = re.fullmatch(pattern, path.name)
        if found and not process_alive(int(found.group(1))):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
