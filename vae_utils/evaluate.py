"""Evaluate a trained VAE: the ELBO, the importance-weighted estimate of log p(x), bits per dimension.

All functions take a ``models.VAE`` (an ``encoder`` returning ``[z_mean, z_log_var]``, a ``decoder``
returning the parameters of its likelihood, and ``log_likelihood(x, params)``) and NumPy data, and
return NumPy values in nats. A model without ``log_likelihood``, such as the VAE written out in
notebook 01, is taken to have a Bernoulli decoder that returns logits.
The noise comes from a seeded NumPy generator, so an estimate is the same on every backend.
``LabelMargin`` watches an M2 (``m2.SemiSupervisedVAE``) while it trains: how much its decoder uses the label.
Introduced in ``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops
from scipy.special import logsumexp

from . import losses
from .checks import positive_int

__all__ = ["LabelMargin", "bits_per_dim", "elbo", "iwae_log_likelihood", "score"]

_LOG_2PI = math.log(2.0 * math.pi)


class _LogWeights(keras.Model):
    """``log p(x|z_i) + log p(z_i) - log q(z_i|x)`` for ``z_i = mean + std * eps_i``: (batch, k).

    A model of its own so that ``_compiled`` can compile its forward pass on whatever backend is active.
    """

    def __init__(self, vae, **kwargs):
        super().__init__(**kwargs)
        self.vae = vae
        self.built = True  # no weights of its own: the VAE's encoder and decoder are already built

    def call(self, inputs):
        x, eps = inputs  # x: (batch, ...), eps: (batch, k, latent)
        z_mean, z_log_var = self.vae.encoder(x)
        z = z_mean[:, None, :] + ops.exp(0.5 * z_log_var)[:, None, :] * eps
        batch, k, latent = ops.shape(eps)
        params = self.vae.decoder(ops.reshape(z, (-1, latent)))  # (batch * k, ...), example-major
        x_rep = ops.repeat(x, k, axis=0)
        log_px_z = ops.reshape(_log_likelihood(self.vae, x_rep, params), (batch, k))
        log_pz = losses.standard_normal_log_density(z)
        # log N(z | mean, std^2) with (z - mean) / std = eps
        log_qz_x = -0.5 * ops.sum(_LOG_2PI + z_log_var[:, None, :] + ops.square(eps), axis=-1)
        return log_px_z + log_pz - log_qz_x


def _compiled(model: keras.Model):
    """``model``'s forward pass as a compiled function of NumPy inputs that returns NumPy.

    ``predict_on_batch`` would do, but it adapts its inputs and syncs the model's state on every call:
    on JAX that costs more than the computation itself for an IWAE pass. Here JAX jits the stateless
    call once and TensorFlow traces a ``tf.function``; other backends call the model eagerly.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )
        forward = jax.jit(lambda state, inputs: model.stateless_call(*state, inputs)[0])
        return lambda *inputs: np.asarray(forward(state, inputs))
    if backend == "tensorflow":
        import tensorflow as tf

        forward = tf.function(lambda inputs: model(inputs), reduce_retracing=True)
        return lambda *inputs: forward(inputs).numpy()
    return lambda *inputs: ops.convert_to_numpy(model(inputs))


def _log_likelihood(model, x, params):
    """log p(x|z) per example: the model's own likelihood, or a Bernoulli one on logits."""
    if hasattr(model, "log_likelihood"):
        return model.log_likelihood(x, params)
    return losses.bernoulli_log_likelihood(x, params)


def _as_batch(x, batch_size):
    positive_int("batch_size", batch_size)
    x = np.asarray(x, dtype="float32")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of examples, found shape {x.shape}")
    return x


def _as_images(x, batch_size):
    """``_as_batch`` for data a VAE models: intensities in [0, 1], all finite."""
    raw = np.asarray(x)
    x = _as_batch(raw, batch_size)
    if not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0:
        raise ValueError(
            f"x must hold pixel values in [0, 1] (binarised, or 8-bit images divided by 255), found "
            f"{raw.dtype} values in [{np.nanmin(x):.4g}, {np.nanmax(x):.4g}]"
            + (" and NaN or infinity" if not np.all(np.isfinite(x)) else "")
        )
    return x


def elbo(model, x, batch_size=500, seed=0):
    """The ELBO of each example, ``log p(x|z) - KL(q(z|x) || p(z))`` with one ``z ~ q(z|x)``: ``(n,)``.
    Introduced in notebook 01."""
    x = _as_images(x, batch_size)
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        z_mean, z_log_var = model.encoder(xb)
        eps = rng.standard_normal(tuple(z_mean.shape), dtype=np.float32)
        params = model.decoder(z_mean + ops.exp(0.5 * z_log_var) * eps)
        value = _log_likelihood(model, xb, params) - losses.gaussian_kl(z_mean, z_log_var)
        out.append(ops.convert_to_numpy(value))
    return np.concatenate(out).astype(np.float64)


def iwae_log_likelihood(model, x, k=5000, batch_size=20, samples_per_pass=500, seed=0):
    """The importance-weighted estimate ``L_k`` of log p(x) (Burda et al., 2016), ``(n,)`` in nats,
    its samples drawn in passes with a running log-sum-exp, so memory does not grow with ``k``.
    Introduced in notebook 01."""
    x = _as_images(x, batch_size)
    k, samples_per_pass = positive_int("k", k), positive_int("samples_per_pass", samples_per_pass)
    latent_dim = model.encoder.outputs[0].shape[-1]
    log_weights = _compiled(_LogWeights(model, name="iwae_log_weights"))
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        total = np.full(len(xb), -np.inf)
        for done in range(0, k, samples_per_pass):
            eps = rng.standard_normal(
                (len(xb), min(samples_per_pass, k - done), latent_dim), dtype=np.float32
            )
            log_w = log_weights(xb, eps).astype(np.float64)
            total = np.logaddexp(total, logsumexp(log_w, axis=1))
        out.append(total - math.log(k))
    return np.concatenate(out)


