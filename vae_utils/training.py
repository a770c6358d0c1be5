"""Compile and fit a model with the repository's recipe: Adam on a cosine decay, a loud stop on divergence.

The loop itself is Keras's ``fit``; this module only removes the set-up that every notebook would repeat.
Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from .checks import finite_number, positive_int

__all__ = ["ScannedSteps", "StopOnNonFinite", "burda_schedule", "cosine_adam", "fit", "steps_per_epoch"]


class StopOnNonFinite(keras.callbacks.Callback):
    """Fail ``fit`` with a ``FloatingPointError`` after an epoch whose loss or metrics are not finite,
    before the epoch is checkpointed. Introduced in notebook 01."""

    def on_epoch_end(self, epoch, logs=None):
        bad = {k: float(v) for k, v in (logs or {}).items() if not math.isfinite(float(v))}
        if bad:
            raise FloatingPointError(
                f"epoch {epoch + 1} ended with non-finite values {bad}: the run diverged and was stopped, "
                "and nothing of this epoch was saved. Lower the learning rate or check the inputs."
            )


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


def burda_schedule(epochs: int, steps_per_epoch: int) -> keras.optimizers.schedules.PiecewiseConstantDecay:
    """Burda et al.'s eight learning rates, 1e-3 to 1e-4, in stages keeping their proportions
    (1 : 3 : ... : 2187 of 3,280 epochs) within ``epochs``. Written out in notebook 01."""
    epochs, steps_per_epoch = positive_int("epochs", epochs), positive_int("steps_per_epoch", steps_per_epoch)
    stage_ends = np.cumsum([3**i for i in range(8)]) / 3280
    boundaries = [int(round(f * epochs * steps_per_epoch)) for f in stage_ends[:-1]]
    rates = [1e-4 * round(10 ** (1 - i / 7), 1) for i in range(8)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, rates)


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
    """Compile ``model``, train it for ``epochs`` (with ``checkpoints``: resumed, loaded when done, best
    epoch restored); returns the per-epoch log ``{metric: [values]}``. Introduced in notebook 01."""
    epochs = positive_int("epochs", epochs)
    if optimizer is None:
        optimizer = cosine_adam(learning_rate, epochs * steps_per_epoch(data, batch_size))
    model.compile(optimizer=optimizer, **(compile_kwargs or {}))
    if isinstance(data, keras.utils.PyDataset):
        # the batches shuffle themselves, from their seed and epoch; Keras would shuffle their order
        # again from a generator that no checkpoint restores
        fit_kwargs.setdefault("shuffle", False)
    elif batch_size is not None:
        fit_kwargs["batch_size"] = batch_size
    if checkpoints is None:
        history = model.fit(
            data, epochs=epochs, callbacks=[*callbacks, StopOnNonFinite()], verbose=verbose, **fit_kwargs
        )
        return {key: [float(v) for v in values] for key, values in history.history.items()}
    checkpoints.bind(fit, data, *callbacks, optimizer=optimizer, model=model)
    saving = checkpoints.callbacks(data=data, epochs=epochs)
    if saving:  # else a finished training, only loaded below
        model.fit(data, epochs=epochs, callbacks=[*callbacks, *saving], verbose=verbose, **fit_kwargs)
    return checkpoints.finish(model)


class ScannedSteps:
    """A Keras model mixin: on JAX, ``steps_per_execution`` steps run as one compiled ``lax.scan``
    over the stacked batches (the same steps, fewer calls). Introduced in notebook 06."""

    def make_train_function(self, force=False):
        if keras.backend.backend() != "jax" or self.steps_per_execution == 1 or self.run_eagerly:
            return super().make_train_function(force)
        if self.train_function is not None and not force:
            return self.train_function
        import jax

        def body(state, batch):
            logs, state = self.train_step(state, batch)
            return state, logs

        scan = jax.jit(lambda state, batches: jax.lax.scan(body, state, batches), donate_argnums=0)

        def train_function(state, iterator):
            batches = []
            for _ in range(self.steps_per_execution):
                try:
                    batches.append(next(iterator))
                except StopIteration:
                    break
            stacked = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)
            state, logs = scan(state, stacked)
            return jax.tree_util.tree_map(lambda x: x[-1], logs), state

        self.train_function = train_function
        return train_function
