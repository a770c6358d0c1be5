"""The data layer: lookup order, checksums, atomic downloads, binarisation and label splits."""

import hashlib
import shutil

import numpy as np
import pytest

from vae_utils import data
from vae_utils.data import DataError, Dataset, files


def _npz(path, **arrays):
    np.savez_compressed(path, **arrays)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _toy_arrays():
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        "y_train": np.arange(6),
        "x_test": rng.integers(0, 256, (2, 4, 4), dtype=np.uint8),
        "y_test": np.arange(2),
    }


@pytest.fixture
def toy_source(tmp_path, monkeypatch, http_files):
    """A registered dataset whose canonical source is a file on the local server."""
    source = tmp_path / "source" / "toy.npz"
    source.parent.mkdir()
    digest = _npz(source, **_toy_arrays())
    entry = Dataset(
        "toy", "toy.npz", ("x_train", "y_train", "x_test", "y_test"), http_files.url(source), digest
    )
    monkeypatch.setitem(data.DATASETS, "toy", entry)
    return source, entry


def _mirror_with(tmp_path, filename, payload_path, listed_sha=None):
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    shutil.copy(payload_path, mirror / filename)
    sha = listed_sha or hashlib.sha256((mirror / filename).read_bytes()).hexdigest()
    (mirror / "SHA256SUMS").write_text(f"{sha}  {filename}\n")
    return mirror


# --- lookup and checksums ---------------------------------------------------------------------


def test_unknown_dataset_names_the_known_ones(isolated):
    with pytest.raises(DataError, match=r"unknown dataset 'mnits'.*'mnist'"):
        data.load("mnits")


def test_mnist_from_the_mirror_has_the_canonical_arrays(mnist):
    assert mnist["x_train"].shape == (60000, 28, 28) and mnist["x_train"].dtype == np.uint8
    assert mnist["x_test"].shape == (10000, 28, 28)
    assert mnist["y_train"].shape == (60000,) and set(np.unique(mnist["y_test"])) == set(range(10))


