"""The loaders built from canonical sources: SVHN, CIFAR-10, LFW, Frey faces and Olivetti faces.

Downloads are served on 127.0.0.1 from files the tests write (the ``http_files`` fixture), with the
registry's URLs and checksums monkeypatched to point at them: the machines that run the tests are offline.
"""

import dataclasses
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import scipy.io
import sklearn.datasets
from sklearn.utils import Bunch

from vae_utils import data
from vae_utils.data import CIFAR10_LABEL_NAMES, ArraySpec, DataError, Source


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _replace(monkeypatch, name, **fields):
    """Register a modified copy of a dataset's entry for the duration of a test."""
    entry = dataclasses.replace(data.DATASETS[name], **fields)
    monkeypatch.setitem(data.DATASETS, name, entry)
    return entry


def _cache_files(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# --- SVHN ----------------------------------------------------------------------------------------


def _svhn_arrays(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10


def test_svhn_write_then_read_round_trips_and_stores_digit_0_as_10(tmp_path):
    x, y = _svhn_arrays(12, seed=0)
    path = data.write_svhn_mat(tmp_path / "train_32x32.mat", x, y)
    raw = scipy.io.loadmat(path)
    assert raw["X"].shape == (32, 32, 3, 12) and raw["X"].dtype == np.uint8
    assert raw["y"].shape == (12, 1)
    assert raw["y"][0, 0] == 10 and raw["y"][10, 0] == 10 and raw["y"][3, 0] == 3
    np.testing.assert_array_equal(raw["X"][:, :, :, 5], x[5])  # the canonical layout: images last
    x_read, y_read = data.read_svhn_mat(path)
    np.testing.assert_array_equal(x_read, x)
    np.testing.assert_array_equal(y_read, y)
    assert y_read.dtype == np.int64
    assert [p.name for p in tmp_path.iterdir()] == ["train_32x32.mat"]  # no temporary file left


def test_write_svhn_mat_refuses_what_is_not_digits(tmp_path):
    x, _ = _svhn_arrays(3, seed=0)
    with pytest.raises(ValueError, match=r"digits 0-9, found values in \[0, 10\]"):
        data.write_svhn_mat(tmp_path / "bad.mat", x, np.array([0, 5, 10]))
    with pytest.raises(
        ValueError, match=r"uint8 of shape \(N, 32, 32, 3\), found uint8 of shape \(3, 32, 32\)"
    ):
        data.write_svhn_mat(tmp_path / "bad.mat", x[..., 0], np.array([0, 5, 9]))
    assert list(tmp_path.iterdir()) == []


_X = np.zeros((32, 32, 3, 5), dtype=np.uint8)
_Y = np.array([[1], [2], [3], [4], [10]], dtype=np.uint8)


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (
            b"this is not a MATLAB file" * 10,
            r"not a readable MATLAB \.mat file .*expected the canonical SVHN",
        ),
        ({"X": _X}, r"lacks \['y'\]; expected the arrays \['X', 'y'\], found \['X'\]"),
        (
            {"images": _X, "y": _Y},
            r"lacks \['X'\]; expected the arrays \['X', 'y'\], found \['images', 'y'\]",
        ),
        (
            {"X": np.zeros((5, 32, 32, 3), np.uint8), "y": _Y},
            r"X should be uint8 of shape \(32, 32, 3, N\), found uint8 of shape \(5, 32, 32, 3\)",
        ),
        (
            {"X": _X.astype(np.float64), "y": _Y},
            r"X should be uint8 of shape \(32, 32, 3, N\), found float64 of shape \(32, 32, 3, 5\)",
        ),
        ({"X": _X, "y": _Y.T}, r"y should have shape \(N, 1\), found \(1, 5\)"),
        ({"X": _X, "y": _Y[:4]}, r"X holds 5 images but y holds 4 labels"),
        (
            {"X": _X, "y": np.array([[0], [2], [3], [11], [10]], np.uint8)},
            r"y should hold labels 1\.\.10 \(10 meaning the digit 0\), found 2 labels outside them: "
            r"\[0, 11\]",
        ),
    ],
    ids=["not-mat", "no-y", "no-X", "X-images-first", "X-float", "y-row", "n-mismatch", "labels-0-and-11"],
)
def test_read_svhn_mat_names_what_was_expected_and_found(tmp_path, contents, message):
    path = tmp_path / "train_32x32.mat"
    if isinstance(contents, bytes):
        path.write_bytes(contents)
    else:
        scipy.io.savemat(path, contents)
    with pytest.raises(DataError, match=message):
        data.read_svhn_mat(path)


