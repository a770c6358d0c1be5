"""Paths through a latent space: linear and spherical interpolation, 2-D grids, traversals.

NumPy in, NumPy (float32) out, one code per row, ready for a decoder. Introduced in
``notebooks/03_cifar_horse_car_interpolation.ipynb``, where a horse is decoded into a car.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from .checks import positive_int

__all__ = ["bilinear", "lerp", "prior_quantiles", "slerp", "traverse"]


def _code(z, name):
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 1:
        raise ValueError(f"{name} must be one latent code of shape (d,), found shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} holds NaN or infinite values: expected a finite latent code")
    return z


def _codes(names, codes):
    codes = [_code(z, name) for name, z in zip(names, codes)]
    shapes = {z.shape for z in codes}
    if len(shapes) > 1:
        found = ", ".join(f"{name} {z.shape}" for name, z in zip(names, codes))
        raise ValueError(f"the codes must have the same dimension, found {found}")
    return codes


def _steps(n, name="n"):
    return np.linspace(0.0, 1.0, positive_int(name, n, minimum=2))  # the path includes both ends


def lerp(z0, z1, n):
    """``n`` codes evenly spaced on the segment from ``z0`` to ``z1``, both ends included: ``(n, d)``.

    ``z(t) = (1 - t) z0 + t z1`` for ``t = 0, 1/(n-1), ..., 1``. Written out in notebook 03.
    """
    z0, z1 = _codes(("z0", "z1"), (z0, z1))
    t = _steps(n)[:, None]
    return ((1.0 - t) * z0 + t * z1).astype(np.float32)


def slerp(z0, z1, n, tol=1e-6):
    """``n`` codes on the spherical path from ``z0`` to ``z1`` (Shoemake, 1985), both ends included.
    ``lerp`` when they are (anti)parallel within ``tol`` radians or one is zero.
    Written out in notebook 03.
    """
    z0, z1 = _codes(("z0", "z1"), (z0, z1))
    t = _steps(n)[:, None]
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 == 0.0 or n1 == 0.0:
        return lerp(z0, z1, n)
    u0, u1 = z0 / n0, z1 / n1
    angle = 2.0 * np.arctan2(np.linalg.norm(u0 - u1), np.linalg.norm(u0 + u1))  # accurate near 0 and pi
    if angle < tol or np.pi - angle < tol:
        return lerp(z0, z1, n)
    path = (np.sin((1.0 - t) * angle) * z0 + np.sin(t * angle) * z1) / np.sin(angle)
    path[0], path[-1] = z0, z1
    return path.astype(np.float32)


def bilinear(z_top_left, z_top_right, z_bottom_left, z_bottom_right, n_rows, n_cols):
    """A ``(n_rows, n_cols, d)`` grid of codes whose four corners are the four given codes.
    ``z(s, t) = (1-s)(1-t) z_tl + (1-s) t z_tr + s (1-t) z_bl + s t z_br``, ``s`` down the rows and
    ``t`` across, each from 0 to 1. Introduced in notebook 03.
    """
    names = ("z_top_left", "z_top_right", "z_bottom_left", "z_bottom_right")
    tl, tr, bl, br = _codes(names, (z_top_left, z_top_right, z_bottom_left, z_bottom_right))
    s = _steps(n_rows, "n_rows")[:, None, None]
    t = _steps(n_cols, "n_cols")[None, :, None]
    grid = (1 - s) * (1 - t) * tl + (1 - s) * t * tr + s * (1 - t) * bl + s * t * br
    return grid.astype(np.float32)


def traverse(z, dim, values):
    """Copies of ``z``, coordinate ``dim`` set to each value in turn. Introduced in notebook 02."""
    z = _code(z, "z")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be a 1-D sequence of numbers, found shape {values.shape}")
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 0 <= dim < len(z):
        raise ValueError(
            f"dim must be an integer in [0, {len(z)}) for codes of dimension {len(z)}, found {dim!r}"
        )
    codes = np.repeat(z[None], len(values), axis=0)
    codes[:, dim] = values
    return codes.astype(np.float32)


def prior_quantiles(n):
    """``n`` quantiles of N(0, 1) at probabilities ``(i + 1/2) / n``: each stands for the same prior mass.
    The axes of a 2-D manifold (Kingma & Welling, Fig. 4). Introduced in notebook 01.
    """
    n = positive_int("n", n)
    return norm.ppf(np.linspace(0.5 / n, 1 - 0.5 / n, n))
