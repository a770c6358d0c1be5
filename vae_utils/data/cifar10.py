"""CIFAR-10 from the canonical tarball, prepared into ``cifar10.npz``; any subset of its classes.

Introduced in ``notebooks/03_cifar_horse_car_interpolation.ipynb``.
"""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np

from .base import DataError, Dataset, _check_arrays, _read_npz
from .files import _downloaded, _from_mirror, _mirror_env, _offline, _places, _write_npz, data_dir

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
        raise _offline_error(dataset, labels, cached)
    arrays = _build_cifar10(dataset, data_dir())
    _check_arrays(arrays, dataset.arrays, f"dataset 'cifar10' as built from {dataset.sources[0].url}")
    _write_npz(cached, arrays)
    return _select_classes(arrays, labels)


def _offline_error(dataset: Dataset, labels, cached: Path) -> DataError:
    """Why the ``labels`` of CIFAR-10 cannot be loaded offline, and the two ways to get them."""
    (source,) = dataset.sources
    mirror_env = _mirror_env()
    two_class = Path(mirror_env) / _CIFAR10_TWO_CLASS_FILE if mirror_env else None
    holds = (
        f"; the mirror's {two_class} holds only the classes {_describe_classes(_CIFAR10_TWO_CLASSES)}"
        if two_class is not None and two_class.is_file()
        else ""
    )
    return DataError(
        f"dataset 'cifar10': the classes {_describe_classes(labels)} were requested, but the full set "
        f"{dataset.filename} was not found in {_places(dataset.filename)}{holds}. VAE_OFFLINE=1 forbids "
        f"downloading {source.url} (md5 {source.md5}). To get the full set, unset VAE_OFFLINE so that "
        f"the tarball is downloaded and prepared into {cached}, or put a prepared {dataset.filename} in "
        "the mirror."
    )