def test_svhn_cached_files_with_the_wrong_md5_are_refused(isolated):
    # feed: valid SVHN files under the canonical names, but not the canonical files
    isolated.mkdir()
    data.write_svhn_mat(isolated / "train_32x32.mat", *_svhn_arrays(4, seed=1))
    data.write_svhn_mat(isolated / "test_32x32.mat", *_svhn_arrays(2, seed=2))
    found = _md5(isolated / "train_32x32.mat")
    with pytest.raises(
        DataError,
        match=rf"cached file .*train_32x32\.mat failed its checksum: "
        rf"expected md5 e26dedcc434d2e4c54c9b2d4a06d8373, found {found}",
    ):
        data.load("svhn")


@pytest.fixture
def svhn_source(tmp_path, monkeypatch, http_files):
    """SVHN's two canonical files written by the test, served on 127.0.0.1 with their md5s."""
    source = tmp_path / "source"
    source.mkdir()
    arrays = {"train": _svhn_arrays(6, seed=3), "test": _svhn_arrays(4, seed=4)}
    sources = []
    for split, (x, y) in arrays.items():
        path = data.write_svhn_mat(source / f"{split}_32x32.mat", x, y)
        sources.append(Source(path.name, http_files.url(path), _md5(path)))
    _replace(monkeypatch, "svhn", sources=tuple(sources))
    monkeypatch.setenv("VAE_OFFLINE", "0")
    return source, arrays


def test_svhn_downloads_verify_md5_and_cache_only_the_canonical_files(isolated, svhn_source):
    source, arrays = svhn_source
    svhn = data.load("svhn")
    np.testing.assert_array_equal(svhn["x_train"], arrays["train"][0])
    np.testing.assert_array_equal(svhn["y_train"], arrays["train"][1])
    np.testing.assert_array_equal(svhn["x_test"], arrays["test"][0])
    assert svhn["y_test"].dtype == np.int64 and svhn["y_test"].tolist() == [0, 1, 2, 3]
    assert _cache_files(isolated) == ["test_32x32.mat", "train_32x32.mat"]
    for path in source.iterdir():
        path.unlink()  # the second load must come from the cache
    np.testing.assert_array_equal(data.load("svhn")["x_test"], arrays["test"][0])


def test_svhn_download_with_a_wrong_md5_keeps_only_the_verified_file(isolated, monkeypatch, svhn_source):
    train, test = data.DATASETS["svhn"].sources
    _replace(monkeypatch, "svhn", sources=(train, dataclasses.replace(test, md5="0" * 32)))
    with pytest.raises(
        DataError, match=r"download of .*test_32x32\.mat failed its checksum 3 times: expected md5 0{32}"
    ):
        data.load("svhn")
    assert _cache_files(isolated) == ["train_32x32.mat"]


def test_svhn_offline_and_missing_names_both_files_places_and_md5s(isolated, monkeypatch, mirror):
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))  # the real mirror has no SVHN
    with pytest.raises(DataError) as info:
        data.load("svhn")
    message = str(info.value)
    for source in data.DATASETS["svhn"].sources:
        assert source.filename in message and source.md5 in message and source.url in message
        assert str(isolated / source.filename) in message and str(mirror / source.filename) in message
    assert "VAE_OFFLINE=1" in message
    assert not isolated.exists()


# --- CIFAR-10 ------------------------------------------------------------------------------------


@pytest.fixture
def cifar_mirror(mirror, monkeypatch, isolated):
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    return mirror


