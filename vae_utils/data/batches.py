"""Training inputs from the arrays: stochastic binarisation, class-balanced label splits, batches.

Introduced in ``notebooks/01_vae_mnist.ipynb`` (binarisation, batches),
``notebooks/05_semi_supervised_m1.ipynb`` (label splits) and ``notebooks/06_semi_supervised_m2.ipynb``
(M2's mixed batches: ``n_minibatches`` per epoch, 100 at N = 100, else 200, of ``N_l / n_minibatches``
labelled and ``N_u / n_minibatches`` unlabelled examples; an epoch walks the unlabelled set once and cycles
the labelled set alongside, both reshuffled every epoch).
"""

from __future__ import annotations

import keras
import numpy as np

from ..checks import positive_int

__all__ = [
    "SEMI_SUPERVISED_KEYS",
    "BinarizedBatches",
    "SemiSupervisedBatches",
    "ShuffledBatches",
    "binarize",
    "labelled_split",
    "sample_gaussian",
]

#: The keys of an M2 training batch (as ``SemiSupervisedBatches`` yields them).
SEMI_SUPERVISED_KEYS = ("x_labelled", "y_labelled", "x_unlabelled")


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


def sample_gaussian(stats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A draw ``mean + exp(0.5 log_var) eps`` per row of ``[mean, log_var]``. Introduced in notebook 06."""
    stats = np.asarray(stats, dtype=np.float32)
    if stats.ndim < 1 or stats.shape[-1] % 2:
        raise ValueError(
            "stats must hold means and log-variances side by side (an even last dimension), "
            f"found shape {stats.shape}"
        )
    mean, log_var = np.split(stats, 2, axis=-1)
    return mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape, dtype=np.float32)


def _check_semi_supervised(x_labelled, y_labelled, x_unlabelled, n_classes, unlabelled_batch):
    if y_labelled.ndim != 1 or not np.issubdtype(y_labelled.dtype, np.integer):
        raise ValueError(
            "y_labelled must be integer class labels of shape (n,), found "
            f"{y_labelled.dtype} of shape {y_labelled.shape}"
        )
    if len(x_labelled) != len(y_labelled):
        raise ValueError(
            f"x_labelled and y_labelled must have the same length, found {len(x_labelled)} examples "
            f"and {len(y_labelled)} labels"
        )
    if len(x_labelled) == 0:
        raise ValueError("x_labelled must hold at least one example, found none")
    if y_labelled.min() < 0 or y_labelled.max() >= n_classes:
        raise ValueError(
            f"y_labelled must lie in [0, n_classes={n_classes}), found labels in "
            f"[{y_labelled.min()}, {y_labelled.max()}]"
        )
    if x_labelled.shape[1:] != x_unlabelled.shape[1:]:
        raise ValueError(
            "labelled and unlabelled examples must have the same shape, found "
            f"{x_labelled.shape[1:]} and {x_unlabelled.shape[1:]}"
        )
    if len(x_unlabelled) < unlabelled_batch:
        raise ValueError(
            f"unlabelled_batch={unlabelled_batch} is larger than the {len(x_unlabelled)} unlabelled examples"
        )


class SemiSupervisedBatches(keras.utils.PyDataset):
    """The paper's minibatches of ``labelled_batch`` labelled and ``unlabelled_batch`` unlabelled
    examples, each draw through ``transform``, an epoch's batches fixed by ``seed`` and ``epoch``.
    Introduced in notebook 06."""

    def __init__(
        self,
        x_labelled: np.ndarray,
        y_labelled: np.ndarray,
        x_unlabelled: np.ndarray,
        labelled_batch: int,
        unlabelled_batch: int,
        seed: int,
        n_classes: int = 10,
        transform=binarize,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a function transform(x, rng) or None, found {transform!r}")
        x_labelled, x_unlabelled = np.asarray(x_labelled), np.asarray(x_unlabelled)
        y_labelled = np.asarray(y_labelled)
        self.labelled_batch = positive_int("labelled_batch", labelled_batch)
        self.unlabelled_batch = positive_int("unlabelled_batch", unlabelled_batch)
        self.n_classes = positive_int("n_classes", n_classes)
        _check_semi_supervised(x_labelled, y_labelled, x_unlabelled, self.n_classes, self.unlabelled_batch)
        self.x_labelled, self.y_labelled, self.x_unlabelled = x_labelled, y_labelled, x_unlabelled
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.x_unlabelled) // self.unlabelled_batch

    def _images(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.transform is None:
            return x.astype(np.float32, copy=False)
        return np.asarray(self.transform(x, rng), dtype=np.float32)

    def _orders(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's orders of the unlabelled and (cycled) labelled examples."""
        if getattr(self, "_orders_epoch", None) != self.epoch:
            rng = np.random.default_rng((self.seed, self.epoch))
            unlabelled = rng.permutation(len(self.x_unlabelled))
            cycles = -(-len(self) * self.labelled_batch // len(self.x_labelled))  # ceil
            labelled = np.concatenate([rng.permutation(len(self.x_labelled)) for _ in range(cycles)])
            self._cached_orders, self._orders_epoch = (unlabelled, labelled), self.epoch
        return self._cached_orders

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        unlabelled_order, labelled_order = self._orders()
        labelled = labelled_order[index * self.labelled_batch : (index + 1) * self.labelled_batch]
        unlabelled = unlabelled_order[index * self.unlabelled_batch : (index + 1) * self.unlabelled_batch]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return {
            "x_labelled": self._images(self.x_labelled[labelled], rng),
            "y_labelled": np.eye(self.n_classes, dtype=np.float32)[self.y_labelled[labelled]],
            "x_unlabelled": self._images(self.x_unlabelled[unlabelled], rng),
        }

    def on_epoch_end(self) -> None:
        self.epoch += 1
