"""Where runs read and write: the repository when the package is used from a checkout of it, otherwise the
working directory (an installed package, as on Colab, keeps ``data/``, ``results/``, ``figures/`` and
``build/`` out of site-packages); and the contract between the runner (``run``) and a notebook's ``Run``
(``repro``): the environment variables it passes and where each profile's outputs go."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["ROOT", "STAGING_ENV", "VARIANT_ENV", "checkpoints_root", "output_base", "root", "variant_tag"]


def root() -> Path:
    """The repository holding this package when it is a checkout (``pyproject.toml`` and ``notebooks/``
    beside it), else the current working directory."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd().resolve()


#: Fixed when the package is first imported, so that a notebook changing directory does not move it.
ROOT = root()
SMOKE_DIR = ROOT / "build" / "smoke"

#: Environment variables the runner passes to a notebook's kernel (``repro.Run`` reads them).
STAGING_ENV, VARIANT_ENV = "VAE_STAGING_DIR", "VAE_RUN_VARIANT"


def output_base(profile: str) -> Path:
    """Where a run's ``results/`` and ``figures/`` go: ``$VAE_OUTPUT_DIR``, else the repository (full)
    or ``build/smoke/`` (smoke)."""
    custom = os.environ.get("VAE_OUTPUT_DIR")
    if custom:
        return Path(custom)
    return ROOT if profile == "full" else SMOKE_DIR


def checkpoints_root() -> Path:
    """Where trainings keep their checkpoints: ``$VAE_OUTPUT_DIR/checkpoints``, else ``build/checkpoints``
    (outside git)."""
    custom = os.environ.get("VAE_OUTPUT_DIR")
    return Path(custom) / "checkpoints" if custom else ROOT / "build" / "checkpoints"


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
