"""Datasets as NumPy arrays: a registry with checksums, an offline mirror and a download cache.

``load(name, **options)`` returns a dataset as a dict of NumPy arrays. It looks for the dataset's files in
three places, in order:

1. the cache directory (``data/`` in the repository, or ``$VAE_DATA_DIR``), where downloads are kept;
2. a read-only mirror of prepared files (``$VAE_DATA_MIRROR``), each checked against the mirror's
   ``SHA256SUMS`` before use;
3. the dataset's canonical source, verified against the canonical checksum. With ``VAE_OFFLINE=1``
   this step is forbidden and a missing file is an error that says where it was looked for.

The datasets come in three kinds:

- ``mnist``: the canonical source *is* the prepared ``.npz``; a cached copy is verified against the
  canonical sha256 on every load.
- ``svhn``: the canonical ``train_32x32.mat`` and ``test_32x32.mat`` are kept in the cache as they were
  published and verified against their published md5 on every load; ``read_svhn_mat`` parses them.
- ``cifar10``, ``lfw``, ``frey``, ``olivetti``: derived datasets. Their prepared ``.npz`` is built here
  from the canonical source (CIFAR-10's tarball, scikit-learn's fetchers, Roweis's ``frey_rawface.mat``),
  so it has no canonical checksum. The cache check of such a file is structural: its keys, shapes and
  dtypes (``Dataset.arrays``). Only files built from verified sources are ever written to the cache: a
  published checksum (CIFAR-10), scikit-learn's own pinned checksums (LFW, Olivetti), or, where no
  checksum is published (Frey faces), the structure of the raw file.

Everything written to the cache goes to a temporary file in the cache directory first and is renamed
into place only once it is complete and verified, so a failure at any step leaves nothing behind.

Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pickle
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import keras
import numpy as np
import scipy.io

__all__ = [
    "CIFAR10_LABEL_NAMES",
    "DATASETS",
    "ArraySpec",
    "BinarizedBatches",
    "DataError",
    "Dataset",
    "Source",
    "binarize",
    "data_dir",
    "labelled_split",
    "load",
    "read_svhn_mat",
    "write_svhn_mat",
]

_CHUNK = 1 << 20
_STALE_PART_S = 3600  # a temporary file untouched for an hour belongs to a download that was killed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DataError(RuntimeError):
    """A dataset could not be found, verified or read."""


@dataclass(frozen=True)
class ArraySpec:
    """The dtype and shape an array of a dataset must have.

    ``shape`` holds ints (an exact length) or names: arrays whose dimensions share a name must agree on
    that length, e.g. ``x_train`` of shape ``("n_train", 32, 32, 3)`` and ``y_train`` of ``("n_train",)``.
    ``dtype`` is a NumPy dtype name, ``"int"`` for any integer dtype or ``"str"`` for Unicode strings.
    """

    shape: tuple[int | str, ...]
    dtype: str

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
    """A registry entry: where a dataset comes from and what ``load`` returns for it.

    ``filename`` is the prepared ``.npz`` (its name in the cache and in the mirror; None for SVHN, whose
    canonical files are cached as they are), ``keys`` the arrays it must contain. ``url`` and ``sha256``
    are the canonical source of that same file and its checksum there, for datasets published as a
    prepared ``.npz`` (MNIST); derived datasets have neither.

    Keyword-only fields:

    - ``arrays``: the dtype and shape of every array ``load`` returns, checked on every load. For a
      derived dataset this is also the (structural) check of its prepared file in the cache.
    - ``sources``: the canonical files the dataset is built from.
    - ``build(dataset, cache_dir) -> arrays``: builds a derived dataset's prepared arrays from its
      verified sources, when neither the cache nor the mirror holds the prepared file (never offline).
    - ``loader(dataset, **options) -> arrays``: replaces the prepared-file lookup for datasets that
      take options or are cached as raw files (``cifar10``, ``svhn``).
    - ``origin``: where the data comes from, in words, for error messages.
    """

    name: str
    filename: str | None
    keys: tuple[str, ...]
    url: str | None = None
    sha256: str | None = None
    _: KW_ONLY
    arrays: Mapping[str, ArraySpec] = field(default_factory=dict, hash=False)
    sources: tuple[Source, ...] = ()
    build: Callable[[Dataset, Path], dict[str, np.ndarray]] | None = None
    loader: Callable[..., dict[str, np.ndarray]] | None = None
    origin: str = ""


# --- places, checksums and atomic writes --------------------------------------------------------


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The cache directory: ``$VAE_DATA_DIR`` if set, otherwise ``data/`` in the repository."""
    return Path(os.environ.get("VAE_DATA_DIR") or _repo_root() / "data")


