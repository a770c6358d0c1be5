"""Face datasets prepared from their canonical sources: LFW and Olivetti (scikit-learn), Frey (Roweis's page).

Introduced in ``notebooks/04_vae_faces.ipynb``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DataError, Dataset, _loadmat
from .files import _downloaded


def _intensities_to_uint8(images: np.ndarray, what: str) -> np.ndarray:
    """``round(255 * value)`` as uint8, for float intensities in [0, 1] (scikit-learn's scale)."""
    images = np.asarray(images, dtype=np.float32)
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if low < -1e-3 or high > 1 + 1e-3 or np.isnan(images).any():
        raise DataError(
            f"{what}: expected float intensities in [0, 1], found values in [{low:.4g}, {high:.4g}]"
        )
    scaled = np.rint(images * np.float32(255))
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def _build_lfw(dataset: Dataset, cache: Path) -> dict[str, np.ndarray]:
    """LFW from ``sklearn.datasets.fetch_lfw_people``, prepared as in the mirror.

    All 13,233 images (``min_faces_per_person=0``), cropped and resized by 0.5 as scikit-learn does, grey
    levels ``round(255 * value)`` as uint8; ``y`` is scikit-learn's ``target`` (the person's index in
    ``names``, its ``target_names``). scikit-learn downloads and verifies its own files under
    ``<cache>/scikit_learn_data`` (the funneled images, so pixels differ slightly from the mirror's copy,
    built from the deep-funneled ones).
    """
    import sklearn.datasets

    bunch = sklearn.datasets.fetch_lfw_people(
        min_faces_per_person=0, resize=0.5, data_home=cache / "scikit_learn_data"
    )
    return {
        "x": _intensities_to_uint8(bunch.images, "fetch_lfw_people images"),
        "y": np.asarray(bunch.target).astype(np.int32),
        "names": np.asarray(bunch.target_names, dtype=str),
    }


def _build_olivetti(dataset: Dataset, cache: Path) -> dict[str, np.ndarray]:
    """The Olivetti faces from ``sklearn.datasets.fetch_olivetti_faces`` (unshuffled), as uint8.

    ``x`` is ``round(255 * images)``, ``y`` the person id 0-39.
    """
    import sklearn.datasets

    bunch = sklearn.datasets.fetch_olivetti_faces(data_home=cache / "scikit_learn_data")
    return {
        "x": _intensities_to_uint8(bunch.images, "fetch_olivetti_faces images"),
        "y": np.asarray(bunch.target).astype(np.uint8),
    }


def _frey_from_mat(path: Path) -> np.ndarray:
    """The faces of Roweis's ``frey_rawface.mat``: ``ff`` (560, N) uint8, one 28x20 face per column."""
    contents = _loadmat(path, "frey_rawface.mat")
    if "ff" not in contents:
        raise DataError(
            f"{path} is not frey_rawface.mat: expected the array 'ff' (560 x N uint8, one 28x20 face per "
            f"column), found {sorted(contents)}"
        )
    ff = contents["ff"]
    if ff.dtype != np.uint8 or ff.ndim != 2 or ff.shape[0] != 28 * 20:
        raise DataError(
            f"{path}: 'ff' should be uint8 of shape (560, N), each column a 28x20 face in row-major order; "
            f"found {ff.dtype} of shape {ff.shape}"
        )
    return np.ascontiguousarray(ff.T.reshape(-1, 28, 20))


def _build_frey(dataset: Dataset, cache: Path) -> dict[str, np.ndarray]:
    """Brendan Frey's faces from Roweis's ``frey_rawface.mat``.

    No checksum of that file is published, so it cannot be verified: its structure is checked instead
    (``ff`` uint8 of shape (560, 1965)). The raw file is read from a temporary file and not kept.
    """
    (source,) = dataset.sources
    with _downloaded(source.url, cache, source.filename, source.md5, "md5") as raw:
        return {"x": _frey_from_mat(raw)}