@pytest.mark.parametrize(
    ("classes", "labels", "n_train", "n_test"),
    [
        ((1, 7), {1, 7}, 9995, 1999),
        (("automobile", "horse"), {1, 7}, 9995, 1999),
        ((7,), {7}, 4995, 999),
        ("automobile", {1}, 5000, 1000),
    ],
)
def test_cifar10_classes_from_the_two_class_mirror_file(cifar_mirror, classes, labels, n_train, n_test):
    cifar = data.load("cifar10", classes=classes)
    assert cifar["x_train"].shape == (n_train, 32, 32, 3) and cifar["x_train"].dtype == np.uint8
    assert cifar["x_test"].shape == (n_test, 32, 32, 3)
    assert cifar["y_train"].dtype == np.int64 and set(np.unique(cifar["y_train"])) == labels
    assert set(np.unique(cifar["y_test"])) == labels
    for split, size in (("train", 50000), ("test", 10000)):
        index = cifar[f"{split}_index"]
        assert index.dtype == np.int64 and len(index) == len(cifar[f"y_{split}"])
        assert (np.diff(index) > 0).all() and 0 <= index.min() and index.max() < size
    assert cifar["label_names"].tolist() == list(CIFAR10_LABEL_NAMES)


def test_cifar10_subsets_share_the_canonical_positions(cifar_mirror):
    both = data.load("cifar10", classes=(1, 7))
    horses = data.load("cifar10", classes=("horse",))
    is_horse = both["y_train"] == 7
    np.testing.assert_array_equal(horses["train_index"], both["train_index"][is_horse])
    np.testing.assert_array_equal(horses["x_train"], both["x_train"][is_horse])
    # the mirror lacks 5 training horses and 1 test horse of the canonical 5000 and 1000
    assert 5000 - len(horses["train_index"]) == 5 and 1000 - len(horses["test_index"]) == 1


def test_cifar10_class_missing_from_the_mirror_offline_explains_how_to_get_it(cifar_mirror, isolated):
    with pytest.raises(DataError) as info:
        data.load("cifar10", classes=(3,))
    message = str(info.value)
    assert "[3 (cat)] were requested" in message
    assert "holds only the classes [1 (automobile), 7 (horse)]" in message
    assert "unset VAE_OFFLINE" in message and "c58f30108f718f92721af3b95e74349a" in message
    assert not isolated.exists()


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (("horse", "hors"), r"unknown CIFAR-10 class 'hors'.*7 'horse'"),
        ((10,), r"class 10.*0 'airplane'"),
        ((), "empty"),
    ],
)
def test_cifar10_unknown_classes_list_the_valid_ones(isolated, classes, message):
    with pytest.raises(ValueError, match=message):
        data.load("cifar10", classes=classes)


def _cifar_rows(images):
    """Images (n, 32, 32, 3) as CIFAR-10 rows: 3072 bytes, channel-major (all red, all green, all blue)."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _cifar_batches(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (19, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 19)
    return images, labels


def _write_cifar_tarball(path, images, labels, extra_members=()):
    """A tarball in the canonical structure: 5 train batches of 3 images, a test batch of 4, the meta."""

    def add(tar, name, payload):
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))

    folder = "cifar-10-batches-py"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_folder(folder))
        for i in range(5):
            rows = slice(3 * i, 3 * i + 3)
            batch = {b"batch_label": b"training batch", b"labels": labels[rows].tolist()}
            batch[b"data"] = _cifar_rows(images[rows])
            add(tar, f"{folder}/data_batch_{i + 1}", pickle.dumps(batch, protocol=2))
        test = {b"labels": labels[15:].tolist(), b"data": _cifar_rows(images[15:])}
        add(tar, f"{folder}/test_batch", pickle.dumps(test, protocol=2))
        meta = {b"label_names": [name.encode() for name in CIFAR10_LABEL_NAMES], b"num_vis": 3072}
        add(tar, f"{folder}/batches.meta", pickle.dumps(meta, protocol=2))
        add(tar, f"{folder}/readme.html", b"<html></html>")
        for member in extra_members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _folder(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


@pytest.fixture
def cifar_tarball(tmp_path, monkeypatch, http_files):
    """Returns a function that serves a test-written tarball as CIFAR-10's canonical source."""

    def serve(extra_members=(), md5=None):
        images, labels = _cifar_batches()
        tarball = _write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz", images, labels, extra_members)
        source = Source("cifar-10-python.tar.gz", http_files.url(tarball), md5 or _md5(tarball))
        _replace(monkeypatch, "cifar10", sources=(source,))
        monkeypatch.setenv("VAE_OFFLINE", "0")
        return tarball, images, labels

    return serve