def _offline() -> bool:
    return os.environ.get("VAE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256sum(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    return _digest(path, "sha256")


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


def _verify(path: Path, expected: str, what: str, algorithm: str = "sha256") -> None:
    found = _digest(path, algorithm)
    if found != expected:
        raise DataError(
            f"{what} {path} failed its checksum: expected {algorithm} {expected}, found {found} "
            f"({path.stat().st_size} bytes). The file is corrupted, truncated or not the canonical one; "
            "replace or delete it."
        )


def _mirror_env() -> str | None:
    return os.environ.get("VAE_DATA_MIRROR") or None


def _from_mirror(filename: str) -> Path | None:
    """The mirror's copy of ``filename``, verified; None if there is no mirror or it lacks the file."""
    mirror_env = _mirror_env()
    if mirror_env is None:
        return None
    mirror = Path(mirror_env)
    if not mirror.is_dir():
        raise DataError(f"VAE_DATA_MIRROR={mirror_env} is not a directory")
    mirrored = mirror / filename
    if not mirrored.is_file():
        return None
    sums = _read_sums(mirror)
    if filename not in sums:
        raise DataError(
            f"{mirrored} is not listed in {mirror / 'SHA256SUMS'}: expected an entry for "
            f"{filename!r}, found entries for {sorted(sums)}"
        )
    _verify(mirrored, sums[filename], "mirror file")
    return mirrored


def _places(filename: str) -> str:
    """Where ``filename`` was looked for, in words."""
    mirror_env = _mirror_env()
    return f"the cache ({data_dir() / filename})" + (
        f" and the mirror ({Path(mirror_env) / filename})" if mirror_env else ""
    )


@contextmanager
def _temporary_file(directory: Path, name: str) -> Iterator[tuple[int, Path]]:
    """A new temporary file beside ``directory / name``; removed on exit unless it was renamed away."""
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for stale in directory.glob(f".{glob.escape(name)}.*.part"):  # left by a killed download or build
        with suppress(OSError):
            if now - stale.stat().st_mtime > _STALE_PART_S:
                stale.unlink()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a cache is shared like any other file
    try:
        yield fd, tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _downloaded(
    url: str, directory: Path, name: str, expected: str | None, algorithm: str = "sha256"
) -> Iterator[Path]:
    """Download ``url`` to a temporary file in ``directory`` and yield its path once its checksum matched.

    ``expected`` None: no checksum is published, the caller checks the file's structure. The file is
    removed when the block ends, unless the caller renamed it into place.
    """
    with _temporary_file(directory, name) as (fd, tmp):
        digest = hashlib.new(algorithm)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                while block := response.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError) as exc:  # HTTPError, refused, timeout, reset
            raise DataError(
                f"could not download {name} from {url} ({exc}); nothing was kept. Check the connection, or "
                "put the file in the cache or the mirror (VAE_DATA_DIR, VAE_DATA_MIRROR)"
            ) from exc
        found = digest.hexdigest()
        if expected is not None and found != expected:
            raise DataError(
                f"download of {url} failed its checksum: expected {algorithm} {expected}, found {found} "
                f"({tmp.stat().st_size} bytes); nothing was kept"
            )
        yield tmp


def _download(url: str, target: Path, expected: str, algorithm: str = "sha256") -> None:
    """Download ``url`` to ``target`` atomically, keeping it only if its checksum matches."""
    with _downloaded(url, target.parent, target.name, expected, algorithm) as tmp:
        os.replace(tmp, target)


