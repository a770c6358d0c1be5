"""The semi-supervised MNIST protocol of Kingma et al. (2014), shared by notebooks 05 to 07.

The split (50,000 training images, the next 10,000 for validation, the 10,000 test images), an SVM whose
``C`` the validation set chooses, and the test errors of each method summarised over the label splits,
as numbers and as the table the notebooks show. The labelled subsets themselves are drawn by
``data.labelled_split``. Introduced in ``notebooks/05_semi_supervised_m1.ipynb``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.svm import SVC

from . import data
from .checks import positive_int

__all__ = ["MNIST_SIZES", "mnist_split", "splits_table", "summarise_splits", "svm_test_error"]

#: The protocol's sizes: training, validation (the last 10,000 of MNIST's training set) and test images.
MNIST_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}


def mnist_split(n_train=50_000, n_val=10_000, n_test=10_000) -> dict[str, np.ndarray]:
    """MNIST as the protocol splits it (uint8 images): ``x_train``, ``y_train`` (the first ``n_train`` of
    50,000), ``x_val``, ``y_val`` (of the next 10,000), ``x_test``, ``y_test``. Introduced in notebook 05."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for part, n in sizes.items():
        if positive_int(f"n_{part}", n) > MNIST_SIZES[part]:
            raise ValueError(
                f"n_{part} must be at most {MNIST_SIZES[part]:,} (the protocol's {part} set), found {n:,}"
            )
    mnist = data.load("mnist")
    start = MNIST_SIZES["train"]
    return {
        "x_train": mnist["x_train"][:n_train],
        "y_train": mnist["y_train"][:n_train],
        "x_val": mnist["x_train"][start : start + n_val],
        "y_val": mnist["y_train"][start : start + n_val],
        "x_test": mnist["x_test"][:n_test],
        "y_test": mnist["y_test"][:n_test],
    }


def svm_test_error(train, val, test, c_values=(1, 10, 100)) -> tuple[float, float]:
    """The test error (%) of an RBF SVM fit on ``train`` = (features, labels) with the ``C`` of ``c_values``
    that errs least on ``val``, and that ``C``. Introduced in notebook 05."""
    if not c_values:
        raise ValueError("c_values must hold at least one value of C to choose from, found none")
    fits = {c: SVC(C=c, gamma="scale").fit(*train) for c in c_values}
    best_c = min(fits, key=lambda c: np.mean(fits[c].predict(val[0]) != val[1]))
    return float(100 * np.mean(fits[best_c].predict(test[0]) != test[1])), best_c


def summarise_splits(errors: dict) -> dict[str, dict]:
    """``{N: [error of each label split]}`` -> ``{"N": {"errors", "mean", "std"}}``, ``std`` the sample
    standard deviation (0 for a single split, which has no spread). Introduced in notebook 05."""
    return {
        str(n): {
            "errors": [float(e) for e in values],
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        }
        for n, values in errors.items()
    }


def splits_table(summary: dict, labels: dict[str, str]) -> pd.DataFrame:
    """The test error "mean ± std" (%) of each method of ``summary`` (``{method: summarise_splits(...)}``)
    named in ``labels``, one row per N, one column per label. Introduced in notebook 05."""
    missing = sorted(set(labels) - set(summary))
    if missing:
        raise ValueError(
            f"labels name methods that summary does not hold: {missing}; it holds {sorted(summary)}"
        )
    ns = sorted({int(n) for method in labels for n in summary[method]})
    columns = {
        label: [
            f"{summary[method][str(n)]['mean']:.2f} ± {summary[method][str(n)]['std']:.2f}"
            if str(n) in summary[method]
            else "—"
            for n in ns
        ]
        for method, label in labels.items()
    }
    return pd.DataFrame(columns, index=pd.Index(ns, name="N labelled"))
