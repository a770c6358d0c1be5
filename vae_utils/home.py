"""Where runs read and write: the repository when the package is used from a checkout of it, otherwise the
working directory (an installed package, as on Colab, keeps ``data/``, ``results/``, ``figures/`` and
``build/`` out of site-packages)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ROOT", "root"]


def root() -> Path:
    """The repository holding this package when it is a checkout (``pyproject.toml`` and ``notebooks/``
    beside it), else the current working directory."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd().resolve()


#: Fixed when the package is first imported, so that a notebook changing directory does not move it.
ROOT = root()