def bits_per_dim(log_likelihood, num_dims):
    """Log-likelihoods in nats per example as bits per dimension, ``-mean(log p) / (D ln 2)``, for a
    proper discrete likelihood over ``num_dims`` values. Introduced in notebook 01."""
    num_dims = positive_int("num_dims", num_dims)
    log_likelihood = np.asarray(log_likelihood, dtype=np.float64)
    if log_likelihood.size == 0 or not np.all(np.isfinite(log_likelihood)):
        raise ValueError(
            "log_likelihood must be a non-empty array of finite values in nats, found "
            + ("an empty array" if log_likelihood.size == 0 else "NaN or infinite values")
        )
    if np.any(log_likelihood > 0):
        raise ValueError(
            "log_likelihood must be log-probabilities, <= 0 nats for discrete data, found "
            f"{log_likelihood.max():.4g}: negative log-likelihoods (losses) passed by mistake?"
        )
    return -float(np.mean(log_likelihood)) / (num_dims * math.log(2.0))


def score(model, x, k=100, n_iwae=None, seed=0) -> dict:
    """Test scores of a generative model on 8-bit images ``x`` in [0, 1]: the ELBO on all, the IWAE
    estimate on the first ``n_iwae``, in nats and bits per dimension. Written out in notebook 02."""
    x = _as_images(x, 1)
    n_iwae = len(x) if n_iwae is None else positive_int("n_iwae", n_iwae)
    per_example = elbo(model, x, batch_size=200, seed=seed)
    log_px = iwae_log_likelihood(
        model, x[:n_iwae], k=k, batch_size=10, samples_per_pass=min(k, 100), seed=seed
    )
    return {
        "test_elbo": float(np.mean(per_example)),
        "test_bits_per_dim_elbo": bits_per_dim(per_example, x[0].size),
        "test_log_likelihood_iwae": float(np.mean(log_px)),
        "test_bits_per_dim_iwae": bits_per_dim(log_px, x[0].size),
        "n_iwae": len(log_px),
    }


def accuracy(model, x, y, batch_size=500):
    """The fraction of ``x`` whose predicted class (``model.classify``, else the argmax of ``predict``)
    is ``y`` (labels or one-hot rows). Introduced in notebook 06."""
    x = _as_batch(x, batch_size)
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=-1)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"y must hold one label per example of x, shape ({len(x)},) or ({len(x)}, K); found {y.shape}"
        )
    if hasattr(model, "classify"):
        predicted = np.asarray(model.classify(x, batch_size=batch_size))
    else:
        predicted = np.argmax(np.asarray(model.predict(x, batch_size=batch_size, verbose=0)), axis=-1)
    return float(np.mean(predicted.reshape(-1) == y))


__all__ += ["accuracy"]


class ClassificationError(keras.callbacks.Callback):
    """After every epoch, the classifier's error (%) on held-out data, logged as ``name``; put it first in
    ``callbacks`` so that those after it (early stopping, ``Checkpoints``, ``History``) see it.
    Introduced in notebook 06."""

    def __init__(self, x, y, name="val_error", batch_size=500):
        super().__init__()
        if not name.isidentifier():
            raise ValueError(f"name must be a plain metric name such as 'val_error', found {name!r}")
        self.x, self.y, self.name, self.batch_size = x, y, name, batch_size

    def on_epoch_end(self, epoch, logs=None):
        error = 100.0 * (1.0 - accuracy(self.model, self.x, self.y, batch_size=self.batch_size))
        if logs is not None:
            logs[self.name] = error


class LabelMargin(keras.callbacks.Callback):
    """Logs after every epoch how many nats the true label's bound beats the average wrong label's on
    ``x`` (fixed noise draws); near 0, the decoder hardly uses y. Introduced in notebook 06."""

    def __init__(self, x, y, name="val_label_margin", batch_size=500, seed=0):
        super().__init__()
        if not name.isidentifier():
            raise ValueError(f"name must be a plain metric name such as 'val_label_margin', found {name!r}")
        self.x = np.asarray(x, dtype="float32")
        self.y = np.asarray(y)
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise ValueError(
                f"y must hold one integer label per example of x, found shape {self.y.shape} for "
                f"{len(self.x)} examples"
            )
        self.name, self.batch_size = name, positive_int("batch_size", batch_size)
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        k = model.n_classes
        rng = np.random.default_rng(self.seed)
        latent = model.encoder.outputs[0].shape[-1] if getattr(model.encoder, "outputs", None) else None
        latent = latent or model.encoder.settings["latent_dim"]
        margins = []
        for start in range(0, len(self.x), self.batch_size):
            x = self.x[start : start + self.batch_size]
            eps = rng.standard_normal((len(x), k, latent), dtype=np.float32)
            bounds = ops.convert_to_numpy(model.negative_elbo_all_classes(x, eps=eps)).astype(np.float64)
            true = bounds[np.arange(len(x)), self.y[start : start + self.batch_size]]
            wrong = (bounds.sum(axis=1) - true) / (k - 1)
            margins.append(wrong - true)
        if logs is not None:
            logs[self.name] = float(np.mean(np.concatenate(margins)))