def _write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``target`` and rename it into place once it is complete."""
    with _temporary_file(target.parent, target.name) as (fd, tmp):
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)


def _write_npz(target: Path, arrays: Mapping[str, np.ndarray]) -> None:
    _write_atomically(target, lambda f: np.savez_compressed(f, **arrays))


# --- reading and checking arrays ----------------------------------------------------------------


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
    except (ValueError, TypeError, OSError, EOFError, scipy.io.matlab.MatReadError) as exc:
        raise DataError(
            f"{path} is not a readable MATLAB .mat file ({exc}): expected the canonical {what}"
        ) from exc
    return {key: value for key, value in contents.items() if not key.startswith("__")}


# --- prepared .npz files (mnist and the derived datasets) ---------------------------------------


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


# --- SVHN: the canonical .mat files -------------------------------------------------------------


def read_svhn_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN file in the canonical layout (``train_32x32.mat``, ``test_32x32.mat``).

    The canonical layout is ``X`` uint8 of shape (32, 32, 3, N) and ``y`` of shape (N, 1) holding labels
    1..10, where 10 means the digit 0. Returns ``x`` uint8 of shape (N, 32, 32, 3) and ``y`` int64 digits
    0-9. Anything else is a DataError that says what was expected and what was found.
    """
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
    """Write images and digits as an SVHN file in the canonical layout; returns the path.

    ``x``: uint8 images of shape (N, 32, 32, 3); ``y``: N digits 0-9. Writes ``X`` uint8 (32, 32, 3, N)
    and ``y`` uint8 (N, 1) with the digit 0 stored as 10, as in ``train_32x32.mat``, so that
    ``read_svhn_mat`` returns ``(x, y)``. The file is written to a temporary file beside ``path`` and
    renamed into place when complete. The tests, and the SVHN notebook's smoke run, use it to write small
    synthetic files in the canonical format.
    """
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


# --- CIFAR-10: the canonical tarball, prepared into cifar10.npz ---------------------------------

CIFAR10_LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN_BATCHES = tuple(f"{_CIFAR10_FOLDER}/data_batch_{i}" for i in range(1, 6))
_CIFAR10_MEMBERS = (
    *_CIFAR10_TRAIN_BATCHES,
    f"{_CIFAR10_FOLDER}/test_batch",
    f"{_CIFAR10_FOLDER}/batches.meta",
)
_CIFAR10_TWO_CLASS_FILE = "cifar10_horse_automobile.npz"
_CIFAR10_TWO_CLASSES = (1, 7)


def _cifar10_classes(classes) -> tuple[int, ...]:
    """Canonical labels, sorted, from None (all), a label, a name, or an iterable of labels and names."""
    if classes is None:
        return tuple(range(10))
    if isinstance(classes, str | int | np.integer):
        classes = (classes,)
    labels = set()
    for entry in classes:
        if isinstance(entry, str) and entry in CIFAR10_LABEL_NAMES:
            labels.add(CIFAR10_LABEL_NAMES.index(entry))
        elif isinstance(entry, int | np.integer) and not isinstance(entry, bool) and 0 <= entry < 10:
            labels.add(int(entry))
        else:
            valid = ", ".join(f"{label} {name!r}" for label, name in enumerate(CIFAR10_LABEL_NAMES))
            raise ValueError(f"unknown CIFAR-10 class {entry!r}: expected a label or a name among {valid}")
    if not labels:
        raise ValueError("classes is empty: name at least one CIFAR-10 class, or pass None for all ten")
    return tuple(sorted(labels))


def _describe_classes(labels) -> str:
    return "[" + ", ".join(f"{label} ({CIFAR10_LABEL_NAMES[label]})" for label in labels) + "]"


def _read_cifar10_npz(path: Path, dataset: Dataset, what: str) -> dict[str, np.ndarray]:
    """A prepared CIFAR-10 file (the full set, or the mirror's two-class file), checked structurally."""
    arrays = _read_npz(path, dataset)
    _check_arrays(arrays, dataset.arrays, f"{what} {path}")
    if tuple(arrays["label_names"].tolist()) != CIFAR10_LABEL_NAMES:
        raise DataError(
            f"{what} {path}: label_names should be {list(CIFAR10_LABEL_NAMES)}, "
            f"found {arrays['label_names'].tolist()}"
        )
    return arrays