def test_cifar10_from_the_tarball_is_converted_and_cached(isolated, cifar_tarball):
    tarball, images, labels = cifar_tarball()
    cifar = data.load("cifar10")
    np.testing.assert_array_equal(cifar["x_train"], images[:15])
    np.testing.assert_array_equal(cifar["x_test"], images[15:])
    # one pixel by hand: row byte 1024 + 32 * 2 + 5 is the green value of pixel (2, 5) of image 0
    row = _cifar_rows(images[:1])[0]
    assert cifar["x_train"][0, 2, 5, 1] == row[1024 + 32 * 2 + 5]
    np.testing.assert_array_equal(cifar["y_train"], labels[:15])
    np.testing.assert_array_equal(cifar["train_index"], np.arange(15))
    np.testing.assert_array_equal(cifar["test_index"], np.arange(4))
    assert _cache_files(isolated) == ["cifar10.npz"]  # the tarball was removed

    tarball.unlink()  # a request for some classes is now served by the cache
    cat = int(labels[0])
    subset = data.load("cifar10", classes=(CIFAR10_LABEL_NAMES[cat],))
    np.testing.assert_array_equal(subset["train_index"], np.flatnonzero(labels[:15] == cat))
    np.testing.assert_array_equal(subset["x_train"], images[:15][labels[:15] == cat])


def test_cifar10_tarball_with_a_wrong_md5_is_never_unpickled(isolated, monkeypatch, cifar_tarball):
    cifar_tarball(md5="0" * 32)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled an unverified archive")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    with pytest.raises(DataError, match=r"checksum 3 times: expected md5 0{32}, found [0-9a-f]{32}"):
        data.load("cifar10")
    assert _cache_files(isolated) == []


def _escaping_member():
    info = tarfile.TarInfo("../evil")
    info.size = 4
    return info


def _link_member():
    info = tarfile.TarInfo("cifar-10-batches-py/passwd")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [(_escaping_member, r"path escapes it: '\.\./evil'"), (_link_member, r"has a link, .*'/etc/passwd'")],
)
def test_cifar10_tarball_with_an_unsafe_member_is_refused(isolated, cifar_tarball, member, message):
    cifar_tarball(extra_members=(member(),))
    with pytest.raises(DataError, match=message):
        data.load("cifar10")
    assert _cache_files(isolated) == []
    assert not (isolated.parent / "evil").exists()


# --- LFW, Frey faces, Olivetti faces -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shapes"),
    [
        ("lfw", {"x": ((13233, 62, 47), np.uint8), "y": ((13233,), np.int32), "names": ((5749,), np.str_)}),
        ("frey", {"x": ((1965, 28, 20), np.uint8)}),
        ("olivetti", {"x": ((400, 64, 64), np.uint8), "y": ((400,), np.uint8)}),
    ],
)
def test_faces_from_the_mirror(mirror, monkeypatch, isolated, name, shapes):
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    arrays = data.load(name)
    assert {key: (arrays[key].shape, arrays[key].dtype.type) for key in shapes} == shapes
    assert not isolated.exists()  # mirror files are read in place


def test_faces_offline_without_mirror_say_where_they_would_come_from(isolated):
    with pytest.raises(
        DataError, match=r"frey_faces\.npz was not found .*forbids building it from https://cs"
    ):
        data.load("frey")
    with pytest.raises(DataError, match=r"forbids building it from sklearn\.datasets\.fetch_lfw_people"):
        data.load("lfw")


def _frey_faces(n=1965):
    return np.random.default_rng(5).integers(0, 256, (n, 28, 20), dtype=np.uint8)


