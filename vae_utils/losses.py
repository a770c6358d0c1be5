"""Log-likelihoods and the Gaussian KL divergence, per example, in ``keras.ops``.

Every function returns one value per example (shape ``(batch,)``), summed over all other axes, so
that the ELBO of an example is ``log_likelihood - gaussian_kl``. Introduced and derived in
``notebooks/01_vae_mnist.ipynb``.
"""

from __future__ import annotations

import math

from keras import ops

__all__ = [
    "bernoulli_log_likelihood",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "standard_normal_log_density",
    "sum_per_example",
]

_LOG_2PI = math.log(2.0 * math.pi)


def sum_per_example(values):
    """Sum over every axis but the first: ``(batch, ...) -> (batch,)``."""
    if len(values.shape) == 1:
        return values
    return ops.sum(values, axis=tuple(range(1, len(values.shape))))


def gaussian_kl(z_mean, z_log_var):
    """KL( N(z_mean, exp(z_log_var)) || N(0, I) ), summed over latent dimensions.

    The closed form for a diagonal Gaussian against the standard normal prior:
    ``-1/2 * sum(1 + log_var - mean**2 - exp(log_var))``.
    """
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def bernoulli_log_likelihood(x, logits):
    """log p(x | logits) for binary ``x`` under independent Bernoulli pixels.

    ``log p = x * logits - softplus(logits)``, which equals ``x log s + (1 - x) log(1 - s)`` with
    ``s = sigmoid(logits)`` but never takes the log of a rounded-to-zero probability.
    """
    x = ops.cast(x, logits.dtype)
    return sum_per_example(x * logits - ops.softplus(logits))


def gaussian_log_likelihood(x, mean, log_var):
    """log N(x | mean, exp(log_var)) for a diagonal Gaussian, summed over non-batch axes.

    ``mean`` and ``log_var`` broadcast against ``x``; parameterising by the log-variance keeps the
    density finite for any real input.
    """
    x = ops.cast(x, mean.dtype)
    log_var = ops.cast(log_var, mean.dtype) + ops.zeros_like(mean)
    return sum_per_example(-0.5 * (_LOG_2PI + log_var + ops.square(x - mean) * ops.exp(-log_var)))


def standard_normal_log_density(z):
    """log N(z | 0, I), summed over the last axis: the VAE's prior density."""
    return -0.5 * ops.sum(_LOG_2PI + ops.square(z), axis=-1)