def _select_classes(arrays: Mapping[str, np.ndarray], labels: tuple[int, ...]) -> dict[str, np.ndarray]:
    selected = {}
    for split in ("train", "test"):
        y = arrays[f"y_{split}"]
        keep = np.isin(y, labels)
        selected[f"x_{split}"] = arrays[f"x_{split}"][keep]
        selected[f"y_{split}"] = y[keep].astype(np.int64)
        selected[f"{split}_index"] = arrays[f"{split}_index"][keep].astype(np.int64)
    selected["label_names"] = np.asarray(CIFAR10_LABEL_NAMES)
    return selected


def _read_cifar10_tar(path: Path, url: str) -> dict[str, bytes]:
    """The expected members of the CIFAR-10 tarball, read into memory: nothing is extracted to disk.

    The archive is refused if any member's path escapes its folder or is a link.
    """
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith(("/", "\\")) or ".." in parts:
                    raise DataError(
                        f"the archive from {url} has a member whose path escapes it: {member.name!r}; "
                        "refusing the archive"
                    )
                if member.issym() or member.islnk():
                    raise DataError(
                        f"the archive from {url} has a link, {member.name!r} -> {member.linkname!r}; "
                        "refusing the archive"
                    )
            by_name = {member.name: member for member in members if member.isfile()}
            missing = [name for name in _CIFAR10_MEMBERS if name not in by_name]
            if missing:
                raise DataError(
                    f"the archive from {url} lacks {missing}: expected the files {list(_CIFAR10_MEMBERS)}, "
                    f"found {sorted(by_name)}"
                )
            return {name: tar.extractfile(by_name[name]).read() for name in _CIFAR10_MEMBERS}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"the archive from {url} is not a readable .tar.gz file ({exc})") from exc


def _unpickle_cifar10(raw: bytes, member: str, keys: tuple[bytes, ...]) -> dict:
    try:
        contents = pickle.loads(raw, encoding="bytes")
    except Exception as exc:
        raise DataError(f"CIFAR-10 member {member} could not be unpickled ({exc})") from exc
    if not isinstance(contents, dict) or any(key not in contents for key in keys):
        found = sorted(contents) if isinstance(contents, dict) else type(contents).__name__
        raise DataError(
            f"CIFAR-10 member {member} should be a dict with the keys {list(keys)}, found {found}"
        )
    return contents