@pytest.fixture
def frey_source(tmp_path, monkeypatch, http_files):
    """Returns a function that serves a test-written frey_rawface.mat as the canonical source."""

    def serve(contents):
        raw = tmp_path / "frey_rawface.mat"
        scipy.io.savemat(raw, contents)
        _replace(monkeypatch, "frey", sources=(Source(raw.name, http_files.url(raw), None),))
        monkeypatch.setenv("VAE_OFFLINE", "0")
        return raw

    return serve


def test_frey_from_the_raw_mat_reshapes_columns_row_major(isolated, frey_source):
    faces = _frey_faces()
    ff = faces.reshape(1965, 560).T  # each column one face, its 28 rows of 20 pixels one after another
    raw = frey_source({"ff": ff})
    x = data.load("frey")["x"]
    np.testing.assert_array_equal(x, faces)
    assert x[7, 0, 1] == ff[1, 7] and x[7, 1, 0] == ff[20, 7] and x[7, 27, 19] == ff[559, 7]
    assert _cache_files(isolated) == ["frey_faces.npz"]  # the raw file is not kept
    raw.unlink()
    np.testing.assert_array_equal(data.load("frey")["x"][7], faces[7])


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (
            {"ff": np.zeros((20, 28 * 1965), np.uint8)},
            r"'ff' should be uint8 of shape \(560, N\).*found uint8 of shape \(20, 55020\)",
        ),
        ({"ff": np.zeros((560, 1965))}, r"found float64 of shape \(560, 1965\)"),
        ({"faces": np.zeros((560, 1965), np.uint8)}, r"expected the array 'ff'.*found \['faces'\]"),
        (
            {"ff": np.zeros((560, 100), np.uint8)},
            r"'x' should be uint8 of shape \(1965, 28, 20\), found uint8 of shape \(100, 28, 20\)",
        ),
    ],
    ids=["transposed", "float", "no-ff", "too-few"],
)
def test_frey_raw_file_of_the_wrong_structure_is_refused_and_nothing_cached(
    isolated, frey_source, contents, message
):
    frey_source(contents)
    with pytest.raises(DataError, match=message):
        data.load("frey")
    assert _cache_files(isolated) == []


def test_cached_prepared_file_is_checked_structurally(isolated):
    isolated.mkdir()
    np.savez_compressed(isolated / "frey_faces.npz", x=np.zeros((1965, 20, 28), np.uint8))
    with pytest.raises(
        DataError, match=r"cached file .*frey_faces\.npz .*'x' should be uint8 of shape \(1965, 28, 20\)"
    ):
        data.load("frey")


# intensities as scikit-learn gives them, and round(255 * value) as uint8
_VALUES = np.array([0.0, 0.001, 0.25, 0.6, 0.999, 1.0, 1.0004], dtype=np.float32)
_EXPECTED = np.array([0, 0, 64, 153, 255, 255, 255], dtype=np.uint8)


def test_lfw_from_scikit_learn_is_rounded_to_uint8_and_cached(isolated, monkeypatch):
    images = np.resize(_VALUES, (3, 62, 47)).astype(np.float32)
    calls = []

    def fetch_lfw_people(**kwargs):
        calls.append(kwargs)
        return Bunch(images=images, target=np.array([1, 0, 1]), target_names=np.array(["Ann Bee", "Cy Dee"]))

    monkeypatch.setattr(sklearn.datasets, "fetch_lfw_people", fetch_lfw_people)
    _replace(  # three images of two people instead of 13,233 of 5,749
        monkeypatch,
        "lfw",
        arrays={
            "x": ArraySpec((3, 62, 47), "uint8"),
            "y": ArraySpec((3,), "int32"),
            "names": ArraySpec((2,), "str"),
        },
    )
    monkeypatch.setenv("VAE_OFFLINE", "0")
    lfw = data.load("lfw")
    np.testing.assert_array_equal(lfw["x"].reshape(-1)[:7], _EXPECTED)
    np.testing.assert_array_equal(lfw["x"], np.resize(_EXPECTED, (3, 62, 47)))
    assert lfw["y"].tolist() == [1, 0, 1] and lfw["names"].tolist() == ["Ann Bee", "Cy Dee"]
    assert calls == [{"min_faces_per_person": 0, "resize": 0.5, "data_home": isolated / "scikit_learn_data"}]
    assert _cache_files(isolated) == ["lfw_people.npz"]
    np.testing.assert_array_equal(data.load("lfw")["x"], lfw["x"])  # from the cache: no second fetch
    assert len(calls) == 1


