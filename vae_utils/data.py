"""Datasets as NumPy arrays: a registry with checksums, an offline mirror and a download cache.

``load(name)`` looks for the prepared ``.npz`` file of a dataset in three places, in order:

1. the cache directory (``data/`` in the repository, or ``$VAE_DATA_DIR``), where downloads are kept;
2. a read-only mirror of prepared files (``$VAE_DATA_MIRROR``), each checked against the mirror's
   ``SHA256SUMS`` before use;
3. the dataset's canonical source, verified against the canonical checksum. With ``VAE_OFFLINE=1``
   this step is forbidden and a missing file is an error that says where it was looked for.

A download goes to a temporary file in the cache directory and is renamed into place only after its
checksum matched, so an interrupted or corrupted download leaves nothing behind.

Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

__all__ = [
    "DATASETS",
    "BinarizedBatches",
    "DataError",
    "Dataset",
    "binarize",
    "data_dir",
    "labelled_split",
    "load",
]

_CHUNK = 1 << 20


class DataError(RuntimeError):
    """A dataset could not be found, verified or read."""


@dataclass(frozen=True)
class Dataset:
    """A registry entry: where a dataset comes from and what its prepared file holds.

    ``filename`` is the prepared ``.npz`` (the name it has in the cache and in the mirror), ``keys``
    the arrays it must contain. ``url`` is the canonical source of that same file and ``sha256`` its
    checksum there.
    """

    name: str
    filename: str
    keys: tuple[str, ...]
    url: str
    sha256: str


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        name="mnist",
        filename="mnist.npz",
        keys=("x_train", "y_train", "x_test", "y_test"),
        url="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
        sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    ),
}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The cache directory: ``$VAE_DATA_DIR`` if set, otherwise ``data/`` in the repository."""
    return Path(os.environ.get("VAE_DATA_DIR") or _repo_root() / "data")