def test_mirror_file_with_a_wrong_checksum_is_refused(tmp_path, isolated, monkeypatch, mirror):
    # feed: the real mirror's mnist.npz, truncated to half, still listed with the real checksum
    real_sha = files._read_sums(mirror)["mnist.npz"]
    half = tmp_path / "half.npz"
    raw = (mirror / "mnist.npz").read_bytes()
    half.write_bytes(raw[: len(raw) // 2])
    monkeypatch.setenv("VAE_DATA_MIRROR", str(_mirror_with(tmp_path, "mnist.npz", half, real_sha)))
    with pytest.raises(
        DataError, match=rf"failed its checksum: expected sha256 {real_sha}, found [0-9a-f]{{64}}"
    ):
        data.load("mnist")
    assert not isolated.exists() or not any(isolated.iterdir())


def test_mirror_file_missing_from_sha256sums_is_refused(tmp_path, isolated, monkeypatch, toy_source):
    source, _ = toy_source
    mirror = _mirror_with(tmp_path, "toy.npz", source)
    (mirror / "SHA256SUMS").write_text(f"{'0' * 64}  other.npz\n")
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError, match=r"not listed in .*SHA256SUMS.*'toy.npz'.*\['other.npz'\]"):
        data.load("toy")


def test_malformed_sha256sums_line_is_reported(tmp_path, isolated, monkeypatch, toy_source):
    source, _ = toy_source
    mirror = _mirror_with(tmp_path, "toy.npz", source)
    (mirror / "SHA256SUMS").write_text("not-a-checksum\n")
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    with pytest.raises(
        DataError, match=r"line 1: expected '<64 hex digits>  <filename>', found 'not-a-checksum'"
    ):
        data.load("toy")


def test_truncated_file_with_a_matching_checksum_is_reported_as_unreadable(
    tmp_path, isolated, monkeypatch, toy_source
):
    # feed: a truncated .npz whose checksum is listed correctly, so only reading it can fail
    source, _ = toy_source
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(source.read_bytes()[:100])
    monkeypatch.setenv("VAE_DATA_MIRROR", str(_mirror_with(tmp_path, "toy.npz", truncated)))
    with pytest.raises(
        DataError, match=r"not a readable .npz file for dataset 'toy'.*truncated or corrupted"
    ):
        data.load("toy")


def test_file_with_the_wrong_arrays_names_expected_and_found_keys(
    tmp_path, isolated, monkeypatch, toy_source
):
    # feed: a valid .npz holding other arrays than the dataset's
    wrong = tmp_path / "wrong.npz"
    _npz(wrong, images=np.zeros((2, 2)))
    monkeypatch.setenv("VAE_DATA_MIRROR", str(_mirror_with(tmp_path, "toy.npz", wrong)))
    with pytest.raises(
        DataError, match=r"expected keys \['x_train', 'y_train', 'x_test', 'y_test'\], found \['images'\]"
    ):
        data.load("toy")


def test_mirror_must_be_a_directory(tmp_path, isolated, monkeypatch):
    monkeypatch.setenv("VAE_DATA_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="is not a directory"):
        data.load("mnist")


def test_offline_missing_file_names_file_places_and_checksum(tmp_path, isolated, monkeypatch):
    empty_mirror = tmp_path / "empty"
    empty_mirror.mkdir()
    monkeypatch.setenv("VAE_DATA_MIRROR", str(empty_mirror))
    with pytest.raises(DataError) as info:
        data.load("mnist")
    message = str(info.value)
    assert "mnist.npz" in message and str(isolated / "mnist.npz") in message
    assert str(empty_mirror / "mnist.npz") in message
    assert "VAE_OFFLINE=1" in message and data.DATASETS["mnist"].sha256 in message
    assert not isolated.exists()


# --- downloads ---------------------------------------------------------------------------------


def test_download_is_verified_cached_and_reused(isolated, monkeypatch, toy_source):
    source, _ = toy_source
    monkeypatch.setenv("VAE_OFFLINE", "0")
    arrays = data.load("toy")
    np.testing.assert_array_equal(arrays["x_train"], _toy_arrays()["x_train"])
    assert sorted(p.name for p in isolated.iterdir()) == ["toy.npz"]
    source.unlink()  # the second load must come from the cache
    np.testing.assert_array_equal(data.load("toy")["y_test"], [0, 1])


def test_download_with_a_wrong_checksum_leaves_nothing(isolated, monkeypatch, toy_source):
    _, entry = toy_source
    monkeypatch.setitem(data.DATASETS, "toy", Dataset(**{**entry.__dict__, "sha256": "f" * 64}))
    monkeypatch.setenv("VAE_OFFLINE", "0")
    with pytest.raises(
        DataError,
        match=r"failed its checksum 3 times: expected sha256 f{64}, found [0-9a-f]{64}; nothing was kept",
    ):
        data.load("toy")
    assert list(isolated.iterdir()) == []


def test_a_truncated_body_is_retried_then_refused_and_leaves_nothing(
    isolated, monkeypatch, toy_source, http_files
):
    # feed: the server announces the whole file and hangs up halfway, on every attempt
    source, _ = toy_source
    http_files.fail(source, *["truncate"] * (1 + files.RETRIES))
    monkeypatch.setenv("VAE_OFFLINE", "0")
    with pytest.raises(
        DataError, match=rf"could not download toy.npz from .* after {1 + files.RETRIES} attempts"
    ):
        data.load("toy")
    assert len(http_files.requests) == 1 + files.RETRIES
    assert list(isolated.iterdir()) == []


def test_a_download_that_fails_twice_with_503_succeeds_on_the_third_attempt(
    isolated, monkeypatch, toy_source, http_files
):
    source, _ = toy_source
    http_files.fail(source, 503, 503)
    monkeypatch.setenv("VAE_OFFLINE", "0")
    np.testing.assert_array_equal(data.load("toy")["y_train"], np.arange(6))
    assert http_files.requests == ["/source/toy.npz"] * 3
    assert http_files.waits == [1, 2]  # pooch's back-off, as files.RETRIES says
    assert sorted(p.name for p in isolated.iterdir()) == ["toy.npz"]


def test_offline_sends_no_request(isolated, toy_source, http_files):
    with pytest.raises(DataError, match=r"VAE_OFFLINE=1 forbids downloading it from http://127.0.0.1"):
        data.load("toy")
    assert http_files.requests == []


def test_only_http_urls_are_downloaded(isolated, monkeypatch, toy_source):
    source, entry = toy_source
    monkeypatch.setitem(data.DATASETS, "toy", Dataset(**{**entry.__dict__, "url": source.as_uri()}))
    monkeypatch.setenv("VAE_OFFLINE", "0")
    with pytest.raises(
        DataError, match=r"cannot download toy.npz: expected an http\(s\) URL, found 'file://"
    ):
        data.load("toy")
    assert not isolated.exists() or list(isolated.iterdir()) == []


def test_cached_file_changed_after_download_is_refused(isolated, monkeypatch, toy_source):
    monkeypatch.setenv("VAE_OFFLINE", "0")
    data.load("toy")
    cached = isolated / "toy.npz"
    cached.write_bytes(cached.read_bytes()[:-10])  # feed: the cached file loses its last bytes
    with pytest.raises(DataError, match=r"cached file .*toy.npz failed its checksum"):
        data.load("toy")


# --- binarisation ------------------------------------------------------------------------------


def test_binarize_draws_bernoulli_pixels_with_the_intensity_as_probability():
    x = np.full((200, 28, 28), 0.3, dtype=np.float32)
    b = data.binarize(x, seed=0)
    assert b.dtype == np.float32 and set(np.unique(b)) == {0.0, 1.0}
    # 156,800 draws: the standard error of the mean is 0.0012
    assert abs(b.mean() - 0.3) < 0.005


def test_binarize_maps_uint8_black_and_white_exactly():
    x = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(data.binarize(x, seed=1), [[0, 1], [1, 0]])


def test_binarize_is_deterministic_for_a_seed_and_differs_between_seeds():
    x = np.full((10, 28, 28), 128, dtype=np.uint8)
    np.testing.assert_array_equal(data.binarize(x, 7), data.binarize(x, 7))
    assert (data.binarize(x, 7) != data.binarize(x, 8)).any()


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (np.full((2, 2), 1.5), ValueError, r"floats? intensities in \[0, 1\], found values in \[1.5, 1.5\]"),
        (np.full((2, 2), -0.1), ValueError, r"found values in \[-0.1, -0.1\]"),
        (np.array([[np.nan, 0.5]]), ValueError, "NaN"),
        (np.zeros((2, 2), dtype=np.int16), TypeError, "uint8 or float images, found dtype int16"),
    ],
)
def test_binarize_rejects_what_is_not_an_intensity(x, error, message):
    with pytest.raises(error, match=message):
        data.binarize(x, seed=0)