def test_olivetti_from_scikit_learn_is_rounded_to_uint8(isolated, monkeypatch):
    images = np.resize(_VALUES, (400, 64, 64)).astype(np.float32)
    bunch = Bunch(images=images, target=np.repeat(np.arange(40), 10))
    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", lambda data_home: bunch)
    monkeypatch.setenv("VAE_OFFLINE", "0")
    olivetti = data.load("olivetti")
    np.testing.assert_array_equal(olivetti["x"], np.resize(_EXPECTED, (400, 64, 64)))
    assert olivetti["y"].dtype == np.uint8 and olivetti["y"][-1] == 39
    assert _cache_files(isolated) == ["olivetti_faces.npz"]


def test_scikit_learn_images_on_another_scale_are_refused_and_nothing_cached(isolated, monkeypatch):
    # feed: intensities in [0, 255], as older scikit-learn versions returned them
    bunch = Bunch(images=np.full((400, 64, 64), 200.0, np.float32), target=np.zeros(400, int))
    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", lambda data_home: bunch)
    monkeypatch.setenv("VAE_OFFLINE", "0")
    with pytest.raises(
        DataError, match=r"expected float intensities in \[0, 1\], found values in \[200, 200\]"
    ):
        data.load("olivetti")
    assert _cache_files(isolated) == []


def test_datasets_without_options_refuse_them(isolated):
    with pytest.raises(TypeError, match=r"dataset 'mnist' takes no options, found \['classes'\]"):
        data.load("mnist", classes=(1,))


def test_a_missing_file_or_refused_connection_names_the_file_and_the_url(tmp_path, http_files):
    from vae_utils.data import DataError, files

    url = http_files.url(tmp_path / "served" / "toy.npz")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"could not download toy.npz from {url} after 3 attempts \(404"):
        files._download(url, cache / "toy.npz", "0" * 64)
    with pytest.raises(DataError, match=r"could not download toy.npz from http://127.0.0.1:9/toy.npz"):
        files._download("http://127.0.0.1:9/toy.npz", cache / "toy.npz", "0" * 64)
    assert list(cache.iterdir()) == []


def test_a_download_clears_stale_partial_files_and_caches_group_readable_files(tmp_path, http_files):
    import hashlib

    from vae_utils.data import files

    served = tmp_path / "served"
    served.mkdir()
    (served / "toy.npz").write_bytes(b"toy bytes")
    cache = tmp_path / "cache"
    cache.mkdir()
    stale, fresh = cache / ".toy.npz.killed.part", cache / f".toy.npz.{os.getpid()}.running.part"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    killed = cache / f".toy.npz.{int(dead.stdout)}.sigterm.part"  # just written, by a process now gone
    killed.mkdir()
    for path in (stale, fresh):
        path.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    old_mask = os.umask(0o022)
    try:
        files._download(
            http_files.url(served / "toy.npz"), cache / "toy.npz", hashlib.sha256(b"toy bytes").hexdigest()
        )
    finally:
        os.umask(old_mask)
    assert sorted(p.name for p in cache.iterdir()) == [fresh.name, "toy.npz"]  # a live download is kept
    assert (cache / "toy.npz").stat().st_mode & 0o777 == 0o644


def test_a_web_page_served_as_frey_faces_and_a_file_as_the_cache_are_named_errors(tmp_path):
    from vae_utils.data import faces, files

    page = tmp_path / "frey_rawface.mat"
    page.write_text("<html><body>Not Found</body></html>")
    with pytest.raises(data.DataError, match="not a readable MATLAB .mat file.*frey_rawface.mat"):
        faces._frey_from_mat(page)
    in_the_way = tmp_path / "cache"
    in_the_way.write_text("")
    with pytest.raises(data.DataError, match="expected a writable directory. Set VAE_DATA_DIR"):
        files._clear_stale(in_the_way / "sub", "mnist.npz")
