"""Log-likelihoods and the Gaussian KL divergence, per example, in ``keras.ops``.

Every function returns one value per example (shape ``(batch,)``), summed over all other axes, so
that the ELBO of an example is ``log_likelihood - gaussian_kl``. Introduced and derived in
``notebooks/01_vae_mnist.ipynb``; the discretized logistic likelihood of 8-bit colour images (and its
NumPy sampler, the only function here not in ``keras.ops``) in
``notebooks/02_conv_vae_svhn.ipynb``.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from .checks import positive_int

__all__ = [
    "bernoulli_log_likelihood",
    "discretized_logistic_log_likelihood",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "sample_discretized_logistic",
    "standard_normal_log_density",
    "sum_per_example",
]

_LOG_2PI = math.log(2.0 * math.pi)
# the discretized logistic's lower bound on log_scale, as in PixelCNN++: a scale of about a quarter of a
# bin, which caps an interior value's probability near 0.79 (256 bins) and keeps exp(-log_scale) finite
LOG_SCALE_MIN = -7.0


def sum_per_example(values):
    """Sum over every axis but the first: ``(batch, ...) -> (batch,)``. Introduced in notebook 01."""
    if len(values.shape) == 1:
        return values
    return ops.sum(values, axis=tuple(range(1, len(values.shape))))


def gaussian_kl(z_mean, z_log_var):
    """KL( N(z_mean, exp(z_log_var)) || N(0, I) ), summed over the latent axis. Written out in notebook 01."""
    if tuple(z_mean.shape) != tuple(z_log_var.shape):
        raise ValueError(
            "z_mean and z_log_var must have the same shape (one mean and one log-variance per "
            f"dimension), found {tuple(z_mean.shape)} and {tuple(z_log_var.shape)}"
        )
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def bernoulli_log_likelihood(x, logits):
    """log p(x | logits) of binary ``x``: ``x * logits - softplus`` per pixel. Written out in notebook 01."""
    x = ops.cast(x, logits.dtype)
    return sum_per_example(x * logits - ops.softplus(logits))


def gaussian_log_likelihood(x, mean, log_var):
    """log N(x | mean, exp(log_var)), summed over non-batch axes, broadcast. Introduced in notebook 06."""
    x = ops.cast(x, mean.dtype)
    log_var = ops.cast(log_var, mean.dtype) + ops.zeros_like(mean)
    return sum_per_example(-0.5 * (_LOG_2PI + log_var + ops.square(x - mean) * ops.exp(-log_var)))


def standard_normal_log_density(z):
    """log N(z | 0, I), summed over the last axis: the VAE's prior density. Introduced in notebook 01."""
    return -0.5 * ops.sum(_LOG_2PI + ops.square(z), axis=-1)


def _log_one_minus_exp_neg(d, log_d):
    """``log(1 - exp(-d))`` for ``d > 0`` given both ``d`` and ``log d`` (so tiny ``d`` never underflows).

    ``log(-expm1(-d))`` where ``d >= 1e-3``; below, the series ``log d - d/2 + d**2/24`` (error under
    ``d**4 / 2880``). The branch that is not taken gets a harmless input, so its gradient is finite.
    """
    small = d < 1e-3
    d_large = ops.where(small, ops.ones_like(d), d)
    d_small = ops.where(small, d, ops.zeros_like(d))
    return ops.where(small, log_d - 0.5 * d_small + ops.square(d_small) / 24.0, ops.log(-ops.expm1(-d_large)))


def discretized_logistic_log_likelihood(x, loc, log_scale, num_bins=256):
    """log P(x) of images on the grid ``k / (num_bins - 1)``, summed over non-batch axes: each value's
    bin under a logistic (edge bins open), without cancellation, ``log_scale >= LOG_SCALE_MIN``.
    Derived and written out in notebook 02."""
    positive_int("num_bins", num_bins, minimum=2)  # 256 for 8-bit images
    x = ops.cast(x, loc.dtype)
    log_scale = ops.maximum(ops.cast(log_scale, loc.dtype) + ops.zeros_like(loc), LOG_SCALE_MIN)
    half_bin = 0.5 / (num_bins - 1)
    inv_scale = ops.exp(-log_scale)
    centred = x - loc
    a = (centred + half_bin) * inv_scale
    b = (centred - half_bin) * inv_scale
    log_cdf_upper = -ops.softplus(-a)  # log sigmoid(a)
    log_sf_lower = -ops.softplus(b)  # log(1 - sigmoid(b))
    # a - b = 2h / s, whose log is known exactly even when 2h / s underflows
    log_bin_factor = _log_one_minus_exp_neg(2.0 * half_bin * inv_scale, math.log(2.0 * half_bin) - log_scale)
    log_interior = log_cdf_upper + log_sf_lower + log_bin_factor
    log_p = ops.where(x < half_bin, log_cdf_upper, ops.where(x > 1.0 - half_bin, log_sf_lower, log_interior))
    return sum_per_example(log_p)


def sample_discretized_logistic(loc, log_scale, rng, num_bins=256):
    """Draw images on the grid ``k / (num_bins - 1)`` from the discretized logistic (NumPy, float32):
    the inverse CDF, rounded and clipped. Introduced in notebook 02."""
    positive_int("num_bins", num_bins, minimum=2)  # 256 for 8-bit images
    loc = np.asarray(loc, dtype=np.float64)
    log_scale = np.maximum(np.asarray(log_scale, dtype=np.float64), LOG_SCALE_MIN)
    shape = np.broadcast_shapes(loc.shape, log_scale.shape)
    u = np.random.default_rng(rng).uniform(np.finfo(np.float64).tiny, 1.0, size=shape)  # never 0 or 1
    x = loc + np.exp(log_scale) * (np.log(u) - np.log1p(-u))
    levels = num_bins - 1
    return (np.clip(np.rint(x * levels), 0, levels) / levels).astype(np.float32)