def test_binarized_batches_draw_a_fresh_binarisation_every_epoch():
    x = np.full((250, 4, 4), 128, dtype=np.uint8)
    batches = data.BinarizedBatches(x, batch_size=100, seed=0)
    assert len(batches) == 2  # the partial last batch is dropped
    first = batches[0]
    assert first.shape == (100, 4, 4) and set(np.unique(first)) <= {0.0, 1.0}
    batches.on_epoch_end()
    assert (batches[0] != first).any()


def test_binarized_batches_refuse_a_batch_larger_than_the_data():
    with pytest.raises(ValueError, match="batch_size=100 is larger than the 10 examples"):
        data.BinarizedBatches(np.zeros((10, 2), dtype=np.uint8), batch_size=100, seed=0)


# --- label splits ------------------------------------------------------------------------------


def test_labelled_split_is_balanced_disjoint_complete_and_deterministic():
    y = np.repeat(np.arange(10), 50)
    np.random.default_rng(0).shuffle(y)
    labelled, unlabelled = data.labelled_split(y, 100, seed=3)
    assert np.bincount(y[labelled], minlength=10).tolist() == [10] * 10
    assert np.intersect1d(labelled, unlabelled).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([labelled, unlabelled])), np.arange(len(y)))
    again, _ = data.labelled_split(y, 100, seed=3)
    other, _ = data.labelled_split(y, 100, seed=4)
    np.testing.assert_array_equal(labelled, again)
    assert not np.array_equal(labelled, other)


@pytest.mark.parametrize(
    ("n_labelled", "error", "message"),
    [
        (105, ValueError, "positive multiple of the 10 classes.*found 105"),
        (0, ValueError, "positive multiple of the 10 classes.*found 0"),
        (1000, ValueError, "needs 100 examples of every class, but class 0 has only 20"),
        (100.0, TypeError, "n_labelled must be an integer, found float"),
    ],
)
def test_labelled_split_rejects_impossible_sizes(n_labelled, error, message):
    y = np.concatenate([np.zeros(20, int), np.repeat(np.arange(1, 10), 200)])
    with pytest.raises(error, match=message):
        data.labelled_split(y, n_labelled, seed=0)


def test_labelled_split_refuses_one_hot_labels():
    from vae_utils import data

    y = np.eye(10)[np.arange(100) % 10]
    with pytest.raises(
        ValueError, match=r"integer class labels of shape \(n,\), found float64 of shape \(100, 10\)"
    ):
        data.labelled_split(y, 10, seed=0)
