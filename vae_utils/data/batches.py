"""Training inputs from the arrays: stochastic binarisation, class-balanced label splits, batches.

Introduced in ``notebooks/01_vae_mnist.ipynb`` (binarisation, batches) and
``notebooks/05_semi_supervised_m1.ipynb`` (label splits).
"""

from __future__ import annotations

import keras
import numpy as np


def binarize(x: np.ndarray, seed: int | np.random.Generator) -> np.ndarray:
    """Stochastic binarisation of intensities (uint8 or [0, 1] floats): each pixel 1 with probability
    its intensity; ``float32``. Introduced in notebook 01."""
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
    """``(labelled, unlabelled)``: sorted disjoint indices, ``n_labelled / n_classes`` of each class
    labelled, fixed by ``seed``. Introduced in notebook 05."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"y must hold integer class labels of shape (n,), found {y.dtype} of shape {y.shape}"
            + (" (one-hot rows? pass y.argmax(axis=1))" if y.ndim == 2 else "")
        )
    if len(y) == 0:
        raise ValueError("y is empty: expected the class labels of the examples to split")
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


class ShuffledBatches(keras.utils.PyDataset):
    """Batches of ``x`` in a new order every epoch, each through ``transform(x, rng)`` if given; an
    epoch's order and draws depend only on ``seed`` and ``epoch``. Introduced in notebook 01."""

    def __init__(self, x: np.ndarray, batch_size: int, seed: int, transform=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, found {batch_size!r}")
        if len(x) < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the {len(x)} examples")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a function transform(x, rng), found {transform!r}")
        self.x, self.batch_size, self.seed, self.transform = x, batch_size, seed, transform
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.x) // self.batch_size  # drop the last partial batch: fixed shapes compile once

    @property
    def order(self) -> np.ndarray:
        """This epoch's permutation of the examples."""
        if getattr(self, "_order_epoch", None) != self.epoch:
            self._order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.x))
            self._order_epoch = self.epoch
        return self._order

    def __getitem__(self, index: int) -> np.ndarray:
        batch = self.x[self.order[index * self.batch_size : (index + 1) * self.batch_size]]
        if self.transform is None:
            return batch
        return self.transform(batch, np.random.default_rng((self.seed, self.epoch, index)))

    def on_epoch_end(self) -> None:
        self.epoch += 1


class BinarizedBatches(ShuffledBatches):
    """``ShuffledBatches`` with a fresh stochastic binarisation of every batch (Salakhutdinov &
    Murray, 2008). Introduced in notebook 01."""

    def __init__(self, x: np.ndarray, batch_size: int, seed: int, **kwargs):
        super().__init__(x, batch_size, seed, transform=binarize, **kwargs)
