"""The registry of datasets and ``load``, which finds each in the cache, the mirror or its canonical source.

========== ==================================================================== =================
name       arrays                                                               options
========== ==================================================================== =================
mnist      x_train (60000, 28, 28) uint8, y_train, x_test (10000, 28, 28), y_test
svhn       x_train (N, 32, 32, 3) uint8, y_train int64 digits 0-9, x_test, y_test
cifar10    x_train (N, 32, 32, 3) uint8, y_train int64, train_index, x_test,    ``classes``
           y_test, test_index, label_names
lfw        x (13233, 62, 47) uint8, y (person), names (5749)
frey       x (1965, 28, 20) uint8
olivetti   x (400, 64, 64) uint8, y (person 0-39)
========== ==================================================================== =================

``load("cifar10", classes=("automobile", "horse"))`` keeps only those classes (canonical labels or
names; see ``_load_cifar10`` for where each request can be served from).

Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import numpy as np

from .base import ArraySpec, DataError, Dataset, Source, _check_arrays, _read_npz
from .cifar10 import _load_cifar10
from .faces import _build_frey, _build_lfw, _build_olivetti
from .files import _download, _from_mirror, _offline, _places, _verify, _write_npz, data_dir
from .svhn import _load_svhn


def _entry(name: str, filename: str | None, arrays: dict[str, ArraySpec], **fields) -> Dataset:
    return Dataset(name, filename, tuple(arrays), arrays=arrays, **fields)


_CIFAR10_ARRAYS = {
    "x_train": ArraySpec(("n_train", 32, 32, 3), "uint8"),
    "y_train": ArraySpec(("n_train",), "int"),
    "train_index": ArraySpec(("n_train",), "int"),
    "x_test": ArraySpec(("n_test", 32, 32, 3), "uint8"),
    "y_test": ArraySpec(("n_test",), "int"),
    "test_index": ArraySpec(("n_test",), "int"),
    "label_names": ArraySpec((10,), "str"),
}

DATASETS: dict[str, Dataset] = {
    "mnist": _entry(
        "mnist",
        "mnist.npz",
        {
            "x_train": ArraySpec((60000, 28, 28), "uint8"),
            "y_train": ArraySpec((60000,), "int"),
            "x_test": ArraySpec((10000, 28, 28), "uint8"),
            "y_test": ArraySpec((10000,), "int"),
        },
        url="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
        sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    ),
    "svhn": _entry(
        "svhn",
        None,
        {
            "x_train": ArraySpec(("n_train", 32, 32, 3), "uint8"),
            "y_train": ArraySpec(("n_train",), "int64"),
            "x_test": ArraySpec(("n_test", 32, 32, 3), "uint8"),
            "y_test": ArraySpec(("n_test",), "int64"),
        },
        sources=(
            Source(
                "train_32x32.mat",
                "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                "e26dedcc434d2e4c54c9b2d4a06d8373",
            ),
            Source(
                "test_32x32.mat",
                "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                "eb5a983be6a315427106f1b164d9cef3",
            ),
        ),
        loader=_load_svhn,
        origin="the canonical train_32x32.mat and test_32x32.mat",
    ),
    "cifar10": _entry(
        "cifar10",
        "cifar10.npz",
        _CIFAR10_ARRAYS,
        sources=(
            Source(
                "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a",
            ),
        ),
        loader=_load_cifar10,
        origin="the canonical cifar-10-python.tar.gz",
    ),
    "lfw": _entry(
        "lfw",
        "lfw_people.npz",
        {
            "x": ArraySpec((13233, 62, 47), "uint8"),
            "y": ArraySpec((13233,), "int32"),
            "names": ArraySpec((5749,), "str"),
        },
        build=_build_lfw,
        origin="sklearn.datasets.fetch_lfw_people(min_faces_per_person=0, resize=0.5)",
    ),
    "frey": _entry(
        "frey",
        "frey_faces.npz",
        {"x": ArraySpec((1965, 28, 20), "uint8")},
        sources=(Source("frey_rawface.mat", "https://cs.nyu.edu/~roweis/data/frey_rawface.mat", None),),
        build=_build_frey,
        origin="https://cs.nyu.edu/~roweis/data/frey_rawface.mat (no checksum is published)",
    ),
    "olivetti": _entry(
        "olivetti",
        "olivetti_faces.npz",
        {"x": ArraySpec((400, 64, 64), "uint8"), "y": ArraySpec((400,), "uint8")},
        build=_build_olivetti,
        origin="sklearn.datasets.fetch_olivetti_faces()",
    ),
}


def _load_prepared(dataset: Dataset) -> dict[str, np.ndarray]:
    """Cache -> mirror -> canonical source, for a dataset that is stored as one prepared ``.npz``."""
    cached = data_dir() / dataset.filename
    if cached.is_file():
        if dataset.sha256:
            # Only this module writes the cache, and only verified files: a mismatch means the file
            # was changed or damaged afterwards, which deserves an error rather than a silent refetch.
            _verify(cached, dataset.sha256, "cached file")
        arrays = _read_npz(cached, dataset)
        _check_arrays(arrays, dataset.arrays, f"cached file {cached} (delete it so that it is fetched again)")
        return arrays

    mirrored = _from_mirror(dataset.filename)
    if mirrored is not None:
        arrays = _read_npz(mirrored, dataset)
        _check_arrays(arrays, dataset.arrays, f"mirror file {mirrored}")
        return arrays

    if _offline():
        source = (
            f"downloading it from {dataset.url} (expected sha256 {dataset.sha256})"
            if dataset.build is None
            else f"building it from {dataset.origin}"
        )
        raise DataError(
            f"dataset {dataset.name!r}: {dataset.filename} was not found in {_places(dataset.filename)}, "
            f"and VAE_OFFLINE=1 forbids {source}. Set VAE_DATA_MIRROR to a folder holding it, or unset "
            "VAE_OFFLINE."
        )
    if dataset.build is None:
        _download(dataset.url, cached, dataset.sha256)
        arrays = _read_npz(cached, dataset)
        _check_arrays(arrays, dataset.arrays, f"downloaded file {cached}")
        return arrays
    arrays = dataset.build(dataset, data_dir())
    _check_arrays(arrays, dataset.arrays, f"dataset {dataset.name!r} as built from {dataset.origin}")
    _write_npz(cached, arrays)
    return arrays


def load(name: str, **options) -> dict[str, np.ndarray]:
    """Load dataset ``name`` as a dict of NumPy arrays, each checked for dtype and shape (the table of
    datasets and arrays is in this module's docstring). Introduced in notebook 01."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: expected one of {sorted(DATASETS)}")
    dataset = DATASETS[name]
    if dataset.loader is None:
        if options:
            raise TypeError(f"dataset {name!r} takes no options, found {sorted(options)}")
        return _load_prepared(dataset)
    arrays = dataset.loader(dataset, **options)
    _check_arrays(arrays, dataset.arrays, f"dataset {name!r}")
    return arrays
