"""SVHN from its canonical ``train_32x32.mat`` and ``test_32x32.mat``, kept in the cache as published.

Introduced in ``notebooks/02_conv_vae_svhn.ipynb``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from .base import DataError, Dataset, Source, _loadmat
from .files import _download, _from_mirror, _offline, _places, _verify, _write_atomically, data_dir


def read_svhn_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN file in the canonical layout (``X`` (32, 32, 3, N), ``y`` 1..10 with 10 for 0) as
    ``x`` uint8 (N, 32, 32, 3) and ``y`` int64 digits 0-9; anything else is a ``DataError``.
    Introduced in notebook 02."""
    path = Path(path)
    contents = _loadmat(path, "SVHN file (train_32x32.mat or test_32x32.mat)")
    missing = [key for key in ("X", "y") if key not in contents]
    if missing:
        raise DataError(
            f"{path} is not an SVHN file: it lacks {missing}; expected the arrays ['X', 'y'], "
            f"found {sorted(contents)}"
        )
    images, labels = contents["X"], contents["y"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataError(
            f"{path}: X should be uint8 of shape (32, 32, 3, N), found {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 2 or labels.shape[1] != 1:
        raise DataError(f"{path}: y should have shape (N, 1), found {labels.shape}")
    if labels.shape[0] != images.shape[3]:
        raise DataError(
            f"{path}: X holds {images.shape[3]} images but y holds {labels.shape[0]} labels; "
            "expected one label per image"
        )
    labels = labels.reshape(-1)
    if not np.issubdtype(labels.dtype, np.number):
        raise DataError(f"{path}: y should hold numeric labels 1..10, found dtype {labels.dtype}")
    wrong = (labels < 1) | (labels > 10) | (labels != np.round(labels))
    if wrong.any():
        raise DataError(
            f"{path}: y should hold labels 1..10 (10 meaning the digit 0), found {int(wrong.sum())} "
            f"labels outside them: {np.unique(labels[wrong])[:10].tolist()}"
        )
    return np.ascontiguousarray(images.transpose(3, 0, 1, 2)), labels.astype(np.int64) % 10


def write_svhn_mat(path: str | os.PathLike, x: np.ndarray, y: np.ndarray) -> Path:
    """Write uint8 images (N, 32, 32, 3) and digits 0-9 as an SVHN file in the canonical layout (written
    whole, then renamed); returns the path. The smoke run of notebook 02 writes its stand-in with it."""
    path = Path(path)
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ValueError(f"x should be uint8 of shape (N, 32, 32, 3), found {x.dtype} of shape {x.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y should hold {len(x)} integer digits, found {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"y should hold digits 0-9, found values in [{y.min()}, {y.max()}]")
    arrays = {
        "X": np.ascontiguousarray(x.transpose(1, 2, 3, 0)),
        "y": np.where(y == 0, 10, y).astype(np.uint8).reshape(-1, 1),
    }
    _write_atomically(path, lambda f: scipy.io.savemat(f, arrays))
    return path


def _find_source(source: Source) -> Path | None:
    """A canonical file from the cache (verified by its md5) or the mirror (verified by SHA256SUMS)."""
    cached = data_dir() / source.filename
    if cached.is_file():
        if source.md5 is not None:
            _verify(cached, source.md5, "cached file", algorithm="md5")
        return cached
    return _from_mirror(source.filename)


def _load_svhn(dataset: Dataset) -> dict[str, np.ndarray]:
    """SVHN (cropped digits) from the canonical ``train_32x32.mat`` and ``test_32x32.mat``.

    Each file is looked for in the cache (verified by its published md5), then the mirror (verified by
    its SHA256SUMS), then downloaded to the cache (kept only if its md5 matched). Labels are digits 0-9.
    """
    found = {source: _find_source(source) for source in dataset.sources}
    missing = [source for source, path in found.items() if path is None]
    if missing and _offline():
        lines = "; ".join(
            f"{source.filename} (md5 {source.md5}) was not found in {_places(source.filename)}"
            for source in missing
        )
        urls = ", ".join(source.url for source in missing)
        raise DataError(
            f"dataset {dataset.name!r}: {lines}, and VAE_OFFLINE=1 forbids downloading from {urls}. Put "
            "the canonical files in the cache or in VAE_DATA_MIRROR, or unset VAE_OFFLINE."
        )
    for source in missing:
        found[source] = data_dir() / source.filename
        _download(source.url, found[source], source.md5, algorithm="md5")
    train, test = dataset.sources
    x_train, y_train = read_svhn_mat(found[train])
    x_test, y_test = read_svhn_mat(found[test])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