def _offline() -> bool:
    return os.environ.get("VAE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def sha256sum(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _read_sums(mirror: Path) -> dict[str, str]:
    sums_file = mirror / "SHA256SUMS"
    if not sums_file.is_file():
        raise DataError(
            f"mirror {mirror} has no SHA256SUMS file: expected {sums_file} listing "
            "'<sha256>  <filename>' for every file in the mirror"
        )
    sums = {}
    for number, line in enumerate(sums_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(
                f"{sums_file}, line {number}: expected '<64 hex digits>  <filename>', found {line!r}"
            )
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _verify(path: Path, expected: str, what: str) -> None:
    found = sha256sum(path)
    if found != expected:
        raise DataError(
            f"{what} {path} failed its checksum: expected sha256 {expected}, found {found} "
            f"({path.stat().st_size} bytes). The file is corrupted or truncated; replace it."
        )


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


def _download(url: str, target: Path, sha256: str) -> None:
    """Download ``url`` to ``target`` atomically, keeping it only if its sha256 matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while block := response.read(_CHUNK):
                digest.update(block)
                out.write(block)
        found = digest.hexdigest()
        if found != sha256:
            raise DataError(
                f"download of {url} failed its checksum: expected sha256 {sha256}, found {found} "
                f"({tmp.stat().st_size} bytes); nothing was kept"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _locate(dataset: Dataset) -> Path:
    cached = data_dir() / dataset.filename
    if cached.is_file():
        # Only this module writes the cache, and only verified files: a mismatch means the file
        # was changed or damaged afterwards, which deserves an error rather than a silent refetch.
        _verify(cached, dataset.sha256, "cached file")
        return cached

    mirror_env = os.environ.get("VAE_DATA_MIRROR")
    if mirror_env:
        mirror = Path(mirror_env)
        if not mirror.is_dir():
            raise DataError(f"VAE_DATA_MIRROR={mirror_env} is not a directory")
        mirrored = mirror / dataset.filename
        if mirrored.is_file():
            sums = _read_sums(mirror)
            if dataset.filename not in sums:
                raise DataError(
                    f"{mirrored} is not listed in {mirror / 'SHA256SUMS'}: expected an entry for "
                    f"{dataset.filename!r}, found entries for {sorted(sums)}"
                )
            _verify(mirrored, sums[dataset.filename], "mirror file")
            return mirrored

    looked = f"the cache ({cached})" + (
        f" and the mirror ({Path(mirror_env) / dataset.filename})" if mirror_env else ""
    )
    if _offline():
        raise DataError(
            f"dataset {dataset.name!r}: {dataset.filename} was not found in {looked}, and "
            f"VAE_OFFLINE=1 forbids downloading it from {dataset.url} (expected sha256 "
            f"{dataset.sha256}). Set VAE_DATA_MIRROR to a folder holding it, or unset VAE_OFFLINE."
        )
    _download(dataset.url, cached, dataset.sha256)
    return cached


def load(name: str) -> dict[str, np.ndarray]:
    """Load dataset ``name`` as a dict of NumPy arrays named as in its prepared file.

    >>> mnist = load("mnist")                      # doctest: +SKIP
    >>> mnist["x_train"].shape, mnist["x_train"].dtype
    ((60000, 28, 28), dtype('uint8'))
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: expected one of {sorted(DATASETS)}")
    dataset = DATASETS[name]
    return _read_npz(_locate(dataset), dataset)


def binarize(x: np.ndarray, seed: int | np.random.Generator) -> np.ndarray:
    """Stochastic binarisation: each pixel is 1 with probability equal to its intensity.

    ``x`` holds intensities, either ``uint8`` in [0, 255] or floats in [0, 1]. Training draws a new
    binarisation every epoch (``BinarizedBatches``); the test set is binarised once with a fixed seed
    so that every evaluation sees the same images. Returns ``float32`` zeros and ones.
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        p = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        if x.size and (np.nanmin(x) < 0.0 or np.nanmax(x) > 1.0 or np.isnan(x).any()):
            raise ValueError(
                "binarize expects float intensities in [0, 1], found values in "
                f"[{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]" + (" and NaN" if np.isnan(x).any() else "")
            )
        p = x.astype(np.float32)
    else:
        raise TypeError(f"binarize expects uint8 or float images, found dtype {x.dtype}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)


def labelled_split(y: np.ndarray, n_labelled: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into a class-balanced labelled set and the unlabelled rest.

    Draws ``n_labelled / n_classes`` examples of every class present in ``y``. Returns
    ``(labelled, unlabelled)``: sorted, disjoint index arrays that together cover ``range(len(y))``,
    the same for the same ``seed``. Kingma et al. (2014) use such splits for N = 100, 600, 1000, 3000.
    """
    y = np.asarray(y).reshape(-1)
    classes, counts = np.unique(y, return_counts=True)
    if isinstance(n_labelled, bool) or not isinstance(n_labelled, (int, np.integer)):
        raise TypeError(f"n_labelled must be an integer, found {type(n_labelled).__name__}")
    if n_labelled <= 0 or n_labelled % len(classes):
        raise ValueError(
            f"n_labelled must be a positive multiple of the {len(classes)} classes so that every "
            f"class gets the same number of labels, found {n_labelled}"
        )
    per_class = n_labelled // len(classes)
    if per_class > counts.min():
        scarce = classes[counts.argmin()]
        raise ValueError(
            f"n_labelled={n_labelled} needs {per_class} examples of every class, but class "
            f"{scarce} has only {counts.min()}"
        )
    rng = np.random.default_rng(seed)
    labelled = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), size=per_class, replace=False) for c in classes]
    )
    labelled.sort()
    unlabelled = np.setdiff1d(np.arange(len(y)), labelled, assume_unique=True)
    return labelled, unlabelled


class BinarizedBatches(keras.utils.PyDataset):
    """Shuffled batches of ``x`` with a fresh stochastic binarisation every epoch.

    Dynamic binarisation (Salakhutdinov & Murray, 2008) turns grey MNIST into binary data that a
    Bernoulli likelihood models exactly, and acts as data augmentation: the model never sees the same
    binary image twice. Pass it to ``model.fit`` in place of an array.
    """

    def __init__(self, x: np.ndarray, batch_size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        if len(x) < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the {len(x)} examples")
        self.x = x
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return len(self.x) // self.batch_size  # drop the last partial batch: fixed shapes compile once

    def __getitem__(self, index: int) -> np.ndarray:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return binarize(self.x[rows], self.rng)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))
