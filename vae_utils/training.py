"""Compile and fit a model with the repository's recipe: Adam on a cosine decay, a loud stop on divergence.

The loop itself is Keras's ``fit``; this module only removes the set-up that every notebook would repeat.
Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import math

import keras

from .checks import finite_number, positive_int
from .repro import StopOnNonFinite

__all__ = ["cosine_adam", "fit", "steps_per_epoch"]


def steps_per_epoch(data, batch_size=None) -> int:
    """Batches per epoch: ``len(data)`` or ``ceil(n / batch_size)``. Introduced in notebook 01."""
    if isinstance(data, keras.utils.PyDataset):
        return len(data)
    if batch_size is None:
        raise ValueError(f"batch_size is needed to count the steps over arrays, found {type(data).__name__}")
    n = len(data[0] if isinstance(data, tuple | list) else data)
    return math.ceil(n / positive_int("batch_size", batch_size))


def cosine_adam(learning_rate: float, total_steps: int, alpha: float = 0.1, **adam) -> keras.optimizers.Adam:
    """Adam on a cosine decay, ``learning_rate`` to ``alpha * learning_rate``. Introduced in notebook 01."""
    learning_rate = finite_number("learning_rate", learning_rate, minimum=0.0)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=positive_int("total_steps", total_steps), alpha=alpha
    )
    return keras.optimizers.Adam(schedule, **adam)


def fit(
    model,
    data,
    *,
    epochs: int,
    batch_size: int | None = None,
    learning_rate: float = 1e-3,
    optimizer=None,
    checkpoints=None,
    callbacks=(),
    compile_kwargs=None,
    verbose=0,
    **fit_kwargs,
) -> dict[str, list[float]]:
    """Compile ``model`` and train it for ``epochs``; returns the per-epoch log ``{metric: [values]}``.

    ``optimizer`` defaults to ``cosine_adam(learning_rate, epochs * steps_per_epoch(data, batch_size))``.
    ``callbacks`` run first (those that add a metric, such as ``evaluate.ClassificationError``), then
    ``checkpoints.callbacks()`` if a ``repro.Checkpoints`` is given, else ``repro.StopOnNonFinite``. With
    ``checkpoints``, a finished training is loaded instead of trained again, and the best epoch's weights
    are restored at the end. Other keyword arguments go to ``model.fit``.
    Introduced in notebook 01.
    """
    epochs = positive_int("epochs", epochs)
    if optimizer is None:
        optimizer = cosine_adam(learning_rate, epochs * steps_per_epoch(data, batch_size))
    model.compile(optimizer=optimizer, **(compile_kwargs or {}))
    if batch_size is not None and not isinstance(data, keras.utils.PyDataset):
        fit_kwargs["batch_size"] = batch_size
    if checkpoints is None or not checkpoints.complete:
        # a finished training (checkpoints.complete) is only loaded, below
        callbacks = [*callbacks, *(checkpoints.callbacks() if checkpoints else [StopOnNonFinite()])]
        history = model.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose, **fit_kwargs)
    if checkpoints is not None:
        return checkpoints.finish(model)
    return {key: [float(v) for v in values] for key, values in history.history.items()}
