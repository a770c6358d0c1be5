"""Argument checks shared by the package: each raises a ValueError naming what was expected and found."""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["finite_number", "positive_int", "process_alive"]


def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer >= ``minimum`` (booleans refused), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, found {value!r}")
    return int(value)


def finite_number(name: str, value, minimum: float | None = None) -> float:
    """``value`` as a ``float`` if it is a finite real number (>= ``minimum`` if given), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number, found {value!r}")
    value = float(value)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}, found {value!r}")
    return value


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's counts): who may clear what a killed run left."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