def _cifar10_batch(raw: bytes, member: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) and labels of one batch: rows of 3072 bytes, channel-major 3 x 32 x 32."""
    batch = _unpickle_cifar10(raw, member, (b"data", b"labels"))
    rows, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072:
        raise DataError(
            f"CIFAR-10 member {member}: data should be uint8 of shape (n, 3072), found "
            f"{rows.dtype} of shape {rows.shape}"
        )
    if labels.shape != (len(rows),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"CIFAR-10 member {member}: labels should be {len(rows)} integers, found "
            f"{labels.dtype} of shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(
            f"CIFAR-10 member {member}: labels should be 0-9, found [{labels.min()}, {labels.max()}]"
        )
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def _build_cifar10(dataset: Dataset, cache: Path) -> dict[str, np.ndarray]:
    """The full prepared CIFAR-10 from the canonical tarball.

    The tarball is downloaded to a temporary file in the cache and its md5 verified before anything in it
    is read, let alone unpickled; it is removed afterwards.
    """
    (source,) = dataset.sources
    with _downloaded(source.url, cache, source.filename, source.md5, "md5") as tarball:
        raw = _read_cifar10_tar(tarball, source.url)
    meta = _unpickle_cifar10(raw[f"{_CIFAR10_FOLDER}/batches.meta"], "batches.meta", (b"label_names",))
    names = tuple(name.decode() if isinstance(name, bytes) else name for name in meta[b"label_names"])
    if names != CIFAR10_LABEL_NAMES:
        raise DataError(
            f"CIFAR-10 batches.meta: label_names should be {list(CIFAR10_LABEL_NAMES)}, found {names}"
        )
    train = [_cifar10_batch(raw[member], member) for member in _CIFAR10_TRAIN_BATCHES]
    x_test, y_test = _cifar10_batch(raw[f"{_CIFAR10_FOLDER}/test_batch"], "test_batch")
    y_train = np.concatenate([labels for _, labels in train])
    return {
        "x_train": np.concatenate([images for images, _ in train]),
        "y_train": y_train,
        "train_index": np.arange(len(y_train), dtype=np.int64),
        "x_test": np.ascontiguousarray(x_test),
        "y_test": y_test,
        "test_index": np.arange(len(y_test), dtype=np.int64),
        "label_names": np.asarray(CIFAR10_LABEL_NAMES),
    }


def _load_cifar10(dataset: Dataset, classes=None) -> dict[str, np.ndarray]:
    """CIFAR-10, restricted to ``classes`` (None: all ten; canonical labels 0-9 or names).

    Returns ``x_train`` (N, 32, 32, 3) uint8, ``y_train`` int64 canonical labels, ``train_index`` (each
    image's position in the canonical order: data_batch_1..5 concatenated), the same for the test set
    (``test_batch``), and ``label_names``, the ten canonical names.

    Lookup: the prepared full set ``cifar10.npz`` in the cache, then in the mirror; then, for classes
    within automobile (1) and horse (7), the mirror's ``cifar10_horse_automobile.npz``, which lacks 5
    training horses and 1 test horse of the canonical set (``train_index``/``test_index`` show which);
    then the canonical tarball, verified by its md5 before anything is unpickled and prepared into
    ``cifar10.npz`` in the cache.
    """
    labels = _cifar10_classes(classes)
    cached = data_dir() / dataset.filename
    if cached.is_file():
        return _select_classes(_read_cifar10_npz(cached, dataset, "cached file"), labels)
    mirrored = _from_mirror(dataset.filename)
    if mirrored is not None:
        return _select_classes(_read_cifar10_npz(mirrored, dataset, "mirror file"), labels)
    if set(labels) <= set(_CIFAR10_TWO_CLASSES):
        two_class = _from_mirror(_CIFAR10_TWO_CLASS_FILE)
        if two_class is not None:
            return _select_classes(_read_cifar10_npz(two_class, dataset, "mirror file"), labels)

    if _offline():
        (source,) = dataset.sources
        mirror_env = _mirror_env()
        two_class = Path(mirror_env) / _CIFAR10_TWO_CLASS_FILE if mirror_env else None
        holds = (
            f"; the mirror's {two_class} holds only the classes {_describe_classes(_CIFAR10_TWO_CLASSES)}"
            if two_class is not None and two_class.is_file()
            else ""
        )
        raise DataError(
            f"dataset 'cifar10': the classes {_describe_classes(labels)} were requested, but the full set "
            f"{dataset.filename} was not found in {_places(dataset.filename)}{holds}. VAE_OFFLINE=1 forbids "
            f"downloading {source.url} (md5 {source.md5}). To get the full set, unset VAE_OFFLINE so that "
            f"the tarball is downloaded and prepared into {cached}, or put a prepared {dataset.filename} in "
            "the mirror."
        )
    arrays = _build_cifar10(dataset, data_dir())
    _check_arrays(arrays, dataset.arrays, f"dataset 'cifar10' as built from {dataset.sources[0].url}")
    _write_npz(cached, arrays)
    return _select_classes(arrays, labels)


# --- the registry -------------------------------------------------------------------------------


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


def load(name: str, **options) -> dict[str, np.ndarray]:
    """Load dataset ``name`` as a dict of NumPy arrays; every array's dtype and shape is checked.

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

    >>> mnist = load("mnist")                      # doctest: +SKIP
    >>> mnist["x_train"].shape, mnist["x_train"].dtype
    ((60000, 28, 28), dtype('uint8'))
    """
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
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"y must hold integer class labels of shape (n,), found {y.dtype} of shape {y.shape}"
            + (" (one-hot rows? pass y.argmax(axis=1))" if y.ndim == 2 else "")
        )
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
