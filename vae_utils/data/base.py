"""What a dataset is (its registry entry and the arrays it must hold) and the checks of files and arrays.

Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import numpy as np
import scipy.io


class DataError(RuntimeError):
    """A dataset could not be found, verified or read."""


@dataclass(frozen=True)
class ArraySpec:
    """The dtype and shape an array of a dataset must have. Introduced in notebook 01."""

    # ints (an exact length) or names: dimensions that share a name agree on the length, e.g. x_train
    # ("n_train", 32, 32, 3) and y_train ("n_train",)
    shape: tuple[int | str, ...]
    dtype: str  # a NumPy dtype name, "int" for any integer dtype, "str" for Unicode strings

    def __str__(self) -> str:
        dims = ", ".join(map(str, self.shape)) + ("," if len(self.shape) == 1 else "")
        return f"{self.dtype} of shape ({dims})"


@dataclass(frozen=True)
class Source:
    """A canonical file a dataset is built from: its file name, where it is published and its md5.

    ``md5`` is None where no checksum is published (Frey faces): the file's structure is checked instead.
    """

    filename: str
    url: str
    md5: str | None


@dataclass(frozen=True)
class Dataset:
    """A registry entry: where a dataset comes from and what ``load`` returns for it (the fields below).
    Introduced in notebook 01."""

    name: str
    # the prepared .npz, its name in the cache and in the mirror (None for SVHN, cached as published)
    filename: str | None
    keys: tuple[str, ...]  # the arrays it must contain
    # the canonical source of that same file and its checksum there (MNIST); derived datasets have neither
    url: str | None = None
    sha256: str | None = None
    _: KW_ONLY
    # the dtype and shape of every array load returns, checked on every load (and, for a derived
    # dataset, the structural check of its prepared file in the cache)
    arrays: Mapping[str, ArraySpec] = field(default_factory=dict, hash=False)
    sources: tuple[Source, ...] = ()  # the canonical files the dataset is built from
    # builds a derived dataset's arrays from its verified sources when neither the cache nor the mirror
    # holds the prepared file (never offline)
    build: Callable[[Dataset, Path], dict[str, np.ndarray]] | None = None
    # replaces the prepared-file lookup, for datasets that take options or are cached as raw files
    loader: Callable[..., dict[str, np.ndarray]] | None = None
    origin: str = ""  # where the data comes from, in words, for error messages


# --- reading and checking arrays ------------------------------------------------------------------


def _read_npz(path: Path, dataset: Dataset) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path} is not a readable .npz file for dataset {dataset.name!r} ({exc}); "
            "it is truncated or corrupted: delete it so that it is fetched again"
        ) from exc
    missing = [key for key in dataset.keys if key not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks the arrays {missing} of dataset {dataset.name!r}: expected keys "
            f"{list(dataset.keys)}, found {sorted(arrays)}"
        )
    return arrays


def _dtype_matches(dtype: np.dtype, expected: str) -> bool:
    if expected == "int":
        return np.issubdtype(dtype, np.integer)
    if expected == "str":
        return dtype.kind == "U"
    return dtype == np.dtype(expected)


def _check_arrays(arrays: Mapping[str, np.ndarray], specs: Mapping[str, ArraySpec], what: str) -> None:
    """Raise a DataError naming ``what`` unless ``arrays`` hold every array of ``specs`` as specified."""
    lengths: dict[str, tuple[int, str]] = {}
    for key, spec in specs.items():
        if key not in arrays:
            raise DataError(
                f"{what} lacks the array {key!r}: expected keys {list(specs)}, found {sorted(arrays)}"
            )
        array = np.asarray(arrays[key])
        fits = array.ndim == len(spec.shape) and all(
            found == wanted for found, wanted in zip(array.shape, spec.shape) if isinstance(wanted, int)
        )
        if not (fits and _dtype_matches(array.dtype, spec.dtype)):
            raise DataError(
                f"{what}: array {key!r} should be {spec}, found {array.dtype} of shape {array.shape}"
            )
        for found, wanted in zip(array.shape, spec.shape):
            if isinstance(wanted, str):
                first_length, first_key = lengths.setdefault(wanted, (found, key))
                if found != first_length:
                    raise DataError(
                        f"{what}: arrays {first_key!r} and {key!r} should have the same length {wanted}, "
                        f"found {first_length} and {found}"
                    )


def _loadmat(path: Path, what: str) -> dict[str, np.ndarray]:
    """The arrays of a MATLAB v5 file, or a DataError saying that ``path`` is not one."""
    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError as exc:  # scipy.io reads MATLAB v4-v7.2; v7.3 files are HDF5
        raise DataError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy.io cannot read: expected a MATLAB v5 .mat "
            f"file like the canonical {what} ({exc})"
        ) from exc
    except (ValueError, TypeError, IndexError, OSError, EOFError, scipy.io.matlab.MatReadError) as exc:
        raise DataError(
            f"{path} is not a readable MATLAB .mat file ({exc}): expected the canonical {what}"
        ) from exc
    return {key: value for key, value in contents.items() if not key.startswith("__")}
