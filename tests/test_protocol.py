"""The semi-supervised protocol's split, validated SVM and per-N summary (``vae_utils.protocol``)."""

import numpy as np
import pytest

from vae_utils import protocol


def test_summarise_splits_gives_the_mean_and_the_sample_standard_deviation_zero_for_one_split():
    summary = protocol.summarise_splits({100: [7.64, 9.43, 7.10], 3000: [4.0]})
    assert summary["100"]["mean"] == pytest.approx(8.0567, abs=1e-4)
    assert summary["100"]["std"] == pytest.approx(np.std([7.64, 9.43, 7.10], ddof=1))
    assert summary["3000"] == {"errors": [4.0], "mean": 4.0, "std": 0.0}


def test_splits_table_has_a_row_per_n_and_marks_a_method_without_that_n():
    summary = {
        "svm": protocol.summarise_splits({100: [10.0, 12.0], 1000: [5.0]}),
        "cnn": protocol.summarise_splits({100: [20.0]}),
    }
    table = protocol.splits_table(summary, {"svm": "SVM", "cnn": "CNN"})
    assert list(table.index) == [100, 1000] and list(table.columns) == ["SVM", "CNN"]
    assert table.loc[100, "SVM"] == "11.00 ± 1.41"
    assert table.loc[1000, "CNN"] == "—"
    with pytest.raises(ValueError, match=r"\['m2'\]"):
        protocol.splits_table(summary, {"m2": "M2"})


def test_mnist_split_follows_the_protocol(mirror, monkeypatch):
    monkeypatch.setenv("VAE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("VAE_OFFLINE", "1")
    split = protocol.mnist_split(n_train=100, n_val=20, n_test=30)
    from vae_utils import data

    mnist = data.load("mnist")
    np.testing.assert_array_equal(split["x_val"], mnist["x_train"][50_000:50_020])
    np.testing.assert_array_equal(split["y_train"], mnist["y_train"][:100])
    assert split["x_test"].shape == (30, 28, 28)
    with pytest.raises(ValueError, match="n_val must be at most 10,000"):
        protocol.mnist_split(n_val=10_001)


def test_svm_test_error_chooses_c_on_the_validation_set():
    rng = np.random.default_rng(0)
    # two classes that a large C separates and a tiny C does not (it predicts one class)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    train, val, test = (x[:100], y[:100]), (x[100:200], y[100:200]), (x[200:], y[200:])
    error, c = protocol.svm_test_error(train, val, test, c_values=(1e-4, 10.0))
    assert c == 10.0 and error < 20.0
    with pytest.raises(ValueError, match="at least one value of C"):
        protocol.svm_test_error(train, val, test, c_values=())
